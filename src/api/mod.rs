//! Packr's own JSON API (`/api/v1/...`): orgs and members, the audit log, webhooks.

mod audit_log;
mod orgs;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::npm::extract::Authenticated;
use crate::server::AppState;

/// A caller whose token carries the `admin` permission.
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        caller.require(Permission::Admin)?;
        Ok(Self(caller))
    }
}

/// Every route of the API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(audit_log::routes())
        .merge(orgs::routes())
}
