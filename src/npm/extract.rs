//! Extractors: the caller's token, the public base URL, JSON bodies (and readers of their
//! fields) and package names, each rejecting with an npm-shaped [`ApiError`].

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;

use std::net::IpAddr;

use super::body;
use crate::auth::tokens::CheckedCaller;
use crate::auth::{AuthError, Caller, Origin, Permission};
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::packages::PackageName;
use crate::server::AppState;

/// The bearer token of a request, if it sends one (another scheme is a 401).
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::unauthorized(
            "Bearer realm=\"packr\"",
            "only token authentication is supported: put an _authToken in your .npmrc (npm login)",
        )),
    }
}

/// Where the request came from: client address and request id.
pub fn origin(parts: &Parts) -> Origin {
    Origin {
        ip: client_ip(parts).map(|ip| ip.to_string()),
        request_id: parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// The request's origin, for handlers that act without a token (logins).
pub struct RequestOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(origin(parts)))
    }
}

/// A caller with a valid token; requests without one get 401.
pub struct Authenticated(pub Caller);

/// The caller if a token was sent (an invalid token is still a 401).
pub struct MaybeAuthenticated(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = bearer(parts)? else {
            return Ok(Self(None));
        };
        let mut caller = state.tokens.authenticate(token, client_ip(parts)).await?;
        caller.origin = origin(parts);
        parts.extensions.insert(body::TokenChecked);
        Ok(Self(Some(caller)))
    }
}

/// The client's address, as [`crate::client_ip`] decided it for this request.
fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ClientIp>().map(|ip| ip.0)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match MaybeAuthenticated::from_request_parts(parts, state)
            .await?
            .0
        {
            Some(caller) => Ok(Self(caller)),
            None => Err(AuthError::MissingToken.into()),
        }
    }
}

/// Permission to read packages: a token with `read` (its caller decides which restricted
/// packages are visible), or none when anonymous reads are on.
pub struct ReadAccess(Option<CheckedCaller>);

impl ReadAccess {
    /// The reader, `None` for an anonymous read.
    pub fn caller(&self) -> Option<&Caller> {
        self.0.as_deref()
    }
}

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts)? {
            Some(token) => {
                let ip = client_ip(parts);
                let caller = state.tokens.authorize(token, ip, Permission::Read).await?;
                Ok(Self(Some(caller)))
            }
            None if state.config.anonymous_read => Ok(Self(None)),
            None => Err(AuthError::MissingToken.into()),
        }
    }
}

/// The public base URL tarball URLs are built on: `PACKR_PUBLIC_URL`, else `http://<Host>`.
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(url) = &state.config.public_url {
            return Ok(Self(url.clone()));
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_host",
                    "a valid Host header is required (or set PACKR_PUBLIC_URL)",
                )
            })?;
        Ok(Self(format!("http://{host}")))
    }
}

/// A JSON body; an empty body counts as `{}` (yarn 4's login POST has none).
pub struct NpmJson(pub Value);

impl FromRequest<AppState> for NpmJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = body::read(request, state.config.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Object(Default::default())));
        }
        // A publish body of many megabytes takes milliseconds to parse: off the async threads,
        // so that the reads sharing them do not wait.
        let parsed = if bytes.len() > LARGE_BODY_BYTES {
            tokio::task::spawn_blocking(move || serde_json::from_slice(&bytes))
                .await
                .map_err(ApiError::internal)?
        } else {
            serde_json::from_slice(&bytes)
        };
        parsed.map(Self).map_err(|e| {
            ApiError::bad_request(
                "bad_json",
                format!("the request body is not valid JSON: {e}"),
            )
        })
    }
}

/// Bodies larger than this are parsed on the blocking pool.
const LARGE_BODY_BYTES: usize = 256 * 1024;

/// A non-empty string field of a JSON body, if the body has one.
pub fn text_field<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A non-empty string field the request must carry; without it, a 400 `missing_field`.
pub fn required_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    text_field(body, field)
        .ok_or_else(|| ApiError::bad_request("missing_field", format!("`{field}` is required")))
}

/// A field holding a list of strings; an absent or null field is an empty list.
pub fn string_list(body: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::bad_request("invalid", format!("`{field}` must list strings"))
                })
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request(
            "invalid",
            format!("`{field}` must be a list of strings"),
        )),
    }
}

/// Parses the `{pkg}` path segment; a name that could never exist is simply not found.
pub fn package_name(raw: &str) -> Result<PackageName, ApiError> {
    PackageName::parse(raw)
        .map_err(|err| ApiError::not_found(format!("package not found: {raw} ({err})")))
}

/// Parses the package name of a write; a bad name is a 400 the person can act on.
pub fn package_name_for_write(raw: &str) -> Result<PackageName, ApiError> {
    PackageName::parse(raw).map_err(|err| ApiError::bad_request("invalid_name", err.to_string()))
}
