//! `ApiError`: the only type that becomes an HTTP error answer, as npm-shaped JSON (SPEC §14).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::advisories::AdvisoryError;
use crate::auth::AuthError;
use crate::orgs::OrgError;
use crate::packages::RegistryError;
use crate::store::{BlobError, StoreError};
use crate::telemetry::FailureCause;
use crate::webhooks::WebhookError;

/// An error answer: `{"error": <message>, "code": <stable code>, "status": <status>}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    www_authenticate: Option<&'static str>,
    retry_after_seconds: Option<u32>,
    /// What went wrong on the server's side, for the log only.
    cause: Option<String>,
}

impl ApiError {
    /// A failure the caller can act on (4xx).
    pub fn user(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
            retry_after_seconds: None,
            cause: None,
        }
    }

    /// A 400 for a malformed request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::user(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 naming what was not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::user(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 401 whose `WWW-Authenticate` tells npm which message to print (npm-protocol.md §8.7).
    pub fn unauthorized(challenge: &'static str, message: impl Into<String>) -> Self {
        Self {
            www_authenticate: Some(challenge),
            ..Self::user(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// A server-side failure: the cause goes to the log with the request's access line, the
    /// caller gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::user(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the request id in X-Request-Id identifies it in the server log",
            )
        }
    }

    /// A 503 with `Retry-After: 5` for a storage service that is down for now; the cause is
    /// logged with the access line, and npm retries the request by itself.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Self {
            retry_after_seconds: Some(5),
            cause: Some(format!("storage unavailable: {cause}")),
            ..Self::user(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "package storage is temporarily unavailable; retry in a few seconds",
            )
        }
    }

    /// A 429 with `Retry-After: <seconds>` for a client that sent too many requests.
    pub fn too_many_requests(retry_after_seconds: u32, message: impl Into<String>) -> Self {
        Self {
            retry_after_seconds: Some(retry_after_seconds),
            ..Self::user(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// The message the caller gets.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.message,
            "code": self.code,
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(challenge) = self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(FailureCause(cause));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::internal(err)
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::MissingToken | AuthError::InvalidToken => {
                Self::unauthorized("Bearer realm=\"packr\"", message)
            }
            // Without `WWW-Authenticate`, npm prints the message instead of "your token seems
            // to be invalid" (npm-protocol.md §8.7): the token is fine, the account is not.
            AuthError::AccountDisabled(_) => {
                Self::user(StatusCode::UNAUTHORIZED, "account_disabled", message)
            }
            AuthError::BadPassword => Self::unauthorized("Basic realm=\"packr\"", message),
            // npm prints EAUTHIP "Login is not allowed from your IP address" (npm-protocol.md §8.7).
            AuthError::AddressNotAllowed { .. } => {
                Self::unauthorized("Bearer realm=\"packr\", ipaddress", message)
            }
            AuthError::UnknownToken(_) => Self::not_found(message),
            AuthError::NoSuchUser(_) => Self::bad_request("no_such_user", message),
            AuthError::Forbidden { .. } | AuthError::OutsideScope { .. } => {
                Self::user(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AuthError::ScopeNotAllowed(_) => {
                Self::user(StatusCode::FORBIDDEN, "scope_not_allowed", message)
            }
            AuthError::SignupClosed => Self::user(StatusCode::FORBIDDEN, "signup_closed", message),
            AuthError::Invalid(_) => Self::bad_request("invalid", message),
            AuthError::Store(inner) => Self::internal(inner),
            AuthError::Internal(inner) => Self::internal(inner),
        }
    }
}

impl From<OrgError> for ApiError {
    fn from(err: OrgError) -> Self {
        let (status, code) = match &err {
            OrgError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            OrgError::Exists(_) => (StatusCode::CONFLICT, "exists"),
            OrgError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            OrgError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            OrgError::Store(_) => return Self::internal(err),
        };
        Self::user(status, code, err.to_string())
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        let (status, code) = match &err {
            WebhookError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            WebhookError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            WebhookError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            WebhookError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            WebhookError::Store(_) | WebhookError::Internal(_) => return Self::internal(err),
        };
        Self::user(status, code, err.to_string())
    }
}

impl From<AdvisoryError> for ApiError {
    fn from(err: AdvisoryError) -> Self {
        match err {
            AdvisoryError::Invalid(message) => Self::bad_request("invalid", message),
            AdvisoryError::NotFound(message) => Self::not_found(message),
            AdvisoryError::Registry(err) => err.into(),
            AdvisoryError::Store(_) => Self::internal(err),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        use RegistryError as E;
        let err = match err {
            E::Auth(inner) => return inner.into(),
            other => other,
        };
        let (status, code) = match &err {
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_publish"),
            E::Name(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            E::Version(_) => (StatusCode::BAD_REQUEST, "invalid_version"),
            E::Tarball(_) => (StatusCode::BAD_REQUEST, "invalid_tarball"),
            E::Integrity(_) => (StatusCode::BAD_REQUEST, "integrity_mismatch"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::VersionExists(_) | E::VersionRetired(_) => (StatusCode::FORBIDDEN, "version_exists"),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            E::NotMaintainer { .. }
            | E::UnpublishWindow { .. }
            | E::OrgDenied(_)
            | E::NameRetired(_) => (StatusCode::FORBIDDEN, "forbidden"),
            E::Blob(BlobError::Unavailable(_)) => return Self::unavailable(err),
            E::Auth(_) | E::Store(_) | E::Blob(_) | E::Internal(_) => {
                return Self::internal(err);
            }
        };
        Self::user(status, code, err.to_string())
    }
}

/// The JSON answer for routes that do not exist, so even a wrong URL gets npm-shaped JSON.
pub async fn fallback_not_found() -> ApiError {
    ApiError::not_found("Not found")
}

/// Maps rejections from axum's own extractors and layers (413, 405) into npm-shaped JSON.
/// A plain function for `tower::util::MapResponseLayer`: no per-request boxing on the hot path.
pub fn json_errors<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    // The layers below change the body type; the router boxes it into axum's `Body` anyway.
    let response = response.map(axum::body::Body::new);
    let status = response.status();
    // Only bare answers from axum's own rejections and layers (plain text or empty) are rewritten;
    // JSON errors and HTML pages already speak for themselves.
    let is_bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !is_bare {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request entity too large".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path".to_owned(),
        other => other
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "request_failed",
    };
    let mut out = ApiError::user(status, code, message).into_response();
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = response.headers().get(&name) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}
