//! Server-rendered pages: `/cli/auth`, where a person confirms a terminal's login.

mod cli_auth;

pub use cli_auth::session_user;

use axum::Router;

use crate::server::AppState;

/// Every page route.
pub fn routes() -> Router<AppState> {
    cli_auth::routes()
}
