//! Who is calling and what they may do: roles, permissions, tokens, passwords and accounts.

mod account_watch;
pub mod accounts;
mod checked;
pub mod cidr;
pub mod device;
pub mod oauth;
pub mod password;
pub mod permissions;
pub mod secrets;
pub mod session;
pub mod tokens;
pub mod usage;

pub use accounts::Accounts;
pub use permissions::{Caller, Origin, Permission, Role, UserRole};
pub use tokens::Tokens;

use crate::store::StoreError;

/// Why a caller was not let in, or not allowed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials were sent where they are needed.
    #[error(
        "authentication required: add an _authToken for this registry to your .npmrc (npm login); for a CI publish through trusted publishing, its OIDC token exchange was refused: `npm trust list <package>` shows the trusted publishers, and the registry's log (or `npm publish --loglevel verbose`) says why"
    )]
    MissingToken,
    /// The token is malformed, forged, revoked, expired or belongs to a deleted user.
    #[error("your token is invalid, expired or revoked; log in again with npm login")]
    InvalidToken,
    /// The account was disabled (`packr user disable`): none of its tokens, sessions or logins work.
    #[error(
        "the account {0} is disabled on this registry, so its tokens and sessions no longer work; ask a registry admin to run `packr user enable {0}`"
    )]
    AccountDisabled(String),
    /// A valid token used from an address outside its CIDR allow-list.
    #[error(
        "this token may not be used from {ip}: it is limited to other networks; use it from an allowed network or create a token without a CIDR list"
    )]
    AddressNotAllowed {
        /// The caller's address.
        ip: String,
    },
    /// A token named by id (or prefix, or value) that does not exist or is not the caller's.
    #[error("there is no token `{0}`; `npm token list` shows the ids of your tokens")]
    UnknownToken(String),
    /// A name/password pair did not match.
    #[error("incorrect username or password")]
    BadPassword,
    /// Login for a name that has no account.
    #[error("there is no user with the username \"{0}\"")]
    NoSuchUser(String),
    /// `npm adduser` for a new name while sign-up is closed.
    #[error("sign-up is disabled on this registry; ask an admin to run `packr user add`")]
    SignupClosed,
    /// The token's role lacks a permission.
    #[error(
        "this token ({role}) lacks the {permission} permission; create a token with a role that has it"
    )]
    Forbidden {
        /// The token's role.
        role: Role,
        /// The permission needed.
        permission: Permission,
    },
    /// The token's scope restriction excludes the package.
    #[error(
        "this token may only {action} under {scopes}; create a token scoped to {wanted} to change {package}"
    )]
    OutsideScope {
        /// What was attempted (`publish`, `unpublish`, ...).
        action: &'static str,
        /// The token's scopes, comma-separated.
        scopes: String,
        /// The scope the package needs (or "an unrestricted token").
        wanted: String,
        /// The package.
        package: String,
    },
    /// A token a user made for themselves names a scope the user cannot write.
    #[error("{0}")]
    ScopeNotAllowed(String),
    /// Input that cannot be used (a bad user name, an empty password...).
    #[error("{0}")]
    Invalid(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or signing failed.
    #[error("{0}")]
    Internal(String),
}
