//! The packages part of the metadata store seam. Packages: publish, read, dist-tags, deprecation, unpublish, owners, tombstones, scope owners.

/// Packages operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait PackageStore: Send + Sync {}
