//! `GET /:pkg/-/:file`: streamed tarball bytes, or a 302 to a presigned URL of the blob store,
//! with immutable cache headers.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::{ReadAccess, package_name};
use crate::error::ApiError;
use crate::packages::registry::TarballSource;
use crate::server::AppState;
use crate::store::blob::IMMUTABLE_CACHE_CONTROL;

/// Cache policy of a redirect: shorter than the presigned URL's life, so no cache keeps a
/// redirect to an expired URL. The object's own answer carries the immutable policy.
const REDIRECT_CACHE_CONTROL: &str = "private, max-age=60";

/// `GET /:pkg/-/:file`.
pub async fn get_tarball(
    State(app): State<AppState>,
    read: ReadAccess,
    Path((pkg, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = package_name(&pkg)?;
    app.registry
        .require_read(read.caller(), &name, || {
            format!("tarball not found: {name}/-/{file}")
        })
        .await?;
    let source = app.registry.tarball(&name, &file).await?;
    let etag = format!("\"{}\"", source.shasum());
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    let mut cache_control = IMMUTABLE_CACHE_CONTROL;
    let mut response = match source {
        _ if unchanged => StatusCode::NOT_MODIFIED.into_response(),
        TarballSource::Redirect { url, .. } => {
            cache_control = REDIRECT_CACHE_CONTROL;
            let location = HeaderValue::from_str(&url).map_err(ApiError::internal)?;
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        TarballSource::Stream(tarball) => {
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
            response
        }
    };
    let out = response.headers_mut();
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    Ok(response)
}
