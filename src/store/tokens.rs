//! The tokens part of the metadata store seam. Tokens: issue, find by hash, list, revoke, record use.

/// Tokens operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {}
