//! Login, identity and logout: legacy CouchDB login/adduser, `POST /-/v1/login` with a password,
//! whoami, ping, logout and the user document `npm owner add` reads (npm-protocol.md §8).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{Authenticated, BaseUrl, NpmJson, RequestOrigin, bearer, text_field};
use crate::auth::AuthError;
use crate::auth::Origin;
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::accounts::UserRow;

const USER_PREFIX: &str = "org.couchdb.user:";

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/ping", get(get_ping))
        .route("/-/whoami", get(get_whoami))
        .route("/-/v1/login", post(post_login))
        .route("/-/user/{user}", put(put_user).get(get_user))
        .route("/-/user/{user}/-rev/{rev}", put(put_user_rev))
        .route("/-/user/token/{token}", delete(delete_token))
}

fn user_from_path(raw: &str) -> Result<&str, ApiError> {
    raw.strip_prefix(USER_PREFIX)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::not_found(format!("no such user document: {raw}")))
}

/// Logs in with a password, or signs up (`npm adduser` sends an e-mail) when sign-up is open.
async fn log_in_or_sign_up(
    app: &AppState,
    name: &str,
    body: &Value,
    origin: &Origin,
) -> Result<String, ApiError> {
    let password = text_field(body, "password")
        .ok_or_else(|| ApiError::bad_request("missing_password", "a password is required"))?;
    let user = match app.accounts.login(name, password).await {
        Ok(user) => user,
        Err(AuthError::BadPassword) if text_field(body, "email").is_some() => {
            let email = text_field(body, "email").unwrap_or_default();
            sign_up(app, name, email, password).await?
        }
        Err(err) => return Err(err.into()),
    };
    let token = app.tokens.issue_login(&user, "npm login", origin).await?;
    tracing::info!(user = %user.name, "logged in");
    Ok(token)
}

/// `npm adduser` for a name the login did not accept: a new account if the name is free and
/// sign-up is open. A taken name stays a wrong password; sign-up itself cannot hide that a name
/// exists, but a login without an e-mail never tells.
async fn sign_up(
    app: &AppState,
    name: &str,
    email: &str,
    password: &str,
) -> Result<UserRow, ApiError> {
    if app.accounts.find(name).await?.is_some() {
        return Err(AuthError::BadPassword.into());
    }
    if !app.config.allow_signup {
        return Err(AuthError::SignupClosed.into());
    }
    Ok(app
        .accounts
        .sign_up(name, email, password.to_owned())
        .await?)
}

/// `PUT /-/user/org.couchdb.user:NAME`: legacy `npm login` / `npm adduser`.
async fn put_user(
    State(app): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Path(user): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = user_from_path(&user)?;
    if let Some(body_name) = text_field(&body, "name")
        && body_name != name
    {
        return Err(ApiError::bad_request(
            "name_mismatch",
            format!("the body names {body_name} but the URL names {name}"),
        ));
    }
    let token = log_in_or_sign_up(&app, name, &body, &origin).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "ok": true,
            "id": format!("{USER_PREFIX}{name}"),
            "rev": "_we_dont_use_revs_any_more",
            "token": token,
        })),
    ))
}

/// `PUT /-/user/org.couchdb.user:NAME/-rev/REV`: the same login, for clients that retry with a rev.
async fn put_user_rev(
    state: State<AppState>,
    origin: RequestOrigin,
    Path((user, _rev)): Path<(String, String)>,
    body: NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    put_user(state, origin, Path(user), body).await
}

/// `GET /-/user/org.couchdb.user:NAME`: name and e-mail, as `npm owner add` needs.
async fn get_user(
    State(app): State<AppState>,
    Authenticated(_caller): Authenticated,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = user_from_path(&user)?;
    let user = app
        .accounts
        .find(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no user named {name}")))?;
    Ok(Json(json!({
        "_id": format!("{USER_PREFIX}{}", user.name),
        "name": user.name,
        "email": user.email,
    })))
}

/// `POST /-/v1/login`: with `{name, password}` returns a 30-day token; without credentials it
/// starts npm's web login (a device authorization the person confirms in the browser).
async fn post_login(
    State(app): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    BaseUrl(base): BaseUrl,
    NpmJson(body): NpmJson,
) -> Result<Json<Value>, ApiError> {
    let Some(name) = text_field(&body, "name") else {
        return Ok(Json(super::device::web_login(&app, &origin, &base).await?));
    };
    let token = log_in_or_sign_up(&app, name, &body, &origin).await?;
    Ok(Json(json!({ "token": token })))
}

/// `GET /-/whoami`.
async fn get_whoami(Authenticated(caller): Authenticated) -> Json<Value> {
    Json(json!({ "username": caller.name }))
}

/// `GET /-/ping`.
async fn get_ping() -> Json<Value> {
    Json(json!({}))
}

/// `DELETE /-/user/token/:token`: `npm logout`, which sends the token both in the path and as its
/// bearer token. Sending it as the bearer token is the proof (the path alone may have been read
/// from a proxy's access log), and revoking an already revoked token that way succeeds, so a
/// logout never leaves a dead token in `.npmrc`. Any other live token of its owner may revoke it
/// too.
async fn delete_token(
    State(app): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    mut parts: Parts,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match bearer(&parts)? {
        None => return Err(AuthError::MissingToken.into()),
        Some(presented) if presented == token => app.tokens.revoke(&token, &origin).await?,
        Some(_) => {
            let Authenticated(caller) = Authenticated::from_request_parts(&mut parts, &app).await?;
            // Only a whole token names a token here, not an id or a prefix of one.
            if !token.contains('.') {
                return Err(AuthError::UnknownToken(token.chars().take(12).collect()).into());
            }
            let id = app.tokens.find_id(Some(caller.user_id), &token).await?;
            app.tokens.revoke_id(&id, Some(&caller), &origin).await?;
        }
    }
    Ok(Json(json!({ "ok": true })))
}
