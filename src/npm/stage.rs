//! `npm stage publish|list|view|download|approve|reject` (npm-protocol.md §5.5): the HTTP side of
//! [`crate::packages::stage`].

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{Authenticated, NpmJson, package_name_for_write};
use crate::error::ApiError;
use crate::packages::stage::item;
use crate::server::AppState;

/// Items per page when the client does not say (npm asks for 100).
const DEFAULT_PER_PAGE: usize = 100;
/// The most items one page holds.
const MAX_PER_PAGE: usize = 1000;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/stage/package/{pkg}", post(post_stage))
        .route("/-/stage", get(get_stages))
        .route("/-/stage/{id}", get(get_stage).delete(delete_stage))
        .route("/-/stage/{id}/tarball", get(get_stage_tarball))
        .route("/-/stage/{id}/approve", post(post_approve))
}

/// npm checks the id before sending; a client that does not gets the same answer.
fn stage_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_stage_id",
                format!("stage id `{raw}` must be a valid UUID"),
            )
        })
}

/// `POST /-/stage/package/:pkg` with a publish body → `{"stageId": …}`.
async fn post_stage(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(pkg): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = package_name_for_write(&pkg)?;
    let id = app.registry.stage(&caller, &name, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ok": true, "id": name, "stageId": id })),
    ))
}

/// `GET /-/stage?page=0&perPage=100[&package=name]` → `{"items": […], "total": N}`.
async fn get_stages(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        param(key).map_or(Ok(default), |v| {
            v.parse().map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("`{key}` must be a non-negative integer, not `{v}`"),
                )
            })
        })
    };
    let page = number("page", 0)?;
    let per_page = number("perPage", DEFAULT_PER_PAGE)?.clamp(1, MAX_PER_PAGE);
    let package = param("package").filter(|p| !p.is_empty());
    let stages = app.registry.staged_list(&caller, package).await?;
    let items: Vec<Value> = stages
        .iter()
        .skip(page.saturating_mul(per_page))
        .take(per_page)
        .map(item)
        .collect();
    Ok(Json(json!({ "items": items, "total": stages.len() })))
}

async fn get_stage(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stage = app.registry.staged(&caller, &stage_id(&id)?).await?;
    Ok(Json(item(&stage)))
}

async fn get_stage_tarball(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tarball = app
        .registry
        .staged_tarball(&caller, &stage_id(&id)?)
        .await?;
    let mut response = Body::from_stream(tarball.blob.body).into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(tarball.blob.length),
    );
    // Only reviewers read it, and a rejected stage's bytes must not linger in a cache.
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// `POST /-/stage/:id/approve`: npm parses the answer as JSON.
async fn post_approve(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stage = app.registry.approve_stage(&caller, &stage_id(&id)?).await?;
    Ok(Json(json!({
        "ok": true,
        "id": stage.id,
        "packageName": stage.package,
        "version": stage.version,
        "tag": stage.tag,
        "approvedBy": caller.name,
    })))
}

async fn delete_stage(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = stage_id(&id)?;
    app.registry.reject_stage(&caller, &id).await?;
    Ok(Json(json!({ "ok": true, "id": id })))
}
