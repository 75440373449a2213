//! Rate-limit buckets in PostgreSQL, shared by every instance: the generic cell rate algorithm
//! (GCRA), one row per bucket holding its theoretical arrival time. Taking a request is one
//! atomic statement, so instances never race each other out of the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::PgPool;
use crate::clock;
use crate::store::{Quota, SharedBuckets, StoreError};

/// Every this many takes, buckets that have been full for an hour are deleted.
const SWEEP_EVERY: u64 = 1_000;
/// How long a full bucket's row is kept.
const IDLE_MS: i64 = 3_600_000;

/// The buckets of one database.
pub struct PgBuckets {
    pool: PgPool,
    takes: AtomicU64,
}

impl PgBuckets {
    /// Buckets in the database `pool` connects to.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            takes: AtomicU64::new(0),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

#[async_trait::async_trait]
impl SharedBuckets for PgBuckets {
    async fn take(&self, key: &str, quota: Quota) -> Result<Option<Duration>, StoreError> {
        let now = clock::now_ms();
        let period = millis(quota.period);
        let tolerance = period.saturating_mul(i64::from(quota.burst));
        let client = self.pool.get().await?;
        // A request is allowed while the bucket's arrival time, pushed one period on, stays within
        // the burst's tolerance of now.
        let allowed = client
            .query_opt(
                "INSERT INTO rate_limit_buckets AS b (key, tat) VALUES ($1, $2::BIGINT + $3::BIGINT)
                 ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, $2::BIGINT) + $3::BIGINT
                   WHERE GREATEST(b.tat, $2::BIGINT) + $3::BIGINT - $2::BIGINT <= $4::BIGINT
                 RETURNING tat",
                &[&key, &now, &period, &tolerance],
            )
            .await?
            .is_some();
        if self.takes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            client
                .execute(
                    "DELETE FROM rate_limit_buckets WHERE tat < $1",
                    &[&(now - IDLE_MS)],
                )
                .await?;
        }
        if allowed {
            return Ok(None);
        }
        let tat: Option<i64> = client
            .query_opt("SELECT tat FROM rate_limit_buckets WHERE key = $1", &[&key])
            .await?
            .map(|row| row.get(0));
        let wait = tat.map_or(0, |tat| tat + period - tolerance - now).max(0);
        Ok(Some(Duration::from_millis(wait.unsigned_abs())))
    }
}
