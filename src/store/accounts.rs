//! The accounts part of the metadata store seam. Users: look-up, creation, roles, disabling, the standing that ends sessions.

/// Users operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {}
