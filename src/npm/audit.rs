//! `npm audit` and friends (npm-protocol.md §11): `POST /-/npm/v1/security/advisories/bulk`
//! (npm 7+ and yarn 4; npm gzips the body) and the npm 6 form `POST
//! /-/npm/v1/security/audits[/quick]` (pnpm, and npm 10 when bulk fails).

use std::collections::BTreeMap;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use super::body::TokenChecked;
use super::extract::{NpmJson, ReadAccess};
use crate::advisories::BulkReport;
use crate::error::ApiError;
use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/npm/v1/security/advisories/bulk", post(post_bulk))
        .route("/-/npm/v1/security/audits", post(post_audit))
        .route("/-/npm/v1/security/audits/quick", post(post_audit))
}

/// An audit request: the reader (as for packuments) and the JSON body. A lockfile's body can be
/// large, so a reader with a valid token may send up to `PACKR_MAX_BODY_BYTES`, like a publish.
struct AuditRequest {
    read: ReadAccess,
    body: Value,
}

impl FromRequest<AppState> for AuditRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let read = ReadAccess::from_request_parts(&mut parts, state).await?;
        if read.caller().is_some() {
            parts.extensions.insert(TokenChecked);
        }
        let NpmJson(body) = NpmJson::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self { read, body })
    }
}

/// Reads the bulk body, `{"<name>": ["<version>", ..], ..}`.
fn bulk_request(body: Value) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid",
            "the body must map package names to lists of installed versions, such as {\"left-pad\": [\"1.3.0\"]}",
        )
    };
    let Value::Object(packages) = body else {
        return Err(invalid());
    };
    packages
        .into_iter()
        .map(|(name, versions)| match versions {
            Value::Array(versions) => Ok((
                name,
                versions
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            )),
            _ => Err(invalid()),
        })
        .collect()
}

/// `POST /-/npm/v1/security/advisories/bulk`: advisories by package name; `{}` when clean.
async fn post_bulk(
    State(app): State<AppState>,
    request: AuditRequest,
) -> Result<Json<BulkReport>, ApiError> {
    let asked = bulk_request(request.body)?;
    let report = app
        .advisories
        .bulk(&app.registry, request.read.caller(), asked)
        .await?;
    Ok(Json(report))
}

/// `POST /-/npm/v1/security/audits[/quick]`: the npm 6 report of a dependency tree.
async fn post_audit(
    State(app): State<AppState>,
    request: AuditRequest,
) -> Result<Json<Value>, ApiError> {
    if !request.body.is_object() {
        return Err(ApiError::bad_request(
            "invalid",
            "the body must be an npm 6 audit tree: {\"dependencies\": {\"<name>\": {\"version\": ..}}}",
        ));
    }
    let report = app
        .advisories
        .npm6_report(&app.registry, request.read.caller(), &request.body)
        .await?;
    Ok(Json(report))
}
