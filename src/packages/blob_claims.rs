//! Blobs that publishes in flight rely on. Tarballs are stored under their content address, so two
//! publishes of the same bytes share one blob; a refused publish must not delete it while another
//! publish of those bytes has written it and is about to commit. Checking the database alone cannot
//! see such a publish, because it writes the blob before its version row.
//!
//! [`BlobClaims`] holds this instance's claims in memory. Instances sharing a database also hold a
//! [`SharedClaim`] there ([`crate::store::blob_claims`]), so publishes on other instances count too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::StoreError;
use crate::store::blob_claims::{ClaimId, SharedBlobClaims};

/// How long a refused publish's delete of its blob may take before it is left to its lease.
pub const DISCARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The in-flight publishes of each blob key, and the keys being discarded.
#[derive(Debug, Default)]
pub struct BlobClaims {
    keys: Mutex<HashMap<String, KeyState>>,
    discarded: Notify,
}

#[derive(Debug, Default)]
struct KeyState {
    publishes: usize,
    discarding: bool,
}

/// One publish's hold on a blob key, from before it writes the blob until it is done.
#[derive(Debug)]
pub struct Claim {
    claims: Arc<BlobClaims>,
    key: String,
}

/// A discard under way: no publish can claim the key until it is dropped.
#[derive(Debug)]
pub struct Discard<'a> {
    claim: &'a Claim,
}

impl BlobClaims {
    fn keys(&self) -> MutexGuard<'_, HashMap<String, KeyState>> {
        // The map stays consistent whatever panicked while holding it: every update is one step.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `key` for a publish about to write that blob, waiting while it is being discarded,
    /// so the publish writes its bytes after the delete and never commits a version without them.
    pub async fn claim(self: &Arc<Self>, key: &str) -> Claim {
        loop {
            let notified = self.discarded.notified();
            tokio::pin!(notified);
            // Registered before the check, so a discard ending in between still wakes this task.
            notified.as_mut().enable();
            {
                let mut keys = self.keys();
                let state = keys.entry(key.to_owned()).or_default();
                if !state.discarding {
                    state.publishes += 1;
                    return Claim {
                        claims: Arc::clone(self),
                        key: key.to_owned(),
                    };
                }
            }
            notified.await;
        }
    }
}

impl Claim {
    /// Starts discarding the claimed blob, unless another publish of the same bytes holds it too.
    pub fn discard(&self) -> Option<Discard<'_>> {
        let mut keys = self.claims.keys();
        let state = keys.get_mut(&self.key)?;
        if state.publishes > 1 || state.discarding {
            return None;
        }
        state.discarding = true;
        Some(Discard { claim: self })
    }
}

impl Drop for Discard<'_> {
    fn drop(&mut self) {
        let claims = &self.claim.claims;
        if let Some(state) = claims.keys().get_mut(&self.claim.key) {
            state.discarding = false;
        }
        claims.discarded.notify_waiters();
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut keys = self.claims.keys();
        if let Some(state) = keys.get_mut(&self.key) {
            state.publishes = state.publishes.saturating_sub(1);
            if state.publishes == 0 && !state.discarding {
                keys.remove(&self.key);
            }
        }
    }
}

/// A publish's claim on a blob key in the shared store, released when dropped (in the
/// background), unless it became a discard whose delete did not finish: that one holds the key
/// until its lease lapses, since the delete may still reach the blob store.
pub struct SharedClaim {
    claims: Arc<dyn SharedBlobClaims>,
    id: ClaimId,
    key: String,
    /// The claim needs no release (released, or left to its lease).
    settled: bool,
}

impl SharedClaim {
    /// Claims `key` in `claims`, waiting while any instance deletes that blob.
    pub async fn take(claims: &Arc<dyn SharedBlobClaims>, key: &str) -> Result<Self, StoreError> {
        let id = claims.claim(key).await?;
        Ok(Self {
            claims: Arc::clone(claims),
            id,
            key: key.to_owned(),
            settled: false,
        })
    }

    /// Runs `delete` when no instance holds the key or references the blob any more, then
    /// releases the key; otherwise only releases the claim. `delete` that does not finish within
    /// [`DISCARD_TIMEOUT`] leaves the key held until the discard's lease lapses.
    pub async fn discard<F>(mut self, delete: F) -> Result<(), StoreError>
    where
        F: std::future::Future<Output = ()>,
    {
        let discarding = self.claims.begin_discard(self.id, &self.key).await;
        // Released by `begin_discard` unless it answered `true`; an error leaves it to its lease.
        self.settled = true;
        if !discarding? {
            return Ok(());
        }
        if tokio::time::timeout(DISCARD_TIMEOUT, delete).await.is_err() {
            tracing::warn!(
                key = self.key,
                "deleting a refused publish's blob took too long; its key stays held until the lease lapses"
            );
            return Ok(());
        }
        self.claims.release(self.id).await
    }
}

impl Drop for SharedClaim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (claims, id) = (Arc::clone(&self.claims), self.id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(err) = claims.release(id).await {
                tracing::warn!(error = %err, "could not release a blob claim; it lapses with its lease");
            }
        });
    }
}

impl std::fmt::Debug for SharedClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedClaim")
            .field("id", &self.id)
            .field("key", &self.key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_blob_another_publish_holds_is_not_discarded() {
        let claims = Arc::new(BlobClaims::default());
        let refused = claims.claim("k").await;
        let accepted = claims.claim("k").await;
        assert!(refused.discard().is_none());
        drop(accepted);
        assert!(refused.discard().is_some());
    }

    #[tokio::test]
    async fn a_publish_of_the_same_bytes_waits_until_the_discard_is_over() {
        let claims = Arc::new(BlobClaims::default());
        let refused = claims.claim("k").await;
        let discard = refused.discard().unwrap();
        let waiting = tokio::spawn({
            let claims = Arc::clone(&claims);
            async move { claims.claim("k").await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiting.is_finished(),
            "claimed while the blob was being deleted"
        );
        drop(discard);
        let next = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the claim is granted once the discard ends")
            .unwrap();
        drop(refused);
        assert!(next.discard().is_some());
        drop(next);
        assert!(
            claims.keys().is_empty(),
            "finished claims leave nothing behind"
        );
    }

    #[tokio::test]
    async fn other_keys_are_independent() {
        let claims = Arc::new(BlobClaims::default());
        let a = claims.claim("a").await;
        let _discard = a.discard().unwrap();
        let b = tokio::time::timeout(Duration::from_secs(1), claims.claim("b"))
            .await
            .unwrap();
        assert!(b.discard().is_some());
    }
}
