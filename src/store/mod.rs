//! Storage: the metadata store ([`sqlite`]; [`postgres`] in progress) and the blob store
//! ([`blob`]). SQL lives only here.

pub mod blob;
mod group_sync;
pub mod postgres;
pub mod sqlite;

pub use blob::{BlobError, BlobKey, BlobStore};
pub use sqlite::Sqlite;

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
    /// A database task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}
