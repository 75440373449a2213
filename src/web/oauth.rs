//! `GET /api/auth/login/:provider` (leave for the provider) and `GET /api/auth/callback/:provider`
//! (come back signed in). The only place a sign-in ends is `/-/cli/auth?code=<the stored code>`:
//! no URL from the request is ever redirected to.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::auth::oauth::{OAuthError, STATE_TTL};
use crate::npm::extract::{BaseUrl, RequestOrigin};
use crate::server::AppState;

/// The cookie binding a sign-in's `state` to the browser that started it (login CSRF).
const STATE_COOKIE: &str = "packr_oauth_state";
/// Longest device user code accepted (they are 9 characters; typing may add spaces).
const MAX_CODE_LENGTH: usize = 32;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login/{provider}", get(get_login))
        .route("/api/auth/callback/{provider}", get(get_callback))
}

#[derive(Template)]
#[template(path = "oauth_error.html")]
struct ErrorPage {
    message: String,
    back: Option<String>,
}

/// The failure page, linking back to `/-/cli/auth` with `code` when there is one.
fn failure(status: StatusCode, message: String, code: Option<&str>) -> Response {
    let page = ErrorPage {
        message,
        back: code.map(cli_auth_path),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match page.render() {
        Ok(html) => (status, headers, Html(html)).into_response(),
        Err(err) => crate::error::ApiError::internal(err).into_response(),
    }
}

fn failure_of(err: OAuthError, code: Option<&str>) -> Response {
    let status = match &err {
        OAuthError::UnknownProvider(_) => StatusCode::NOT_FOUND,
        OAuthError::BadState | OAuthError::Invalid(_) | OAuthError::Refused { .. } => {
            StatusCode::BAD_REQUEST
        }
        OAuthError::NoAccount { .. }
        | OAuthError::SeveralAccounts { .. }
        | OAuthError::AdminNeedsLink { .. }
        | OAuthError::DomainNotAllowed { .. }
        | OAuthError::Disabled(_) => StatusCode::FORBIDDEN,
        OAuthError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
        OAuthError::Store(_) | OAuthError::Internal(_) => {
            return crate::error::ApiError::internal(err).into_response();
        }
    };
    tracing::info!(error = %err, "OAuth sign-in failed");
    let mut message = err.to_string();
    if let Some(first) = message.get(..1) {
        message.replace_range(..1, &first.to_uppercase());
    }
    if !message.ends_with('.') {
        message.push('.');
    }
    failure(status, message, code)
}

/// `/-/cli/auth?code=..`: the one place a sign-in returns to.
fn cli_auth_path(code: &str) -> String {
    let code: String = form_urlencoded::byte_serialize(code.as_bytes()).collect();
    format!("/-/cli/auth?code={code}")
}

/// A 302 to `location` setting `cookies`.
fn found(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

fn state_cookie(app: &AppState, value: &str, max_age: u64) -> String {
    let secure = app
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let secure = if secure { "; Secure" } else { "" };
    // Lax, so the provider's top-level redirect back carries it.
    format!(
        "{STATE_COOKIE}={value}; Path=/api/auth/callback/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    )
}

/// Query of `GET /api/auth/login/:provider`.
#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    code: String,
}

async fn get_login(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    BaseUrl(base_url): BaseUrl,
    Query(query): Query<LoginQuery>,
) -> Response {
    let code = query.code.trim();
    let code_ok = code.len() <= MAX_CODE_LENGTH
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !code_ok {
        let message = "That is not a login code. Check your terminal for the current code.";
        return failure(StatusCode::BAD_REQUEST, message.into(), None);
    }
    match app.oauth.begin(&provider, code, &base_url).await {
        Ok(started) => found(
            &started.authorize_url,
            &[state_cookie(&app, &started.state, STATE_TTL.as_secs())],
        ),
        Err(err) => failure_of(err, Some(code)),
    }
}

/// Query of `GET /api/auth/callback/:provider`: a code and state, or an error (RFC 6749 §4.1.2).
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn get_callback(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    RequestOrigin(origin): RequestOrigin,
    jar: CookieJar,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return failure_of(OAuthError::BadState, None);
    };
    let pending = match app.oauth.take_pending(&provider, state).await {
        Ok(pending) => pending,
        Err(err) => return failure_of(err, None),
    };
    let return_code = pending.return_code().to_owned();
    let back = Some(return_code.as_str());
    let same_browser = jar
        .get(STATE_COOKIE)
        .is_some_and(|cookie| app.oauth.same_state(cookie.value(), state));
    if !same_browser {
        let message = "This sign-in was started in another browser (or its cookie expired). Start again from the login page.";
        return failure(StatusCode::BAD_REQUEST, message.into(), back);
    }
    if let Some(error) = &query.error {
        let reason: String = query
            .error_description
            .as_deref()
            .unwrap_or(error)
            .chars()
            .take(200)
            .collect();
        let message =
            format!("The provider did not sign you in: {reason}. Start again from the login page.");
        return failure(StatusCode::BAD_REQUEST, message, back);
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        let message = "The provider sent no authorization code. Start again from the login page.";
        return failure(StatusCode::BAD_REQUEST, message.into(), back);
    };
    let return_to = cli_auth_path(&return_code);
    // A Packr session already in this browser is the explicit link an admin account needs.
    let signed_in = crate::web::session_user(&app, &jar)
        .await
        .map(|user| user.id);
    match app.oauth.complete(pending, code, signed_in, &origin).await {
        Ok(user) => match crate::web::start_session(&app, &user).await {
            Ok(session) => found(&return_to, &[session, state_cookie(&app, "", 0)]),
            Err(err) => crate::error::ApiError::from(err).into_response(),
        },
        Err(err) => failure_of(err, back),
    }
}
