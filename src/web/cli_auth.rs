//! `/-/cli/auth`: enter or confirm a device code, sign in, approve or deny. Works without
//! JavaScript; every form carries a CSRF token bound to the browser's nonce cookie.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::auth::AuthError;
use crate::auth::device::PendingRequest;
use crate::auth::session::{CSRF_COOKIE, SESSION_COOKIE};
use crate::clock;
use crate::npm::extract::RequestOrigin;
use crate::server::AppState;
use crate::store::accounts::UserRow;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/cli/auth", get(get_page))
        .route("/-/cli/auth/login", post(post_login))
        .route("/-/cli/auth/decide", post(post_decide))
}

/// What the page shows about a pending request.
struct RequestView {
    client: String,
    asked_at: String,
    ip: String,
    role: String,
    expires_at: String,
}

impl From<PendingRequest> for RequestView {
    fn from(r: PendingRequest) -> Self {
        let scopes = if r.scopes.is_empty() {
            String::new()
        } else {
            format!(", limited to {}", r.scopes.join(", "))
        };
        Self {
            client: r.client,
            asked_at: clock::iso(r.created_at),
            ip: r.ip.unwrap_or_else(|| "unknown".into()),
            role: format!(
                "{}{scopes}",
                r.requested_role
                    .unwrap_or_else(|| "your account's full access".into())
            ),
            expires_at: clock::iso(r.expires_at),
        }
    }
}

/// A "Sign in with ..." link to an OAuth provider.
struct ProviderLink {
    id: &'static str,
    name: String,
    href: String,
}

#[derive(Template)]
#[template(path = "cli_auth.html")]
struct Page {
    code: String,
    request: Option<RequestView>,
    user: Option<String>,
    csrf: String,
    message: Option<String>,
    done: Option<String>,
    providers: Vec<ProviderLink>,
}

/// The signed-in user of a request, from the session cookie: only while the account is enabled
/// and the cookie carries its current session generation (no password reset or disable since).
pub async fn session_user(app: &AppState, jar: &CookieJar) -> Option<UserRow> {
    let claim = app.sessions.session(jar.get(SESSION_COOKIE)?.value())?;
    let standing = app.accounts.standing(claim.user_id).await.ok()??;
    if standing.disabled_at.is_some() || standing.session_generation != claim.generation {
        return None;
    }
    app.accounts.find_by_id(claim.user_id).await.ok().flatten()
}

/// The `Set-Cookie` value that signs `user` in to this browser, bound to the user's current
/// session generation; refused for a disabled account.
pub async fn start_session(app: &AppState, user: &UserRow) -> Result<String, AuthError> {
    let standing = app
        .accounts
        .standing(user.id)
        .await?
        .ok_or_else(|| AuthError::NoSuchUser(user.name.clone()))?;
    if standing.disabled_at.is_some() {
        return Err(AuthError::AccountDisabled(user.name.clone()));
    }
    let value = app.sessions.issue(user.id, standing.session_generation);
    Ok(app.sessions.set_cookie(&value))
}

/// Renders the page, giving the browser a CSRF nonce cookie when it has none.
async fn render(
    app: &AppState,
    jar: &CookieJar,
    code: &str,
    message: Option<String>,
    done: Option<String>,
) -> Response {
    let mut headers = HeaderMap::new();
    let nonce = match jar.get(CSRF_COOKIE) {
        Some(cookie) if !cookie.value().is_empty() => cookie.value().to_owned(),
        _ => {
            let (nonce, set_cookie) = app.sessions.new_csrf_nonce();
            if let Ok(value) = HeaderValue::from_str(&set_cookie) {
                headers.insert(header::SET_COOKIE, value);
            }
            nonce
        }
    };
    let request = if code.is_empty() || done.is_some() {
        None
    } else {
        app.device
            .pending(code)
            .await
            .ok()
            .flatten()
            .map(RequestView::from)
    };
    let message = message.or_else(|| {
        (!code.is_empty() && request.is_none() && done.is_none())
            .then(|| "That code is unknown, expired or already used. Check your terminal for the current code.".to_owned())
    });
    let user = if request.is_some() {
        session_user(app, jar).await.map(|u| u.name)
    } else {
        None
    };
    let page = Page {
        code: code.to_owned(),
        request,
        user,
        csrf: app.sessions.csrf_token(&nonce),
        message,
        done,
        providers: app
            .oauth
            .providers()
            .map(|p| ProviderLink {
                id: p.id,
                name: p.display_name.clone(),
                href: format!("/api/auth/login/{}?code={}", p.id, urlencode(code)),
            })
            .collect(),
    };
    let status = if page.message.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    match page.render() {
        Ok(html) => (status, headers, Html(html)).into_response(),
        Err(err) => crate::error::ApiError::internal(err).into_response(),
    }
}

/// Query of `GET /-/cli/auth`.
#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    code: String,
}

async fn get_page(
    State(app): State<AppState>,
    jar: CookieJar,
    Query(query): Query<CodeQuery>,
) -> Response {
    render(&app, &jar, query.code.trim(), None, None).await
}

fn csrf_ok(app: &AppState, jar: &CookieJar, token: &str) -> bool {
    jar.get(CSRF_COOKIE)
        .is_some_and(|nonce| app.sessions.check_csrf(nonce.value(), token))
}

const CSRF_MESSAGE: &str =
    "This form expired or did not come from this site. Reload the page and try again.";

/// Form of the sign-in step.
#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    code: String,
    username: String,
    password: String,
}

async fn post_login(
    State(app): State<AppState>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if !csrf_ok(&app, &jar, &form.csrf) {
        return render(&app, &jar, &form.code, Some(CSRF_MESSAGE.into()), None).await;
    }
    let signed_in = match app.accounts.login(&form.username, &form.password).await {
        Ok(user) => start_session(&app, &user).await,
        Err(err) => Err(err),
    };
    let cookie = match signed_in {
        Ok(cookie) => cookie,
        Err(err) => {
            let message = match err {
                AuthError::AccountDisabled(_) => format!("{}.", capitalized(&err.to_string())),
                _ => "Incorrect username or password.".into(),
            };
            return render(&app, &jar, &form.code, Some(message), None).await;
        }
    };
    // Back to this page only: the code is the one parameter, encoded, so nothing can redirect elsewhere.
    let target = format!("/-/cli/auth?code={}", urlencode(&form.code));
    let mut response = Redirect::to(&target).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Form of the decision step.
#[derive(Deserialize)]
pub struct DecideForm {
    csrf: String,
    code: String,
    decision: String,
}

async fn post_decide(
    State(app): State<AppState>,
    jar: CookieJar,
    RequestOrigin(_origin): RequestOrigin,
    Form(form): Form<DecideForm>,
) -> Response {
    if !csrf_ok(&app, &jar, &form.csrf) {
        return render(&app, &jar, &form.code, Some(CSRF_MESSAGE.into()), None).await;
    }
    let Some(user) = session_user(&app, &jar).await else {
        return render(&app, &jar, &form.code, Some("Sign in first.".into()), None).await;
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return render(
                &app,
                &jar,
                &form.code,
                Some("Choose approve or deny.".into()),
                None,
            )
            .await;
        }
    };
    match app.device.decide(&form.code, &user, approve).await {
        Ok(true) if approve => {
            let done = format!("Approved: the terminal is now logged in as {}.", user.name);
            render(&app, &jar, &form.code, None, Some(done)).await
        }
        Ok(true) => {
            render(
                &app,
                &jar,
                &form.code,
                None,
                Some("Denied: the terminal was not logged in.".into()),
            )
            .await
        }
        Ok(false) => render(&app, &jar, &form.code, None, None).await,
        Err(err @ crate::auth::AuthError::ScopeNotAllowed(_)) => {
            render(&app, &jar, &form.code, Some(err.to_string()), None).await
        }
        Err(err) => crate::error::ApiError::from(err).into_response(),
    }
}
