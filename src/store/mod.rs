//! Storage: the metadata store seam ([`metadata`] and one trait per domain), its implementations
//! ([`sqlite`], [`postgres`]), and the blob store ([`blob`]). SQL lives only here.

pub mod accounts;
pub mod advisories;
pub mod attestations;
pub mod audit;
pub mod blob;
pub mod blob_claims;
mod group_sync;
pub mod keys;
pub mod logins;
pub mod metadata;
pub mod orgs;
pub mod packages;
pub mod postgres;
pub mod renderings;
pub mod sqlite;
pub mod stages;
pub mod tokens;
pub mod transfer;
pub mod trust;
pub mod webhooks;

pub use accounts::AccountStore;
pub use advisories::AdvisoryStore;
pub use attestations::AttestationStore;
pub use audit::AuditStore;
pub use blob::{BlobError, BlobKey, BlobStore};
pub use keys::KeyStore;
pub use logins::LoginStore;
pub use metadata::{Change, ChangeFeed, MetadataStore, Quota, ReplicaStatus, SharedBuckets, Store};
pub use orgs::OrgStore;
pub use packages::PackageStore;
pub use postgres::Postgres;
pub use renderings::RenderingStore;
pub use sqlite::Sqlite;
pub use stages::StageStore;
pub use tokens::TokenStore;
pub use trust::TrustStore;
pub use webhooks::WebhookStore;

/// A failure of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No connection could be had from the reader pool.
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    /// A stored JSON column did not parse.
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    /// PostgreSQL refused or failed a statement, or no connection could be had.
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
    /// A database task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Postgres(postgres::PgError::Db(err))
    }
}
