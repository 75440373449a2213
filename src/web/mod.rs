//! Server-rendered pages: `/-/cli/auth`, where a person confirms a terminal's login, and the OAuth
//! sign-in redirects that lead back to it.

mod cli_auth;
mod oauth;

pub use cli_auth::{session_user, start_session};

use axum::Router;

use crate::server::AppState;

/// Every page route.
pub fn routes() -> Router<AppState> {
    cli_auth::routes().merge(oauth::routes())
}
