//! The tokens part of the metadata store seam. Tokens: issue, find (with the owner, by hash, by
//! id prefix), list, revoke, record use.

use super::StoreError;
use super::accounts::{Standing, UserRow};
use crate::audit::AuditEvent;

/// A stored token (never the token itself: only its hash).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// The JWT's `jti`.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Hex SHA-256 of the whole token.
    pub token_hash: String,
    /// Preset role name.
    pub role: String,
    /// Scope restriction (`@acme`), empty for all scopes.
    pub scopes: Vec<String>,
    /// Label given at creation.
    pub name: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry time (ms).
    pub expires_at: Option<i64>,
    /// Revocation time (ms).
    pub revoked_at: Option<i64>,
    /// Networks the token may be used from (`10.0.0.0/8`), empty for anywhere.
    pub cidr: Vec<String>,
    /// A short, non-secret piece of the token shown in listings so people can tell tokens apart.
    pub display: String,
    /// Last use (ms), as of the last usage flush.
    pub last_used_at: Option<i64>,
    /// Requests authenticated with the token, as of the last usage flush.
    pub use_count: i64,
    /// Who issued the token for a service account (`operator`, or an admin's name); `None` for
    /// a token its owner made.
    pub issued_by: Option<String>,
}

/// Which tokens a listing shows.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    /// Only this owner's tokens.
    pub user_id: Option<i64>,
    /// Leave out revoked tokens and those expired at `now`.
    pub live_at: Option<i64>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// Uses of one token counted in memory since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUses {
    /// The token's id.
    pub token_id: String,
    /// Uses to add.
    pub count: i64,
    /// The latest of them (ms).
    pub last_at: i64,
}

/// A token found for authentication, with its owner and the owner's standing, read together.
#[derive(Debug, Clone)]
pub struct FoundToken {
    /// The token's row.
    pub token: TokenRow,
    /// Its owner.
    pub user: UserRow,
    /// The owner's standing.
    pub standing: Standing,
}

/// Builds the audit event of a revocation once the store has found the token and its owner.
pub type TokenAudit = Box<dyn FnOnce(&TokenRow, &UserRow) -> AuditEvent + Send>;

/// Token operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a newly issued token with the events of its creation, in one transaction.
    async fn insert_token(
        &self,
        token: TokenRow,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError>;

    /// The token with this id, its owner and the owner's standing, in one query: every request
    /// that a token's memory cannot answer runs it.
    async fn find_token(&self, id: &str) -> Result<Option<FoundToken>, StoreError>;

    /// The token whose whole text hashes to `token_hash`.
    async fn find_token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError>;

    /// The ids (at most 20, in order) of the tokens whose id starts with `prefix`, of one owner
    /// or of everyone, each with whether it is still unrevoked.
    async fn token_ids_with_prefix(
        &self,
        owner: Option<i64>,
        prefix: &str,
    ) -> Result<Vec<(String, bool)>, StoreError>;

    /// Tokens matching `filter` with their owners' names, newest first, and how many match.
    async fn list_tokens(
        &self,
        filter: TokenFilter,
    ) -> Result<(Vec<(TokenRow, String)>, i64), StoreError>;

    /// Revokes the live token with this hash at `now` and records `audit(token, owner)` with
    /// it; answers the revoked token, `None` when no live token has this hash.
    async fn revoke_token_by_hash(
        &self,
        token_hash: &str,
        now: i64,
        audit: TokenAudit,
    ) -> Result<Option<TokenRow>, StoreError>;

    /// Revokes the live token with this id at `now` and records `audit(token, owner)` with it;
    /// answers the revoked token, `None` when no live token has this id.
    async fn revoke_token_by_id(
        &self,
        id: &str,
        now: i64,
        audit: TokenAudit,
    ) -> Result<Option<TokenRow>, StoreError>;

    /// Adds counted uses to the tokens' usage data in one transaction. Counts are added to the
    /// stored ones (never overwritten), so instances flushing at once lose none.
    async fn add_token_uses(&self, uses: Vec<TokenUses>) -> Result<(), StoreError>;
}
