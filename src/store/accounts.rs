//! The accounts part of the metadata store seam. Users: look-up, creation, roles, disabling, the
//! standing that ends sessions.

use super::StoreError;
use crate::audit::AuditEvent;

/// A stored account.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// E-mail shown as maintainer contact.
    pub email: String,
    /// Argon2 PHC string; `None` for accounts without a local password.
    pub password_hash: Option<String>,
    /// `admin`, `maintainer` or `reader`.
    pub role: String,
}

/// What decides whether an account's credentials still work, apart from each token's own row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// When `packr user disable` stopped the account (ms); `None` while it is enabled.
    pub disabled_at: Option<i64>,
    /// Carried in every session cookie; a cookie of an older generation is dead.
    pub session_generation: i64,
}

/// An account to create, or to reset when its name exists.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name, already validated.
    pub name: String,
    /// E-mail shown as maintainer contact.
    pub email: String,
    /// Argon2 PHC string of the password.
    pub password_hash: String,
    /// `admin`, `maintainer` or `reader`.
    pub role: String,
    /// Creation time (ms), kept by a reset.
    pub now: i64,
}

/// How a creation or reset of an account ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserWrite {
    /// The account was written; its id.
    Written(i64),
    /// Another account's name differs from the one asked for only in case (names are unique
    /// regardless of case); that account's name.
    CaseVariant(String),
    /// An account of exactly this name exists, and the operation does not overwrite one.
    Exists,
}

/// Builds the audit event of a change once the store has found the account it concerns.
pub type UserAudit = Box<dyn FnOnce(&UserRow) -> AuditEvent + Send>;

/// Account operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    /// The user with exactly this login name.
    async fn find_user_by_name(&self, name: &str) -> Result<Option<UserRow>, StoreError>;

    /// The user with this id.
    async fn find_user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError>;

    /// Creates `user`, or updates the e-mail, password and role of the account of exactly that
    /// name, and ends its browser sessions (a new password ends the old ones); refused with
    /// [`UserWrite::CaseVariant`] when another account's name differs only in case.
    async fn put_user(&self, user: NewUser) -> Result<UserWrite, StoreError>;

    /// Creates `user` (`npm adduser`); never touches an existing account: [`UserWrite::Exists`]
    /// for a taken name, [`UserWrite::CaseVariant`] for one taken in another case.
    async fn create_user(&self, user: NewUser) -> Result<UserWrite, StoreError>;

    /// Whether a user's tokens and sessions work, and its session generation; `None` for an
    /// unknown id.
    async fn user_standing(&self, id: i64) -> Result<Option<Standing>, StoreError>;

    /// Disables (`Some(now)`) or enables (`None`) the user named `name`, ending its sessions
    /// either way (a second disable keeps the first time). When that changed whether the
    /// account is disabled, records `audit(user)` in the same transaction. Answers whether it
    /// changed, `None` for an unknown name.
    async fn set_user_disabled(
        &self,
        name: &str,
        disabled_at: Option<i64>,
        audit: UserAudit,
    ) -> Result<Option<bool>, StoreError>;

    /// A value that changes whenever any account's standing or role may have changed: every
    /// such change bumps a session generation, and adding a user changes the count. Servers
    /// poll it to forget the tokens they checked (`auth::account_watch`).
    async fn standing_stamp(&self) -> Result<(i64, i64), StoreError>;
}
