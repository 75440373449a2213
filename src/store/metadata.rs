//! The metadata store seam. The core calls domain operations (one trait per domain, in the
//! sibling modules); [`super::Sqlite`] and [`super::postgres::Postgres`] implement all of them.
//! Decisions a change depends on (may this caller publish, is this name free) are made by pure
//! functions of the core over facts the store loads inside the change's own transaction, so the
//! rules are written once and hold under concurrent writers on either store.

use std::sync::Arc;

use super::{
    AccountStore, AuditStore, LoginStore, OrgStore, PackageStore, StoreError, TokenStore,
    WebhookStore,
};

/// Every domain's operations, plus what the server asks of the store as a whole.
#[async_trait::async_trait]
pub trait MetadataStore:
    AccountStore
    + TokenStore
    + LoginStore
    + PackageStore
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
}

/// The metadata store the server and the CLI share.
pub type Store = Arc<dyn MetadataStore>;
