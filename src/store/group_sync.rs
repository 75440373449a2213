//! Group sync: a change is acknowledged only once it is on disk, and one sync covers every change
//! made before it started, so concurrent publishes share syncs instead of queueing one each.
//!
//! Two stores use it. The SQLite writer runs with `synchronous=NORMAL`, so a commit only
//! `write`s its frames to the log (SQLite syncs the log itself before each checkpoint and when it
//! starts reusing it); an `fdatasync` of `packr.db-wal` after the commit makes it as durable as
//! `synchronous=FULL` would. The filesystem blob store renames a blob into place and then waits
//! for a `syncfs` of its file system, which puts the blob's bytes and its directory entry on disk.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// What one sync does.
#[derive(Clone, Copy)]
enum Kind {
    /// `fdatasync` of one file (SQLite's write-ahead log).
    File,
    /// `syncfs` of the file system holding this directory (the blob store).
    FileSystem,
}

/// The file or directory a sync goes through, opened once and kept: a sync is then one system
/// call rather than three.
struct Target {
    kind: Kind,
    path: PathBuf,
    opened: Mutex<Option<std::fs::File>>,
}

impl Target {
    fn sync(&self) -> std::io::Result<()> {
        let mut opened = self.opened.lock().map_err(|_| poisoned())?;
        let file = match opened.as_ref() {
            Some(file) => file,
            None => opened.insert(std::fs::File::open(&self.path)?),
        };
        match self.kind {
            Kind::File => file.sync_data(),
            Kind::FileSystem => sync_file_system(file),
        }
    }
}

/// Flushes every file and directory entry of the file system holding `dir` and waits for it.
#[cfg(target_os = "linux")]
fn sync_file_system(dir: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::syncfs(dir)?;
    Ok(())
}

/// Elsewhere `syncfs` does not exist: flush every file system.
#[cfg(not(target_os = "linux"))]
fn sync_file_system(_dir: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::sync();
    Ok(())
}

/// Tracks which changes are on disk and lets one waiter at a time sync for all of them.
pub struct GroupSync {
    target: Target,
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
    pub fn write_ahead_log(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Self::new(Kind::File, wal.into())
    }

    /// Syncs the file system holding `dir`.
    pub fn file_system(dir: &Path) -> Self {
        Self::new(Kind::FileSystem, dir.to_owned())
    }

    fn new(kind: Kind, path: PathBuf) -> Self {
        Self {
            target: Target {
                kind,
                path,
                opened: Mutex::new(None),
            },
            state: Mutex::new(State::default()),
            synced: Condvar::new(),
        }
    }

    /// Records a change and returns its ticket. Call it right after the change is made (for the
    /// log: with the writer still locked), so a sync started later covers it.
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
            let result = self.target.sync();
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
        let sync = std::sync::Arc::new(GroupSync::write_ahead_log(&db));
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
        let sync = GroupSync::write_ahead_log(&dir.path().join("packr.db"));
        let ticket = sync.committed().unwrap();
        assert!(sync.wait(ticket).is_err());
        assert_eq!(sync.lock().unwrap().synced, 0);
    }
}
