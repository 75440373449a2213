//! Packr's own JSON API (`/api/v1/...`): orgs and members, the audit log, webhooks, advisories.

mod advisories;
mod audit_log;
mod csrf;
mod orgs;
mod paging;
mod sessions;
mod tokens;
mod trusted_publishers;
mod webhooks;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use axum::http::header;
use axum_extra::extract::CookieJar;

use crate::auth::accounts::user_role;
use crate::auth::{AuthError, Caller, Permission};
use crate::error::ApiError;
use crate::npm::extract::{Authenticated, origin};
use crate::server::AppState;

/// An admin: a token with the `admin` permission, or a browser session of an admin user (whose
/// changes must pass the [`csrf`] checks).
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = if parts.headers.contains_key(header::AUTHORIZATION) {
            Authenticated::from_request_parts(parts, state).await?.0
        } else {
            let caller = session_caller(parts, state).await?;
            if !parts.method.is_safe() {
                csrf::check(parts, state)?;
            }
            caller
        };
        caller.require(Permission::Admin)?;
        Ok(Self(caller))
    }
}

/// The caller behind a `packr_session` cookie, acting with the user's strongest role.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let user = crate::web::session_user(state, &jar)
        .await
        .ok_or(AuthError::MissingToken)?;
    let account_role = user_role(&user);
    Ok(Caller {
        role: account_role.max_token_role(),
        user_role: account_role,
        service_token: false,
        user_id: user.id,
        name: user.name,
        email: user.email,
        token_id: "session".to_owned(),
        scopes: Vec::new(),
        origin: origin(parts),
    })
}

/// Every route of the API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(advisories::routes())
        .merge(audit_log::routes())
        .merge(orgs::routes())
        .merge(sessions::routes())
        .merge(tokens::routes())
        .merge(trusted_publishers::routes())
        .merge(webhooks::routes())
}
