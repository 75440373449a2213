//! The accounts part of the metadata store seam. Users: look-up, creation, roles, disabling, the standing that ends sessions.

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

/// Users operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {}
