//! `/-/package/:pkg/dist-tags[/:tag]` (npm-protocol.md §7).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::extract::{Authenticated, NpmJson, ReadAccess, package_name, package_name_for_write};
use crate::error::ApiError;
use crate::server::AppState;

/// `GET /-/package/:pkg/dist-tags`.
pub async fn get_dist_tags(
    State(app): State<AppState>,
    read: ReadAccess,
    Path(pkg): Path<String>,
) -> Result<Response, ApiError> {
    let name = package_name(&pkg)?;
    app.registry
        .require_read(read.caller(), &name, || {
            format!("package not found: {name}")
        })
        .await?;
    let tags = app.registry.dist_tags(&name).await?;
    let mut response = Json(tags).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `PUT /-/package/:pkg/dist-tags/:tag` with the version as a JSON string.
pub async fn put_dist_tag(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((pkg, tag)): Path<(String, String)>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = package_name_for_write(&pkg)?;
    let Value::String(version) = body else {
        return Err(ApiError::bad_request(
            "invalid_dist_tag",
            "the body must be the version as a JSON string, e.g. \"1.2.3\"",
        ));
    };
    let tags = app
        .registry
        .set_dist_tag(&caller, &name, &tag, &version)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ok": true, "id": name, "dist-tags": tags })),
    ))
}

/// `DELETE /-/package/:pkg/dist-tags/:tag`.
pub async fn delete_dist_tag(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((pkg, tag)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = package_name_for_write(&pkg)?;
    let tags = app.registry.remove_dist_tag(&caller, &name, &tag).await?;
    Ok(Json(json!({ "ok": true, "id": name, "dist-tags": tags })))
}
