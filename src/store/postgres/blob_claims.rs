//! PostgreSQL side of [`SharedBlobClaims`]: one row per claim in `blob_claims`, with a lease.
//! Every change to a key's claims first takes the advisory lock `blob:<key>`, so a discard's
//! look at the other claims and a new claim cannot interleave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::PgPool;
use super::packages::{exec, lock, opt};
use crate::clock;
use crate::store::StoreError;
use crate::store::blob_claims::{ClaimId, SharedBlobClaims};

/// How long a publish's claim holds without being released: far longer than a publish takes from
/// writing its blob to committing. A claim left by a dead instance only keeps a refused blob.
const CLAIM_LEASE_MS: i64 = 15 * 60 * 1000;
/// How long a discard holds the key without being released: longer than the delete may take
/// ([`crate::packages`] gives up on it well before), short, since publishes of the key wait.
pub const DISCARD_LEASE_MS: i64 = 60 * 1000;
/// How often a claim looks again while the key is being discarded.
const RETRY: Duration = Duration::from_millis(20);
/// Every this many claims, lapsed claims of every key are deleted.
const SWEEP_EVERY: u64 = 64;

/// The claims of one database.
pub struct PgBlobClaims {
    pool: PgPool,
    claims: AtomicU64,
}

impl PgBlobClaims {
    /// Claims in the database `pool` connects to.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            claims: AtomicU64::new(0),
        }
    }
}

fn key_lock(key: &str) -> String {
    format!("blob:{key}")
}

#[async_trait::async_trait]
impl SharedBlobClaims for PgBlobClaims {
    async fn claim(&self, key: &str) -> Result<ClaimId, StoreError> {
        if self.claims.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let client = self.pool.get().await?;
            // Lapsed rows are ignored by every check; this only keeps the table small.
            exec(
                &client,
                "DELETE FROM blob_claims WHERE id IN
                   (SELECT id FROM blob_claims WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED)",
                &[&clock::now_ms()],
            )
            .await?;
        }
        loop {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            lock(&tx, &key_lock(key)).await?;
            let now = clock::now_ms();
            let claimed = opt(
                &tx,
                "INSERT INTO blob_claims (blob_key, discarding, expires_at)
                 SELECT $1, FALSE, $2::BIGINT + $3::BIGINT
                 WHERE NOT EXISTS (SELECT 1 FROM blob_claims
                                   WHERE blob_key = $1 AND discarding AND expires_at > $2)
                 RETURNING id",
                &[&key, &now, &CLAIM_LEASE_MS],
            )
            .await?;
            tx.commit().await?;
            if let Some(row) = claimed {
                return Ok(row.get(0));
            }
            drop(client);
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn begin_discard(&self, id: ClaimId, key: &str) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &key_lock(key)).await?;
        let now = clock::now_ms();
        // Under the lock, each statement sees every commit before it: a publish of these bytes
        // either still holds its claim or has committed its version or stage (it releases after).
        let in_use = opt(
            &tx,
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM blob_claims
                                    WHERE blob_key = $1 AND id <> $2 AND expires_at > $3)
                         OR EXISTS (SELECT 1 FROM versions WHERE blob_key = $1)
                         OR EXISTS (SELECT 1 FROM stages WHERE blob_key = $1)",
            &[&key, &id, &now],
        )
        .await?
        .is_some();
        let discarding = !in_use
            && exec(
                &tx,
                "UPDATE blob_claims SET discarding = TRUE, expires_at = $2::BIGINT + $3::BIGINT
                 WHERE id = $1 AND expires_at > $2",
                &[&id, &now, &DISCARD_LEASE_MS],
            )
            .await?
                > 0;
        if !discarding {
            // In use, or this claim lapsed (another instance may have seen it gone): keep the blob.
            exec(&tx, "DELETE FROM blob_claims WHERE id = $1", &[&id]).await?;
        }
        tx.commit().await?;
        Ok(discarding)
    }

    async fn release(&self, id: ClaimId) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        exec(&client, "DELETE FROM blob_claims WHERE id = $1", &[&id]).await?;
        Ok(())
    }
}
