//! `GET /-/npm/v1/keys`: the public keys npm verifies `dist.signatures` with (npm-protocol.md
//! §12.1). Public, like the packuments whose signatures they check.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::server::AppState;

/// `GET /-/npm/v1/keys`.
pub async fn get_keys(State(app): State<AppState>) -> Result<Response, ApiError> {
    let Some(signing) = app.registry.signing() else {
        // npm reads a 404 as "this registry does not sign".
        return Err(ApiError::not_found("this registry does not sign packages"));
    };
    let document = signing.keys_document().await.map_err(ApiError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        document,
    )
        .into_response())
}
