//! Blob claims every instance sees, for stores several instances share.
//!
//! Tarballs are stored under their content address, so two publishes of the same bytes write one
//! blob. A refused publish deletes the blob it wrote, unless a version references it or another
//! publish of those bytes holds it: that publish has written the blob and is about to commit.
//! Within one instance, [`crate::packages::blob_claims`] keeps these holds in memory; instances
//! sharing a database also record them there, so a refused publish on one instance never deletes
//! what an accepted publish on another is committing.
//!
//! Why claims rather than leaving refused blobs for a later sweep: a sweep has the same race (a
//! publish of the same bytes can start between its check and its delete), so it would need the
//! same claims, and the refused bytes would stay in the bucket until it ran.

use crate::store::StoreError;

/// The id of one claim (or discard) of a blob key.
pub type ClaimId = i64;

/// Claims on blob keys, kept where every instance sees them. A claim lapses after a lease, so
/// the claims of an instance that died lapse with it.
#[async_trait::async_trait]
pub trait SharedBlobClaims: Send + Sync {
    /// Claims `key` for a publish about to write that blob, waiting while any instance is
    /// deleting it, so the publish writes its bytes after the delete.
    async fn claim(&self, key: &str) -> Result<ClaimId, StoreError>;

    /// Turns claim `id` of `key` into a discard when no other live claim holds `key` and no
    /// version references it: `true`, and the caller deletes the blob, then [`release`]s `id`;
    /// until then, or until the discard's short lease lapses, every claim of `key` waits.
    /// `false`: the blob is in use, the claim is released, and the blob must stay.
    ///
    /// [`release`]: SharedBlobClaims::release
    async fn begin_discard(&self, id: ClaimId, key: &str) -> Result<bool, StoreError>;

    /// Ends claim (or discard) `id`.
    async fn release(&self, id: ClaimId) -> Result<(), StoreError>;
}
