//! Account changes made by another process (`packr user disable`, `packr user add` demoting or
//! resetting a user, on the same data directory or database, or another instance) reach this
//! server's checked-token memory within one watch interval, instead of the memory's whole TTL.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::checked::CheckedTokens;
use crate::store::Store;

/// Reads the accounts' stamp every `every` until `stop`, clearing `checked` when it moves.
pub(super) async fn run(
    store: &Store,
    checked: &CheckedTokens,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match store.standing_stamp().await {
            Ok(stamp) => {
                if seen.is_some_and(|seen| seen != stamp) {
                    checked.clear();
                }
                seen = Some(stamp);
            }
            Err(err) => tracing::warn!(error = %err, "reading the accounts' stamp failed"),
        }
    }
}
