//! The metadata store seam. The core calls domain operations (one trait per domain, in the
//! sibling modules); [`super::Sqlite`] and [`super::postgres::Postgres`] implement all of them.
//! Decisions a change depends on (may this caller publish, is this name free) are made by pure
//! functions of the core over facts the store loads inside the change's own transaction, so the
//! rules are written once and hold under concurrent writers on either store.

use std::sync::Arc;

use super::{
    AccountStore, AdvisoryStore, AttestationStore, AuditStore, KeyStore, LoginStore, OrgStore,
    PackageStore, RenderingStore, StageStore, StoreError, TokenStore, TrustStore, WebhookStore,
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
    + KeyStore
    + AdvisoryStore
    + AttestationStore
    + TrustStore
    + StageStore
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

    /// Rate-limit buckets every instance draws from, for a store several instances share;
    /// `None` when one instance's own memory is the whole registry's (SQLite).
    fn shared_buckets(&self) -> Option<Arc<dyn SharedBuckets>> {
        None
    }

    /// Claims on blob keys every instance sees, for a store several instances share; `None`
    /// when one instance's claims in memory cover the whole registry (SQLite).
    fn shared_blob_claims(&self) -> Option<Arc<dyn super::blob_claims::SharedBlobClaims>> {
        None
    }

    /// The read replicas' state at their last check, in configured order (for `/-/health`);
    /// empty without replicas.
    fn replica_status(&self) -> Vec<ReplicaStatus> {
        Vec::new()
    }
}

/// A bucket's quota: one request per `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time that earns one request.
    pub period: std::time::Duration,
    /// Requests a full bucket allows at once.
    pub burst: u32,
}

/// Token buckets kept in the store, so that a limit holds for all instances together.
#[async_trait::async_trait]
pub trait SharedBuckets: Send + Sync {
    /// Takes one request from the bucket `key`: `None` when allowed, else how long until the
    /// bucket allows one again.
    async fn take(
        &self,
        key: &str,
        quota: Quota,
    ) -> Result<Option<std::time::Duration>, StoreError>;
}

/// What `/-/health` shows of one read replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Whether the last check got an answer.
    pub reachable: bool,
    /// Whether reads go to it (reachable, a standby, lag within the maximum).
    pub in_use: bool,
    /// How far behind the primary it was at the last check, when known.
    pub lag: Option<std::time::Duration>,
    /// Why it is not in use, when it is not.
    pub problem: Option<String>,
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
