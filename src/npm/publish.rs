//! `PUT /:pkg`: a publish (body with `_attachments`) or a deprecation (whole document back).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::extract::{Authenticated, NpmJson, package_name_for_write};
use crate::error::ApiError;
use crate::packages::publish::Published;
use crate::server::AppState;

/// `PUT /:pkg` (npm-protocol.md §5, §6.1).
pub async fn put_package(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(pkg): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = package_name_for_write(&pkg)?;
    let status = if body.get("_attachments").is_some() {
        match app.registry.publish(&caller, &name, body).await? {
            Published::Created => StatusCode::CREATED,
            Published::AlreadyThere => StatusCode::OK,
        }
    } else if body.get("versions").is_some() {
        app.registry.deprecate(&caller, &name, body).await?;
        StatusCode::OK
    } else if body.get("users").is_some() {
        return Err(ApiError::bad_request(
            "stars_unsupported",
            "stars are not supported by this registry",
        ));
    } else {
        return Err(ApiError::bad_request(
            "invalid_publish",
            "the body is neither a publish (no _attachments) nor a metadata update (no versions)",
        ));
    };
    Ok((
        status,
        Json(json!({ "ok": true, "success": true, "id": name })),
    ))
}
