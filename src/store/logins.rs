//! The logins part of the metadata store seam. Logins in progress: device authorizations (RFC 8628) and OAuth states and linked identities.

/// Logins in progress operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait LoginStore: Send + Sync {}
