//! Metadata stores for the store contract suites: a SQLite store in a temp directory, or a
//! PostgreSQL store on a fresh database of this process's throwaway cluster.

use std::sync::Arc;

use packr::store::{Postgres, Sqlite, Store};
use tempfile::TempDir;

use super::postgres::{TestDatabase, fresh_database};

/// Which metadata store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// An open, empty, migrated store, and what keeps its backend alive.
pub struct StoreUnderTest {
    /// The store, as the core sees it.
    pub store: Store,
    /// The backend it runs on.
    #[allow(
        dead_code,
        reason = "for contract tests whose expectations differ by backend"
    )]
    pub backend: Backend,
    /// The PostgreSQL database, when on PostgreSQL (for checking rows directly).
    #[allow(dead_code, reason = "for contract tests that inspect rows")]
    pub database: Option<TestDatabase>,
    _dir: TempDir,
}

impl StoreUnderTest {
    /// Opens an empty store on `backend`.
    pub async fn open(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("a temp directory");
        let (store, database): (Store, _) = match backend {
            Backend::Sqlite => (
                Arc::new(Sqlite::open(dir.path()).expect("opening SQLite")),
                None,
            ),
            Backend::Postgres => {
                let database = fresh_database().await;
                let store = Postgres::open(&database.url)
                    .await
                    .expect("opening PostgreSQL");
                (Arc::new(store), Some(database))
            }
        };
        Self {
            store,
            backend,
            database,
            _dir: dir,
        }
    }

    /// Runs `sql` (statements valid on both backends) on the store's database directly, for
    /// rows of domains whose store operations a test does not exercise.
    #[allow(
        dead_code,
        reason = "for contract tests that need rows of other domains"
    )]
    pub async fn execute(&self, sql: &str) {
        match &self.database {
            Some(database) => database.connect().await.batch_execute(sql).await.unwrap(),
            None => rusqlite::Connection::open(self._dir.path().join("packr.db"))
                .and_then(|conn| conn.execute_batch(sql))
                .unwrap(),
        }
    }

    /// The directory of the SQLite store (its `packr.db`), for tests that add rows directly;
    /// `None` on PostgreSQL.
    #[allow(dead_code, reason = "for contract tests that add rows directly")]
    pub fn sqlite_dir(&self) -> Option<&std::path::Path> {
        (self.backend == Backend::Sqlite).then(|| self._dir.path())
    }
}

/// Adds a maintainer named `name` through the store; their id.
#[allow(dead_code, reason = "for contract tests that need a user")]
pub async fn maintainer(store: &Store, name: &str) -> i64 {
    let new = packr::store::accounts::NewUser {
        name: name.to_owned(),
        email: String::new(),
        password_hash: "phc".into(),
        role: "maintainer".into(),
        now: 0,
    };
    match store.put_user(new).await.unwrap() {
        packr::store::accounts::UserWrite::Written(id) => id,
        other => panic!("{other:?}"),
    }
}

/// Runs `async fn scenario(store: StoreUnderTest)` as two tests, `scenario::on_sqlite` and
/// `scenario::on_postgres`.
macro_rules! on_each_store {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() {
                let store = $crate::support::stores::StoreUnderTest::open(
                    $crate::support::stores::Backend::Sqlite,
                )
                .await;
                super::$scenario(store).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                let store = $crate::support::stores::StoreUnderTest::open(
                    $crate::support::stores::Backend::Postgres,
                )
                .await;
                super::$scenario(store).await;
            }
        }
    };
}
pub(crate) use on_each_store;
