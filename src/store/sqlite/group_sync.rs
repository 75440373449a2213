//! Group commit for the write-ahead log: a write is answered only once its commit is on disk, and
//! one `fdatasync` of `packr.db-wal` covers every commit made before it started.
//!
//! The writer runs with `synchronous=NORMAL`, so a commit only `write`s its frames to the log
//! (SQLite syncs the log itself before each checkpoint and when it starts reusing it). Syncing the
//! log after the commit makes that commit as durable as `synchronous=FULL` would, but concurrent
//! publishes share the sync instead of queueing one sync each behind the single writer.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Tracks which commits are on disk and lets one waiter at a time sync the log for all of them.
pub struct GroupSync {
    wal: PathBuf,
    state: Mutex<State>,
    synced: Condvar,
}

#[derive(Default)]
struct State {
    /// Commits made so far; a commit's ticket is this count right after it.
    committed: u64,
    /// Every commit up to this ticket is on disk.
    synced: u64,
    /// A waiter is syncing the log now.
    syncing: bool,
}

impl GroupSync {
    /// Syncs the write-ahead log of the database at `db`.
    pub fn new(db: &std::path::Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: wal.into(),
            state: Mutex::new(State::default()),
            synced: Condvar::new(),
        }
    }

    /// Records a commit and returns its ticket. Call it with the writer still locked, right after
    /// the commit, so tickets follow the order of the commits in the log.
    pub fn committed(&self) -> std::io::Result<u64> {
        let mut state = self.lock()?;
        state.committed += 1;
        Ok(state.committed)
    }

    /// Blocks until the commit with `ticket` is on disk, syncing the log unless another waiter's
    /// sync, started after that commit, covers it.
    pub fn wait(&self, ticket: u64) -> std::io::Result<()> {
        let mut state = self.lock()?;
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if state.syncing {
                state = self.synced.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            state.syncing = true;
            let covers = state.committed;
            drop(state);
            let result = std::fs::File::open(&self.wal).and_then(|log| log.sync_data());
            state = self.lock()?;
            state.syncing = false;
            if result.is_ok() {
                state.synced = state.synced.max(covers);
            }
            self.synced.notify_all();
            result?;
        }
    }

    fn lock(&self) -> std::io::Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| poisoned())
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("the log-sync state is poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ticket_is_released_once_the_log_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("packr.db");
        std::fs::write(dir.path().join("packr.db-wal"), b"frames").unwrap();
        let sync = std::sync::Arc::new(GroupSync::new(&db));
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let sync = std::sync::Arc::clone(&sync);
                std::thread::spawn(move || {
                    let ticket = sync.committed().unwrap();
                    sync.wait(ticket)
                })
            })
            .collect();
        for waiter in waiters {
            waiter.join().unwrap().unwrap();
        }
        let state = sync.lock().unwrap();
        assert_eq!((state.committed, state.synced), (8, 8));
    }

    #[test]
    fn a_missing_log_is_an_error_not_a_silent_success() {
        let dir = tempfile::tempdir().unwrap();
        let sync = GroupSync::new(&dir.path().join("packr.db"));
        let ticket = sync.committed().unwrap();
        assert!(sync.wait(ticket).is_err());
        assert_eq!(sync.lock().unwrap().synced, 0);
    }
}
