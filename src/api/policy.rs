//! An org's publishing policy: `GET|PUT /api/v1/admin/orgs/:slug/policy` (registry admins), see
//! [`crate::packages::policy`].

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::AdminCaller;
use crate::error::ApiError;
use crate::npm::extract::NpmJson;
use crate::packages::policy;
use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/admin/orgs/{slug}/policy",
        get(get_policy).put(put_policy),
    )
}

async fn get_policy(
    State(app): State<AppState>,
    _admin: AdminCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let current = policy::get(&app.store, &slug).await?;
    Ok(Json(policy::to_json(&slug, &current)))
}

/// `PUT` with the whole policy: fields left out are off (or empty).
async fn put_policy(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(slug): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<Json<Value>, ApiError> {
    let wanted = policy::parse(&body)?;
    let set = policy::set(&app.store, Some(&caller), &slug, wanted).await?;
    Ok(Json(policy::to_json(&slug, &set)))
}
