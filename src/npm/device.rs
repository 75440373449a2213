//! RFC 8628 device authorization (`/-/v1/device/authorize`, `/-/v1/device/token`) and npm's web
//! login on top of it (`POST /-/v1/login` without credentials, then polling `doneUrl`).

use std::collections::HashMap;

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{BaseUrl, RequestOrigin};
use crate::auth::Role;
use crate::auth::device::Poll;
use crate::auth::tokens::LOGIN_TOKEN_TTL;
use crate::error::ApiError;
use crate::server::AppState;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The routes of this module (`POST /-/v1/login` itself lives in `user.rs` and calls [`web_login`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/v1/device/authorize", post(post_authorize))
        .route("/-/v1/device/token", post(post_token))
        .route("/-/v1/done", get(get_done))
}

/// OAuth parameters, sent form-encoded (RFC 8628) or as JSON.
pub struct OAuthParams(HashMap<String, String>);

impl FromRequest<AppState> for OAuthParams {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = super::body::read(request, state.config.max_body_bytes).await?;
        let params = if bytes.is_empty() {
            HashMap::new()
        } else if is_json {
            let object: serde_json::Map<String, Value> =
                serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::bad_request("bad_json", format!("the body is not a JSON object: {e}"))
                })?;
            object
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect()
        } else {
            serde_urlencoded::from_bytes(&bytes).map_err(|e| {
                ApiError::bad_request("bad_form", format!("the body is not form-encoded: {e}"))
            })?
        };
        Ok(Self(params))
    }
}

/// An OAuth error answer (RFC 6749 §5.2 shape, which device clients parse).
fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": description,
        "code": error,
        "status": status.as_u16(),
    });
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `scope` is a space-separated list of a role name and `@scope` restrictions.
fn parse_scope(scope: Option<&String>) -> Result<(Option<Role>, Vec<String>), ApiError> {
    let mut role = None;
    let mut scopes = Vec::new();
    for item in scope.map(String::as_str).unwrap_or("").split_whitespace() {
        if item.starts_with('@') {
            scopes.push(item.to_owned());
        } else {
            role = Some(Role::parse(item).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_scope",
                    format!("unknown scope `{item}`: use a role (ci-readonly, ci-publish, maintainer, admin) or @scope"),
                )
            })?);
        }
    }
    Ok((role, scopes))
}

/// `POST /-/v1/device/authorize`.
async fn post_authorize(
    State(app): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    BaseUrl(base): BaseUrl,
    OAuthParams(params): OAuthParams,
) -> Result<Response, ApiError> {
    let client = params
        .get("client_id")
        .map_or("device client", String::as_str);
    let (role, scopes) = parse_scope(params.get("scope"))?;
    let start = app
        .device
        .start(client, role, scopes, &origin, &base)
        .await?;
    let mut response = Json(start).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /-/v1/device/token`.
async fn post_token(
    State(app): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    OAuthParams(params): OAuthParams,
) -> Result<Response, ApiError> {
    if params.get("grant_type").is_some_and(|g| g != DEVICE_GRANT) {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only the device_code grant is supported here",
        ));
    }
    let Some(device_code) = params.get("device_code") else {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "device_code is required",
        ));
    };
    let bad = StatusCode::BAD_REQUEST;
    Ok(match app.device.poll(device_code, &origin).await? {
        Poll::Pending(_) => oauth_error(
            bad,
            "authorization_pending",
            "the code has not been confirmed in the browser yet",
        ),
        Poll::SlowDown(interval) => oauth_error(
            bad,
            "slow_down",
            &format!("polling too fast; wait {interval} seconds between polls"),
        ),
        Poll::Expired => oauth_error(
            bad,
            "expired_token",
            "the code expired or was used; start the login again",
        ),
        Poll::Denied => oauth_error(bad, "access_denied", "the login was denied in the browser"),
        Poll::Token(token) => {
            let mut response = Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": LOGIN_TOKEN_TTL.as_secs(),
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    })
}

/// npm's web login start: a device authorization whose page is `loginUrl` and whose poll URL,
/// carrying the device code, is `doneUrl` (npm-protocol.md §8.1).
pub async fn web_login(
    app: &AppState,
    origin: &crate::auth::Origin,
    base: &str,
) -> Result<Value, ApiError> {
    let start = app
        .device
        .start("npm login", None, Vec::new(), origin, base)
        .await?;
    Ok(json!({
        "loginUrl": start.verification_uri_complete,
        "doneUrl": format!("{base}/-/v1/done?sessionId={}", start.device_code),
    }))
}

/// Query of the web-login poll.
#[derive(Deserialize)]
pub struct DoneQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

/// `GET /-/v1/done?sessionId=…`: 202 with `Retry-After` until approved, then 200 with the token.
async fn get_done(
    State(app): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ApiError> {
    let wait = |seconds: u64| {
        let mut response = (StatusCode::ACCEPTED, Json(json!({}))).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    };
    Ok(match app.device.poll(&query.session_id, &origin).await? {
        Poll::Pending(seconds) | Poll::SlowDown(seconds) => wait(seconds),
        Poll::Token(token) => Json(json!({ "token": token })).into_response(),
        Poll::Denied => ApiError::user(
            StatusCode::FORBIDDEN,
            "access_denied",
            "the login was denied in the browser",
        )
        .into_response(),
        Poll::Expired => ApiError::user(
            StatusCode::GONE,
            "expired",
            "the login expired or was already used; run npm login again",
        )
        .into_response(),
    })
}
