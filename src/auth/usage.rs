//! Token usage data (`last_used_at`, `use_count`), gathered in memory and written in batches.
//!
//! Authenticating a request must not write to the database: SQLite has one writer, and a write
//! per install request would queue every request behind it. Each use is counted in memory
//! instead, and `packr serve` flushes the counts in one transaction every few seconds
//! (`PACKR_TOKEN_USAGE_FLUSH`) and once more when it stops. So listings lag by up to one flush
//! interval, and a crash loses at most that interval's counts. A flush adds its counts to the
//! stored ones, so instances sharing one database count every use between them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::store::tokens::TokenUses;
use crate::store::{Store, StoreError};

/// Uses of one token since the last flush.
#[derive(Debug, Clone, Copy)]
struct Uses {
    count: i64,
    last_at: i64,
}

/// Uses counted since the last flush, by token id.
pub struct TokenUsage {
    store: Store,
    pending: Mutex<HashMap<String, Uses>>,
}

impl TokenUsage {
    /// An empty counter writing to `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            pending: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Uses>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one use of a token at `at` (ms).
    pub fn record(&self, token_id: &str, at: i64) {
        let mut pending = self.lock();
        match pending.get_mut(token_id) {
            Some(uses) => {
                uses.count += 1;
                uses.last_at = uses.last_at.max(at);
            }
            None => {
                pending.insert(
                    token_id.to_owned(),
                    Uses {
                        count: 1,
                        last_at: at,
                    },
                );
            }
        }
    }

    /// Writes the counted uses in one transaction and forgets them; on failure they are kept for
    /// the next flush. Returns how many tokens were updated.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let batch: Vec<(String, Uses)> = self.lock().drain().collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let count = batch.len();
        let written = batch
            .iter()
            .map(|(id, uses)| TokenUses {
                token_id: id.clone(),
                count: uses.count,
                last_at: uses.last_at,
            })
            .collect();
        let result = self.store.add_token_uses(written).await;
        if let Err(err) = result {
            let mut pending = self.lock();
            for (id, uses) in batch {
                let kept = pending.entry(id).or_insert(Uses {
                    count: 0,
                    last_at: uses.last_at,
                });
                kept.count += uses.count;
                kept.last_at = kept.last_at.max(uses.last_at);
            }
            return Err(err);
        }
        Ok(count)
    }

    /// Flushes every `every` until `stop` is cancelled, then once more.
    pub async fn flush_until(&self, every: Duration, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if let Err(err) = self.flush().await {
                tracing::warn!(error = %err, "writing token usage data failed; retrying later");
            }
        }
        if let Err(err) = self.flush().await {
            tracing::warn!(error = %err, "writing token usage data at shutdown failed");
        }
    }
}
