//! The SQLite metadata store: one writer connection, a pool of readers, all calls off the async threads
//! except point reads ([`Sqlite::read_point`]).

pub mod advisories;
pub mod attestations;
pub mod audit;
pub mod device;
pub mod events;
pub mod keys;
pub mod migrate;
pub mod oauth;
pub mod orgs;
pub mod packages;
pub mod renderings;
pub mod stages;
pub mod tokens;
pub mod trust;
pub mod users;
pub mod webhooks;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::task::spawn_blocking;

use super::StoreError;
use super::group_sync::GroupSync;

/// The whole current schema; [`migrate`] applies it and the steps older databases need.
pub(crate) const SCHEMA: &str = include_str!("../../../schema.sql");

/// The embedded metadata store (WAL mode, so readers never wait for the writer).
#[derive(Clone)]
pub struct Sqlite {
    writer: Arc<Mutex<Connection>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Syncs the log after commits; None when the file system refused WAL mode, where
    /// `synchronous=FULL` syncs every commit instead.
    log_sync: Option<Arc<GroupSync>>,
    /// Writes of this process: odd while one is under way, even once its commit is counted.
    writes: Arc<AtomicU64>,
    /// The read transaction point reads share while nothing is written (see [`HeldRead`]).
    held: Arc<Mutex<Option<HeldRead>>>,
}

/// How long point reads share one read transaction at most, so that what other processes
/// write (the CLI's `packr user` and `packr token`) is seen within this time.
const HELD_READ_AGE: Duration = Duration::from_millis(100);

/// A read transaction kept open across point reads while this process writes nothing.
///
/// Why: beginning and ending a read transaction takes and drops a lock on the log's index with
/// two `fcntl` calls, and reads no page of the cache until it has checked the log; on the bench's
/// cold packument reads (one stored document each) that was a fifth of a miss's system calls.
///
/// Why it is never stale for this process's writes: it is used only while the write count is
/// the even count it began at, and it began (its snapshot starts at its first read) after that
/// count was read; a write makes the count odd before it begins and even only after its commit,
/// so a read that comes after an acknowledged write sees a count the held transaction did not
/// begin at, and starts over. A write also ends it first, so it never holds back the commit's
/// checkpoint nor the log's restart.
struct HeldRead {
    conn: PooledConnection<SqliteConnectionManager>,
    writes: u64,
    began: Instant,
}

impl Drop for HeldRead {
    fn drop(&mut self) {
        end_read(&self.conn);
    }
}

/// Begins a read transaction: one snapshot for every query until [`end_read`].
fn begin_read(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    Ok(())
}

/// Ends a read transaction however its reads went, so a pooled connection goes back outside one
/// (a read-only transaction has nothing to commit: ending it cannot lose anything).
fn end_read(conn: &Connection) {
    let ended = conn
        .prepare_cached("COMMIT")
        .and_then(|mut stmt| stmt.execute([]));
    if let Err(err) = ended {
        tracing::warn!(error = %err, "could not end a read transaction");
    }
}

/// A read transaction that ends when dropped, begun and ended through the statement cache
/// (rusqlite's `Transaction` prepares `BEGIN` anew every time).
pub(super) struct ReadTransaction<'a>(pub(super) &'a Connection);

impl<'a> ReadTransaction<'a> {
    pub(super) fn begin(conn: &'a Connection) -> Result<Self, StoreError> {
        begin_read(conn)?;
        Ok(Self(conn))
    }
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        end_read(self.0);
    }
}

/// Counts a write from before it begins until after its commit (see [`HeldRead`]).
struct Writing<'a>(&'a AtomicU64);

impl<'a> Writing<'a> {
    fn begin(writes: &'a AtomicU64, held: &Mutex<Option<HeldRead>>) -> Self {
        writes.fetch_add(1, Ordering::SeqCst);
        // Taken out under the lock, dropped (ended) after it.
        let ended = held.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(ended);
        Self(writes)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sets up the writer; true when the database is in WAL mode.
fn configure(conn: &Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    let wal = mode.eq_ignore_ascii_case("wal");
    // A write is acknowledged only once it is on disk either way: in WAL mode through
    // [`GroupSync`] after NORMAL commits (one sync for many concurrent commits), otherwise by
    // FULL. NORMAL alone syncs only at checkpoints and can lose acknowledged commits on power loss.
    conn.pragma_update(None, "synchronous", if wal { "NORMAL" } else { "FULL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(wal)
}

/// A failed sync of the log, reported as SQLite reports its own.
fn sync_failed(err: std::io::Error) -> StoreError {
    let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC);
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        code,
        Some(format!("syncing the database log: {err}")),
    ))
}

impl Sqlite {
    /// Opens (creating if needed) `packr.db` in `dir` and applies `schema.sql`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("packr.db");
        let mut writer = Connection::open(&path)?;
        let wal = configure(&writer)?;
        migrate::apply(&mut writer, SCHEMA)?;
        let log_sync = wal.then(|| Arc::new(GroupSync::write_ahead_log(&path)));
        if let Some(sync) = &log_sync {
            sync.committed()
                .and_then(|ticket| sync.wait(ticket))
                .map_err(sync_failed)?;
        }
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|conn| {
                conn.busy_timeout(Duration::from_secs(10))?;
                // Hot reads are served from Packr's own caches; 1 MiB of pages per reader keeps
                // the idle footprint small.
                conn.pragma_update(None, "cache_size", -1024)?;
                conn.pragma_update(None, "foreign_keys", "ON")
            });
        let readers = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            // A connection to a local file does not go stale: no test query on every checkout.
            .test_on_check_out(false)
            .build(manager)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers,
            log_sync,
            writes: Arc::default(),
            held: Arc::default(),
        })
    }

    /// Runs `work` in one IMMEDIATE transaction on the writer, off the async threads, and returns
    /// once the commit is on disk.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let log_sync = self.log_sync.clone();
        let (writes, held) = (Arc::clone(&self.writes), Arc::clone(&self.held));
        let span = tracing::Span::current();
        spawn_blocking(move || {
            span.in_scope(|| {
                let (value, ticket) = {
                    let _writing = Writing::begin(&writes, &held);
                    let mut conn = writer
                        .lock()
                        .map_err(|_| StoreError::Task("writer connection poisoned".into()))?;
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let value = work(&tx)?;
                    tx.commit()?;
                    let ticket = log_sync.as_ref().map(|sync| sync.committed());
                    (value, ticket.transpose().map_err(sync_failed)?)
                };
                // The writer is free again: the next commits can join this sync.
                if let (Some(sync), Some(ticket)) = (&log_sync, ticket) {
                    sync.wait(ticket).map_err(sync_failed)?;
                }
                Ok(value)
            })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `work` on a pooled read-only connection, off the async threads.
    pub async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let span = tracing::Span::current();
        spawn_blocking(move || {
            span.in_scope(|| {
                let conn = readers.get()?;
                work(&conn)
            })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs a point read (a few indexed lookups, in one read transaction) on the calling thread
    /// when a reader connection is free at once, else as [`Sqlite::read`] does. It shares the
    /// held read transaction when that is free and current ([`HeldRead`]).
    ///
    /// Why the async thread may run it: in WAL mode a reader works on a snapshot and never waits
    /// for the writer (nor the writer for it), and a connection taken without waiting is held
    /// by nobody else, so the read waits on no lock. It reads a handful of pages (callers bound
    /// it to that), from SQLite's page cache or the kernel's; only a page the kernel has not
    /// cached means a disk read, as for any read of the database. Handing it to a blocking
    /// thread and back costs two context switches, more than the read itself (profiled on the
    /// bench's cold packument reads: a fifth of a miss's CPU went to the handoff).
    pub async fn read_point<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let work = match self.try_held(work) {
            Ok(done) => return done,
            Err(work) => work,
        };
        let in_transaction = move |conn: &Connection| {
            let _snapshot = ReadTransaction::begin(conn)?;
            work(conn)
        };
        match self.readers.try_get() {
            Some(conn) => in_transaction(&conn),
            None => self.read(in_transaction).await,
        }
    }

    /// Runs `work` in the held read transaction, begun anew if it is stale; gives `work` back
    /// when another read has it, a write is under way, or no connection is free.
    fn try_held<T, F>(&self, work: F) -> Result<Result<T, StoreError>, F>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let mut held = match self.held.try_lock() {
            Ok(held) => held,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(work),
        };
        let writes = self.writes.load(Ordering::SeqCst);
        let current =
            |read: &HeldRead| read.writes == writes && read.began.elapsed() < HELD_READ_AGE;
        // A stale one is dropped (ended) here, before a new one takes a connection.
        let read = match held.take().filter(current) {
            Some(read) => read,
            None => {
                if writes % 2 == 1 {
                    return Err(work);
                }
                let Some(conn) = self.readers.try_get() else {
                    return Err(work);
                };
                if begin_read(&conn).is_err() {
                    return Err(work);
                }
                HeldRead {
                    conn,
                    writes,
                    began: Instant::now(),
                }
            }
        };
        let done = work(&read.conn);
        // Whatever failed, the next read starts on a fresh transaction: this one ends here.
        if done.is_ok() {
            *held = Some(read);
        }
        Ok(done)
    }

    /// The schema version the database is at (`PRAGMA user_version`), for `packr migrate`.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| Ok(migrate::user_version(conn)?)).await
    }

    /// Answers whether the database takes queries (for `/health/ready`).
    pub async fn check(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}

#[async_trait::async_trait]
impl crate::store::MetadataStore for Sqlite {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn check(&self) -> Result<(), StoreError> {
        Sqlite::check(self).await
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        Sqlite::schema_version(self).await
    }
}

/// Whether `err` is a UNIQUE or PRIMARY KEY violation, which callers translate into a domain conflict.
pub fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_table() -> (tempfile::TempDir, Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(dir.path()).unwrap();
        store
            .write(|tx| Ok(tx.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .unwrap();
        (dir, store)
    }

    async fn count(store: &Sqlite) -> i64 {
        store
            .read_point(|conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_point_read_sees_every_write_of_this_process_before_it() {
        let (_dir, store) = store_with_table().await;
        for i in 0..50 {
            assert_eq!(count(&store).await, i);
            // The held read is current now: a second read shares it.
            assert_eq!(count(&store).await, i);
            store
                .write(|tx| Ok(tx.execute("INSERT INTO t VALUES (1)", [])?))
                .await
                .unwrap();
        }
        assert_eq!(count(&store).await, 50);
    }

    #[tokio::test]
    async fn a_write_of_another_process_is_seen_within_the_held_age() {
        let (dir, store) = store_with_table().await;
        assert_eq!(count(&store).await, 0);
        let other = Connection::open(dir.path().join("packr.db")).unwrap();
        other.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tokio::time::sleep(HELD_READ_AGE + Duration::from_millis(20)).await;
        assert_eq!(count(&store).await, 1);
    }

    #[tokio::test]
    async fn a_failed_point_read_leaves_no_transaction_behind() {
        let (_dir, store) = store_with_table().await;
        let failed = store
            .read_point(
                |conn| Ok(conn.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0))?),
            )
            .await;
        assert!(failed.is_err());
        assert!(store.held.lock().unwrap().is_none());
        store
            .write(|tx| Ok(tx.execute("INSERT INTO t VALUES (1)", [])?))
            .await
            .unwrap();
        assert_eq!(count(&store).await, 1);
    }
}
