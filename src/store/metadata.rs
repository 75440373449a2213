//! The metadata store seam. The core calls domain operations (one trait per domain, in the
//! sibling modules); [`super::Sqlite`] and [`super::postgres::Postgres`] implement all of them.
//! Decisions a change depends on (may this caller publish, is this name free) are made by pure
//! functions of the core over facts the store loads inside the change's own transaction, so the
//! rules are written once and hold under concurrent writers on either store.

use std::sync::Arc;

use super::{
    AccountStore, AuditStore, LoginStore, OrgStore, PackageStore, RenderingStore, StoreError,
    TokenStore, WebhookStore,
};

/// Every domain's operations, plus what the server asks of the store as a whole.
#[async_trait::async_trait]
pub trait MetadataStore:
    AccountStore
    + TokenStore
    + LoginStore
    + PackageStore
    + RenderingStore
    + OrgStore
    + WebhookStore
    + AuditStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`, for logs and `/-/health`.
    fn kind(&self) -> &'static str;

    /// Answers whether the store takes queries (for `/-/health/ready`).
    async fn check(&self) -> Result<(), StoreError>;

    /// The schema version the store is at, for `packr migrate`.
    async fn schema_version(&self) -> Result<i64, StoreError>;

    /// Changes other instances make, for a store several instances share; `None` when this
    /// instance makes every change itself (SQLite).
    fn watch_changes(&self) -> Option<ChangeFeed> {
        None
    }
}

/// A change another instance made, which caches of this one must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something about this package changed (versions, tags, owners, access).
    Package(String),
    /// A token was revoked: tokens checked recently must be checked again.
    Tokens,
    /// Anything may have changed: an org's members or grants, or notifications were missed (the
    /// listener reconnected). Caches forget everything.
    Everything,
}

/// The changes of other instances, as they commit.
pub type ChangeFeed = tokio::sync::mpsc::UnboundedReceiver<Change>;

/// The metadata store the server and the CLI share.
pub type Store = Arc<dyn MetadataStore>;
