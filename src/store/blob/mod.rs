//! The blob store: tarball bytes under content addresses, on the local filesystem ([`fs`]) or in
//! an S3-compatible bucket ([`s3`]).

pub mod fs;
pub mod s3;

use bytes::Bytes;
use futures_util::stream::BoxStream;

/// Cache policy of tarball bytes: the bytes behind a tarball URL never change.
pub const IMMUTABLE_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

/// A content address: the hex SHA-512 of the bytes, so writes are idempotent and a failed
/// publish can never overwrite another publish's file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Accepts 128 lower-case hex characters.
    pub fn parse(text: &str) -> Option<Self> {
        let valid =
            text.len() == 128 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(text.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A blob being read: its length and a stream of its bytes.
pub struct Blob {
    /// Total length in bytes.
    pub length: u64,
    /// The bytes, in chunks.
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

/// A failure of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Local I/O failed.
    #[error("blob storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage service could not be reached, timed out or kept failing with 5xx after the
    /// bounded retries; the request may succeed later.
    #[error("blob storage is unavailable: {0}")]
    Unavailable(String),
    /// The storage service refused the request (wrong credentials, missing bucket, ...); retrying
    /// will not help until the configuration changes.
    #[error("blob storage refused the request: {0}")]
    Refused(String),
}

/// Where tarballs live.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores bytes under a key; storing the same key twice is harmless.
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), BlobError>;
    /// Opens a blob for streaming, or `None` when absent.
    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError>;
    /// Deletes a blob; deleting an absent blob is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// Answers whether the store is usable (for `/health/ready`).
    async fn check(&self) -> Result<(), BlobError>;
    /// A short-lived URL from which a client can download the blob directly, or `None` when the
    /// store cannot hand out URLs (the bytes are then streamed through Packr).
    async fn presigned_get(&self, key: &BlobKey) -> Result<Option<String>, BlobError>;
    /// Whether other instances may write and delete the same blobs (a bucket), so that a blob's
    /// claims must be shared with them through the metadata store.
    fn shared(&self) -> bool {
        true
    }
}
