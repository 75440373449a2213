//! Org-wide trusted publishers: `/api/v1/admin/orgs/:slug/trusted-publishers[/:id]`. One applies
//! to every package of the org's scope, besides each package's own (`npm trust`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AdminCaller;
use crate::error::ApiError;
use crate::npm::extract::NpmJson;
use crate::server::AppState;
use crate::trust::to_npm;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/orgs/{slug}/trusted-publishers",
            get(get_publishers).post(post_publishers),
        )
        .route(
            "/api/v1/admin/orgs/{slug}/trusted-publishers/{id}",
            delete(delete_publisher),
        )
}

/// `POST` with npm's shape: `{"type":"github","claims":{…},"permissions":[…]}` or an array.
async fn post_publishers(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(slug): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let rows = app.trust.add_for_org(&caller, &slug, body).await?;
    let list: Vec<Value> = rows.iter().map(to_npm).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "trusted_publishers": list })),
    ))
}

async fn get_publishers(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rows = app.trust.list_for_org(&caller, &slug).await?;
    let list: Vec<Value> = rows.iter().map(to_npm).collect();
    Ok(Json(json!({ "org": slug, "trusted_publishers": list })))
}

async fn delete_publisher(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.trust.revoke_for_org(&caller, &slug, &id).await?;
    Ok(Json(json!({ "ok": true })))
}
