//! Read replicas: package reads go to a streaming replica of the primary when that replica is
//! known to hold every change of the package this instance knows of, and to the primary otherwise.
//!
//! Positions are WAL positions (LSNs, as byte offsets). Every ~100 ms a poller samples the
//! primary's WAL position and each replica's replay position.
//! - A change is *fenced*: this instance's own package writes (after they commit) and every change
//!   another instance announces (when its notification arrives) mark the package; the next primary
//!   sample taken after the mark gives the position that change is at or before. Until the
//!   package's mark has a position, and until a replica has replayed past it, that package is read
//!   from the primary. A reconnect of the change listener (notifications may have been missed) or
//!   an org change fences every package at once; so does a listener that is not connected.
//! - A replica that does not answer, is not in recovery (promoted), or is more than the maximum lag
//!   behind is not used; it is used again once a poll finds it healthy and past every fence.
//! - A read that finds nothing on a replica (a package or version it has not replayed yet) or fails
//!   there is asked of the primary.
//!
//! Lag is measured against the primary's samples: a replica lags by the age of the oldest sample
//! of a WAL position it has not replayed (0 when it has replayed all the primary had flushed), so
//! an idle primary does not make a caught-up replica look late.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::{PgError, PgPool};
use crate::store::{Change, ReplicaStatus};

/// How often the primary's position and the replicas' replay positions are sampled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a read may take on a replica before it is asked of the primary instead (a replica
/// cut off by the network would otherwise hold reads until TCP gives up).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one poll of one database may take before it counts as unreachable.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// The replicas of one primary and what this instance knows of their progress.
pub struct Replicas {
    primary: PgPool,
    replicas: Vec<Replica>,
    max_lag: Duration,
    fences: Mutex<Fences>,
    /// Round-robin start among usable replicas.
    next: AtomicUsize,
}

/// One replica's pool and its last poll.
pub struct Replica {
    pool: PgPool,
    state: Mutex<ReplicaState>,
}

#[derive(Debug, Clone, Default)]
struct ReplicaState {
    /// Whether a poll has filled this in yet.
    polled: bool,
    reachable: bool,
    /// Reachable, in recovery, within the lag: a candidate for reads.
    healthy: bool,
    replay: u64,
    lag: Option<Duration>,
    problem: Option<String>,
}

/// Package marks, by the counter value when marked, and their resolved positions.
#[derive(Debug)]
struct Fences {
    counter: u64,
    /// Packages changed since the last primary sample, by mark.
    pending: HashMap<String, u64>,
    /// Every package changed (or unknown changes) since the last primary sample: the latest mark.
    pending_all: Option<u64>,
    /// The listener is not connected: changes may pass unheard, so nothing is read from a replica.
    deaf: bool,
    /// Packages and the WAL position their last known change is at or before.
    resolved: HashMap<String, u64>,
    /// A replica must have replayed this far before it serves anything.
    floor: u64,
    /// The primary's flushed WAL positions and when each was first seen, oldest first.
    history: VecDeque<(Instant, u64)>,
    /// `(block size, segment size)` of the primary's WAL, for [`normalize`].
    wal_geometry: Option<(u64, u64)>,
}

impl Replicas {
    /// Replicas on `urls` (parsed now, connected by the poller) of `primary`; starts the poller,
    /// which ends when the returned value is dropped.
    pub fn start(primary: PgPool, urls: &[&str], max_lag: Duration) -> Result<Arc<Self>, PgError> {
        let replicas = urls
            .iter()
            .map(|url| {
                Ok(Replica {
                    pool: PgPool::lazy(url, "PACKR_DATABASE_REPLICA_URL")?,
                    state: Mutex::new(ReplicaState {
                        problem: Some("not polled yet".into()),
                        ..ReplicaState::default()
                    }),
                })
            })
            .collect::<Result<Vec<_>, PgError>>()?;
        let this = Arc::new(Self {
            primary,
            replicas,
            max_lag,
            fences: Mutex::new(Fences {
                counter: 0,
                pending: HashMap::new(),
                pending_all: None,
                // Until the change listener has connected, other instances' changes go unheard.
                deaf: true,
                resolved: HashMap::new(),
                floor: 0,
                history: VecDeque::new(),
                wal_geometry: None,
            }),
            next: AtomicUsize::new(0),
        });
        tokio::spawn(poll_until_dropped(Arc::downgrade(&this)));
        Ok(this)
    }

    /// Each replica's target (`user@host:port/database`), for logs.
    pub fn targets(&self) -> Vec<&str> {
        self.replicas.iter().map(|r| r.pool.target()).collect()
    }

    fn fences(&self) -> MutexGuard<'_, Fences> {
        self.fences
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A replica that may serve a read of `package`: healthy, and past every fence that applies.
    pub fn for_package(&self, package: &str) -> Option<&Replica> {
        let need = {
            let fences = self.fences();
            if fences.deaf || fences.pending_all.is_some() || fences.pending.contains_key(package) {
                return None;
            }
            fences
                .floor
                .max(fences.resolved.get(package).copied().unwrap_or(0))
        };
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|step| &self.replicas[(start + step) % count])
            .find(|replica| {
                let state = replica.state();
                state.healthy && state.replay >= need
            })
    }

    /// A change this instance committed or heard of: the package (or everything) is read from the
    /// primary until a replica has replayed past it.
    pub fn changed(&self, change: &Change) {
        let mut fences = self.fences();
        fences.counter += 1;
        let mark = fences.counter;
        match change {
            Change::Package(name) => {
                fences.pending.insert(name.clone(), mark);
            }
            Change::Everything => fences.pending_all = Some(mark),
            Change::Tokens => {}
        }
    }

    /// The change listener has (re)connected and reported [`Change::Everything`], or lost its
    /// connection (`false`): while it is deaf, every read goes to the primary.
    pub fn listening(&self, connected: bool) {
        let mut fences = self.fences();
        fences.deaf = !connected;
        if !connected {
            // Whatever passes unheard until the reconnect is fenced by its `Everything`.
            fences.counter += 1;
            fences.pending_all = Some(fences.counter);
        }
    }

    /// Each replica's last poll, in the configured order.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        let floor = self.fences().floor;
        self.replicas
            .iter()
            .map(|replica| {
                let state = replica.state();
                let in_use = state.healthy && state.replay >= floor;
                ReplicaStatus {
                    reachable: state.reachable,
                    in_use,
                    lag: state.lag,
                    problem: match (&state.problem, in_use) {
                        (Some(problem), _) => Some(problem.clone()),
                        (None, false) => Some("catching up with recent changes".into()),
                        (None, true) => None,
                    },
                }
            })
            .collect()
    }

    /// One poll: the primary's position resolves pending marks, then every replica is asked how
    /// far it has replayed.
    async fn poll(&self) {
        let mark = self.fences().counter;
        match tokio::time::timeout(POLL_TIMEOUT, primary_position(&self.primary)).await {
            Ok(Ok(sample)) => self.resolve(mark, sample),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "could not sample the primary's WAL position");
            }
            Err(_) => tracing::debug!("the primary's WAL position took over {POLL_TIMEOUT:?}"),
        }
        let polls = self.replicas.iter().map(|replica| async move {
            let answer = tokio::time::timeout(POLL_TIMEOUT, replay_position(&replica.pool)).await;
            (replica, answer)
        });
        for (replica, answer) in futures_util::future::join_all(polls).await {
            let next = match answer {
                Ok(Ok(Some(replay))) => {
                    let lag = self.lag(replay);
                    ReplicaState {
                        polled: true,
                        reachable: true,
                        healthy: lag <= self.max_lag,
                        replay,
                        lag: Some(lag),
                        problem: (lag > self.max_lag).then(|| {
                            format!(
                                "{} ms behind, more than PACKR_REPLICA_MAX_LAG ({} ms)",
                                lag.as_millis(),
                                self.max_lag.as_millis()
                            )
                        }),
                    }
                }
                Ok(Ok(None)) => ReplicaState {
                    reachable: true,
                    problem: Some("not a standby (promoted, or not a replica)".into()),
                    ..ReplicaState::default()
                },
                Ok(Err(err)) => ReplicaState {
                    problem: Some(format!("unreachable: {}", without_target(&err))),
                    ..ReplicaState::default()
                },
                Err(_) => ReplicaState {
                    problem: Some(format!("no answer within {} s", POLL_TIMEOUT.as_secs())),
                    ..ReplicaState::default()
                },
            };
            let (was, first) = {
                let state = replica.state();
                (state.healthy, !state.polled)
            };
            let next = ReplicaState {
                polled: true,
                ..next
            };
            if was != next.healthy || first {
                if next.healthy {
                    tracing::info!(replica = replica.pool.target(), "reads go to this replica");
                } else {
                    tracing::warn!(
                        replica = replica.pool.target(),
                        problem = next.problem.as_deref().unwrap_or(""),
                        "replica skipped: reads go to the primary"
                    );
                }
            }
            *replica.state.lock().unwrap_or_else(|p| p.into_inner()) = next;
        }
        self.forget_passed_fences();
    }

    /// Gives marks made up to `mark` the primary's position sampled after them.
    fn resolve(&self, mark: u64, sample: PrimarySample) {
        let mut fences = self.fences();
        let geometry = *fences.wal_geometry.get_or_insert(sample.geometry);
        let position = normalize(sample.insert, geometry);
        let resolved: Vec<String> = fences
            .pending
            .iter()
            .filter(|(_, at)| **at <= mark)
            .map(|(name, _)| name.clone())
            .collect();
        for name in resolved {
            fences.pending.remove(&name);
            let entry = fences.resolved.entry(name).or_insert(0);
            *entry = (*entry).max(position);
        }
        if fences.pending_all.is_some_and(|at| at <= mark) {
            fences.pending_all = None;
            fences.floor = fences.floor.max(position);
        }
        let now = Instant::now();
        if fences
            .history
            .back()
            .is_none_or(|(_, last)| sample.flush > *last)
        {
            fences.history.push_back((now, sample.flush));
        }
        // The oldest sample kept is the newest one older than the window, so that a replica
        // stuck before it is still measured as at least that late.
        let window = (self.max_lag * 2).max(Duration::from_secs(10));
        while fences
            .history
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            fences.history.pop_front();
        }
    }

    /// How long ago the primary first had WAL past `replay`.
    fn lag(&self, replay: u64) -> Duration {
        let fences = self.fences();
        fences
            .history
            .iter()
            .find(|(_, flushed)| *flushed > replay)
            .map_or(Duration::ZERO, |(at, _)| at.elapsed())
    }

    /// Drops package fences every healthy replica has passed, raising the floor to them, so the
    /// map holds only changes some replica has not replayed yet.
    fn forget_passed_fences(&self) {
        let Some(slowest) = self
            .replicas
            .iter()
            .filter_map(|replica| {
                let state = replica.state();
                state.healthy.then_some(state.replay)
            })
            .min()
        else {
            return;
        };
        let mut fences = self.fences();
        let mut floor = fences.floor;
        fences.resolved.retain(|_, position| {
            if *position <= slowest {
                floor = floor.max(*position);
                false
            } else {
                true
            }
        });
        fences.floor = floor;
    }
}

impl Replica {
    fn state(&self) -> MutexGuard<'_, ReplicaState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The replica's pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A read on this replica failed: it is not used again until a poll finds it healthy.
    pub fn failed(&self, err: &dyn std::fmt::Display) {
        let mut state = self.state();
        if state.healthy {
            tracing::warn!(replica = self.pool.target(), error = %err, "a read on a replica failed; reads go to the primary");
        }
        state.healthy = false;
        state.problem = Some("a read failed; skipped until the next check".into());
    }
}

async fn poll_until_dropped(replicas: Weak<Replicas>) {
    let mut every = tokio::time::interval(POLL_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(replicas) = replicas.upgrade() else {
            return;
        };
        replicas.poll().await;
    }
}

/// What went wrong, without the database's address (`/-/health` is public; logs name it).
fn without_target(err: &PgError) -> String {
    match err {
        PgError::Connect { cause, .. } => cause.clone(),
        other => other.to_string(),
    }
}

/// The primary's WAL positions at one moment.
struct PrimarySample {
    /// Past every record inserted so far, committed or not: a change committed before the sample
    /// is at or before it, whatever `synchronous_commit` says.
    insert: u64,
    /// Flushed, and so available to replicas: what lag is measured against.
    flush: u64,
    geometry: (u64, u64),
}

async fn primary_position(primary: &PgPool) -> Result<PrimarySample, PgError> {
    let client = primary.get().await?;
    let row = client
        .query_one(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint,
                    (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint,
                    current_setting('wal_block_size')::bigint,
                    (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')",
            &[],
        )
        .await?;
    let get = |at: usize| u64::try_from(row.get::<_, i64>(at)).unwrap_or(0);
    Ok(PrimarySample {
        insert: get(0),
        flush: get(1),
        geometry: (get(2).max(1), get(3).max(1)),
    })
}

/// How far a replica has replayed; `None` when it is not in recovery.
async fn replay_position(replica: &PgPool) -> Result<Option<u64>, PgError> {
    let client = replica.get().await?;
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(),
                    (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint",
            &[],
        )
        .await?;
    let in_recovery: bool = row.get(0);
    let replay: Option<i64> = row.get(1);
    Ok(replay
        .filter(|_| in_recovery)
        .map(|at| u64::try_from(at).unwrap_or(0)))
}

/// The insert position right after a page header is where a record ending at the page's start
/// left it: a replica that replayed that record reports the page's start, so the fence is moved
/// back there (else it would wait for the next write to pass it).
fn normalize(insert: u64, (block, segment): (u64, u64)) -> u64 {
    /// `SizeOfXLogShortPHD` and `SizeOfXLogLongPHD` on 64-bit builds.
    const SHORT_HEADER: u64 = 24;
    const LONG_HEADER: u64 = 40;
    let header = if insert % segment == LONG_HEADER {
        LONG_HEADER
    } else if insert % block == SHORT_HEADER && insert % segment >= block {
        SHORT_HEADER
    } else {
        0
    };
    insert - header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_right_after_a_page_header_is_moved_to_the_page_start() {
        let geometry = (8192, 16 * 1024 * 1024);
        assert_eq!(normalize(8192 * 3 + 24, geometry), 8192 * 3);
        assert_eq!(normalize(16 * 1024 * 1024 + 40, geometry), 16 * 1024 * 1024);
        assert_eq!(normalize(8192 * 3 + 64, geometry), 8192 * 3 + 64);
        // 40 bytes into a page that does not start a segment is an ordinary position.
        assert_eq!(normalize(8192 + 40, geometry), 8192 + 40);
    }
}
