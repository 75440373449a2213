//! Unpublish and owner changes: `PUT|DELETE /:pkg/-rev/:rev`, `DELETE /:pkg/-/:file/-rev/:rev`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::extract::{Authenticated, NpmJson, package_name_for_write};
use crate::error::ApiError;
use crate::server::AppState;

fn ok(name: &str) -> Json<Value> {
    Json(json!({ "ok": true, "success": true, "id": name }))
}

/// `PUT /:pkg/-rev/:rev`: removes the versions missing from `versions` (refused with 409 when
/// `rev` is stale), or replaces `maintainers`.
pub async fn put_package_rev(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((pkg, rev)): Path<(String, String)>,
    NpmJson(body): NpmJson,
) -> Result<Json<Value>, ApiError> {
    let name = package_name_for_write(&pkg)?;
    if body.get("versions").is_some() {
        app.registry
            .unpublish_missing_versions(&caller, &name, &rev, &body)
            .await?;
    } else if body.get("maintainers").is_some() {
        app.registry.set_owners(&caller, &name, &body).await?;
    } else {
        return Err(ApiError::bad_request(
            "invalid_update",
            "the body must carry `versions` (unpublish) or `maintainers` (owner change)",
        ));
    }
    Ok(ok(name.as_str()))
}

/// `DELETE /:pkg/-rev/:rev`: deletes the whole package (refused with 409 when `rev` is stale).
pub async fn delete_package(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((pkg, rev)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = package_name_for_write(&pkg)?;
    app.registry.unpublish_package(&caller, &name, &rev).await?;
    Ok(ok(name.as_str()))
}

/// `DELETE /:pkg/-/:file/-rev/:rev`: removes one version by its tarball.
pub async fn delete_tarball(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((pkg, file, _rev)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = package_name_for_write(&pkg)?;
    app.registry
        .unpublish_tarball(&caller, &name, &file)
        .await?;
    Ok(ok(name.as_str()))
}
