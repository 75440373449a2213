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
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        let span = tracing::Span::current();
        spawn_blocking(move || {
            span.in_scope(|| {
                let (value, ticket) = {
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

    /// Runs a point read (a few indexed lookups in one read transaction) on the calling thread
    /// when a reader connection is free at once, else as [`Sqlite::read`] does.
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
        match self.readers.try_get() {
            Some(conn) => work(&conn),
            None => self.read(work).await,
        }
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
