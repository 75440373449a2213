//! The advisory admin API: `POST/GET /api/v1/admin/advisories` and
//! `DELETE /api/v1/admin/advisories/:id`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminCaller;
use crate::advisories::AdvisoryInput;
use crate::error::ApiError;
use crate::npm::extract::NpmJson;
use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/advisories",
            get(get_advisories).post(post_advisory),
        )
        .route("/api/v1/admin/advisories/{id}", delete(delete_advisory))
}

/// `POST /api/v1/admin/advisories {package, vulnerable_versions, patched_versions?, severity,
/// title, url?, cwe?, cvss?}`: 201 with the advisory.
async fn post_advisory(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: AdvisoryInput = serde_json::from_value(body).map_err(|err| {
        ApiError::bad_request(
            "invalid",
            format!(
                "{err}; send {{package, vulnerable_versions, patched_versions?, severity, title, url?, cwe?, cvss?}}"
            ),
        )
    })?;
    let advisory = app.advisories.create(Some(&caller), input).await?;
    Ok((StatusCode::CREATED, Json(json!(advisory))))
}

/// Query of the list.
#[derive(Deserialize)]
struct ListQuery {
    package: Option<String>,
}

/// `GET /api/v1/admin/advisories[?package=]`: oldest first.
async fn get_advisories(
    State(app): State<AppState>,
    _admin: AdminCaller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let advisories = app.advisories.list(query.package.as_deref()).await?;
    Ok(Json(json!({ "advisories": advisories })))
}

/// `DELETE /api/v1/admin/advisories/:id`.
async fn delete_advisory(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("`{id}` is not an advisory id; GET /api/v1/admin/advisories lists them"),
        )
    })?;
    app.advisories.delete(Some(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
