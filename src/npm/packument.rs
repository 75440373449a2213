//! `GET /:pkg` (full or abbreviated by `Accept`, ETag/304, gzip) and `GET /:pkg/:version`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{BaseUrl, ReadAccess, package_name};
use crate::error::ApiError;
use crate::packages::cache::{Form, Rendered, Variant};
use crate::server::AppState;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// Query of a packument GET.
#[derive(Deserialize)]
pub struct PackumentQuery {
    write: Option<String>,
}

fn wants_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.trim() == "gzip" || e.trim().starts_with("gzip;") && !e.contains("q=0"))
        })
}

/// Whether `If-None-Match` names this representation (either encoding, weak or strong).
fn not_modified(headers: &HeaderMap, rendered: &Rendered) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == rendered.etag || t == rendered.gzip_etag)
        })
}

/// `GET /:pkg`.
pub async fn get_packument(
    State(app): State<AppState>,
    read: ReadAccess,
    BaseUrl(base): BaseUrl,
    Path(pkg): Path<String>,
    Query(query): Query<PackumentQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = package_name(&pkg)?;
    app.registry
        .require_read(read.caller(), &name, || {
            format!("package not found: {name}")
        })
        .await?;
    let write = query.write.as_deref() == Some("true");
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // `?write=true` always gets the full document with `_rev` (npm-protocol.md §3.2).
    let (form, content_type) = if !write && accept.contains(ABBREVIATED) {
        (Form::Abbreviated, ABBREVIATED)
    } else {
        (Form::Full, "application/json")
    };
    let gzip = wants_gzip(&headers);
    let rendered = app
        .registry
        .packument(&name, &base, Variant { form, gzip })
        .await?;
    let rendered = &*rendered;
    // A small document is sent plain even when gzip was accepted.
    let gzip = rendered.gzip;
    let etag = if gzip {
        &rendered.gzip_etag
    } else {
        &rendered.etag
    };
    let mut response = if not_modified(&headers, rendered) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = rendered.body.clone().into_response();
        let out = response.headers_mut();
        out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzip {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&rendered.last_modified) {
        out.insert(header::LAST_MODIFIED, date);
    }
    // no-cache, not max-age: a cached packument would hide a version published a second ago.
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    out.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding, Authorization"),
    );
    Ok(response)
}

/// `GET /:pkg/:version-or-tag`.
pub async fn get_version(
    State(app): State<AppState>,
    read: ReadAccess,
    BaseUrl(base): BaseUrl,
    Path((pkg, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = package_name(&pkg)?;
    app.registry
        .require_read(read.caller(), &name, || {
            format!("package not found: {name}")
        })
        .await?;
    let document = app
        .registry
        .version_document(&name, &version, &base)
        .await?;
    Ok(Json(document).into_response())
}
