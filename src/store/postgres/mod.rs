//! The PostgreSQL metadata store: a connection pool ([`PgPool`]), the versioned schema
//! ([`migrate`]), and the store seam's operations, one module per domain.

pub mod accounts;
pub mod advisories;
pub mod attestations;
pub mod audit;
pub mod blob_claims;
pub mod buckets;
pub mod changes;
pub mod events;
pub mod keys;
pub mod logins;
pub mod migrate;
pub mod orgs;
pub mod packages;
pub mod renderings;
pub mod replicas;
pub mod stages;
pub mod tokens;
pub mod trust;
pub mod webhooks;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

/// How long connecting may take when the URL sets no `connect_timeout`: long enough for a
/// database across a region, short enough that a wrong address fails before an orchestrator's
/// start-up probe gives up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one instance keeps at most, on a machine of four CPUs or more (see [`pool_size`]).
const MAX_POOL_SIZE: usize = 16;
/// Connections of [`PgPool::relaxed`]: its statements are short.
const RELAXED_POOL_SIZE: usize = 4;

/// Connections one instance keeps at most: four per CPU it may run on (its CPU affinity and
/// cgroup quota count), from 4 to [`MAX_POOL_SIZE`]. Each connection is a PostgreSQL backend
/// process, and more backends than the instance's work keeps busy only add context switches and
/// cold caches: on one CPU, publishing at concurrency 8 ran 15-20% faster on 4 connections than
/// on 16 (BENCHMARKS.md, session 9). Sixteen keeps three large instances, with their relaxed
/// pools and listeners, within PostgreSQL's default 100 connections.
fn pool_size() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cpus.saturating_mul(4).clamp(4, MAX_POOL_SIZE)
}

/// A failure of the PostgreSQL store. No variant ever holds the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL could not be used: the variable it came from, and why.
    #[error("{0} {1}")]
    InvalidUrl(&'static str, String),
    /// No connection could be made (unreachable, too slow, or refused at log-in).
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect {
        /// `user@host:port/database`, without the password.
        target: String,
        /// Why, with every underlying cause.
        cause: String,
    },
    /// The database was migrated by a newer Packr than this one.
    #[error(
        "the database's schema is at version {found} (applied by {applied_by}), newer than version \
         {known}, the newest this packr {ours} knows; run that Packr version or a newer one, or point \
         PACKR_DATABASE_URL at another database",
        ours = env!("CARGO_PKG_VERSION")
    )]
    NewerSchema {
        /// The database's version.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
        /// The Packr that applied `found`.
        applied_by: String,
    },
    /// The server refused or failed a statement.
    #[error("PostgreSQL failed a statement: {}", causes(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// The PostgreSQL metadata store: many instances may share one database.
#[derive(Clone)]
pub struct Postgres {
    pool: PgPool,
    /// Streaming replicas package reads may go to (see [`replicas`]).
    replicas: Option<Arc<replicas::Replicas>>,
    /// Writes waiting until their change has reached the listeners (see [`changes`]).
    echoes: Arc<changes::Echoes>,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("pool", &self.pool)
            .field("replicas", &self.replicas.as_ref().map(|r| r.targets()))
            .finish()
    }
}

impl Postgres {
    /// Connects and brings the schema up to date (under the migration lock, so instances starting
    /// together migrate once); refuses a schema newer than this binary knows.
    pub async fn open(url: &str) -> Result<Self, PgError> {
        let pool = PgPool::connect(url).await?;
        pool.migrate().await?;
        let echoes = Arc::new(changes::Echoes::new(pool.relaxed()?));
        Ok(Self {
            pool,
            replicas: None,
            echoes,
        })
    }

    /// [`Postgres::open`], with package reads sent to the streaming replicas at `replica_urls`
    /// when they have replayed what is read (see [`replicas`]). A replica need not be up: it is
    /// used once it answers. Reads only leave the primary once [`MetadataStore::watch_changes`]
    /// is listening, since the changes other instances make are fenced through it.
    ///
    /// [`MetadataStore::watch_changes`]: crate::store::MetadataStore::watch_changes
    pub async fn open_with_replicas(
        url: &str,
        replica_urls: &[&str],
        max_lag: Duration,
    ) -> Result<Self, PgError> {
        let mut store = Self::open(url).await?;
        if !replica_urls.is_empty() {
            store.replicas = Some(replicas::Replicas::start(
                store.pool.clone(),
                replica_urls,
                max_lag,
            )?);
        }
        Ok(store)
    }

    /// With `alone`, this is the registry's only instance (tarballs in its data directory): a
    /// write answers without waiting for other instances to hear of it (see [`changes`]).
    pub fn one_instance(self, alone: bool) -> Self {
        self.echoes.set_needed(!alone);
        self
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The read replicas, when configured.
    pub fn replicas(&self) -> Option<&replicas::Replicas> {
        self.replicas.as_deref()
    }

    /// Fences a change to `package` this instance committed: it is read from the primary until
    /// a replica has replayed the change. Returns once the change's notification has reached
    /// the instances listening, or after [`changes::ECHO_WAIT`]. Callers hold no connection of
    /// the pool meanwhile, so that waiting writers never run the pool dry.
    pub(crate) async fn wrote_package(&self, package: &str) {
        if let Some(replicas) = &self.replicas {
            replicas.changed(&crate::store::Change::Package(package.to_owned()));
        }
        self.echoes.settle().await;
    }

    /// Fences a change this instance committed that may concern any package (an org's), and
    /// waits for it to reach the listeners as [`Postgres::wrote_package`] does.
    pub(crate) async fn wrote_everything(&self) {
        if let Some(replicas) = &self.replicas {
            replicas.changed(&crate::store::Change::Everything);
        }
        self.echoes.settle().await;
    }
}

#[async_trait::async_trait]
impl crate::store::MetadataStore for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn check(&self) -> Result<(), crate::store::StoreError> {
        let client = self.pool.get().await?;
        client.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn schema_version(&self) -> Result<i64, crate::store::StoreError> {
        let client = self.pool.get().await?;
        Ok(migrate::current_version(&client).await?)
    }

    fn watch_changes(&self) -> Option<crate::store::ChangeFeed> {
        Some(changes::listen(
            self.pool.clone(),
            self.replicas.clone(),
            Arc::clone(&self.echoes),
        ))
    }

    fn replica_status(&self) -> Vec<crate::store::ReplicaStatus> {
        self.replicas
            .as_ref()
            .map(|r| r.status())
            .unwrap_or_default()
    }

    fn shared_blob_claims(
        &self,
    ) -> Option<std::sync::Arc<dyn crate::store::blob_claims::SharedBlobClaims>> {
        Some(std::sync::Arc::new(blob_claims::PgBlobClaims::new(
            self.echoes.relaxed().clone(),
        )))
    }

    fn shared_buckets(&self) -> Option<std::sync::Arc<dyn crate::store::SharedBuckets>> {
        Some(std::sync::Arc::new(buckets::PgBuckets::new(
            self.pool.clone(),
        )))
    }
}

/// Whether `err` is a UNIQUE or PRIMARY KEY violation, which callers translate into a domain
/// conflict.
pub fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A pool of connections to one PostgreSQL database. `Debug` shows where, never the password.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    target: String,
    timeout: Duration,
    /// For connections outside the pool (the change listener).
    config: tokio_postgres::Config,
}

impl fmt::Debug for PgPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPool")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// Opens a pool on a `postgres://` URL and makes one connection, so that a wrong address,
    /// database or password is reported now, within the URL's `connect_timeout` (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub async fn connect(url: &str) -> Result<Self, PgError> {
        let pool = Self::lazy(url, "PACKR_DATABASE_URL")?;
        drop(pool.get().await?);
        Ok(pool)
    }

    /// Opens a pool on a `postgres://` URL (from the variable `var`, for messages) without
    /// connecting: the first [`PgPool::get`] does.
    pub fn lazy(url: &str, var: &'static str) -> Result<Self, PgError> {
        let (config, timeout) =
            parse_url(url).map_err(|problem| PgError::InvalidUrl(var, problem))?;
        Self::build(config, timeout, pool_size())
    }

    fn build(
        config: tokio_postgres::Config,
        timeout: Duration,
        size: usize,
    ) -> Result<Self, PgError> {
        let target = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // The pool's create timeout bounds the whole log-in, including a server that accepts the
        // connection and then never answers.
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(timeout))
            .wait_timeout(Some(timeout))
            .build()
            .map_err(|err| PgError::Connect {
                target: target.clone(),
                cause: err.to_string(),
            })?;
        Ok(Self {
            pool,
            target,
            timeout,
            config,
        })
    }

    /// A small pool on the same database whose transactions commit without waiting for the disk
    /// (`synchronous_commit=off`), for rows and notifications no answer's durability depends on:
    /// blob claims (leases a crash of PostgreSQL may lose along with the publishes holding them)
    /// and echoes. A flush costs a millisecond or two, and PostgreSQL serializes the commits of
    /// notifying transactions, flush included: these must not add one per publish.
    pub fn relaxed(&self) -> Result<Self, PgError> {
        let mut config = self.config.clone();
        let options = match config.get_options() {
            Some(options) => format!("{options} -c synchronous_commit=off"),
            None => "-c synchronous_commit=off".to_owned(),
        };
        config.options(&options);
        Self::build(config, self.timeout, RELAXED_POOL_SIZE)
    }

    /// A connection from the pool.
    pub async fn get(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool.get().await.map_err(|err| PgError::Connect {
            target: self.target.clone(),
            cause: match err {
                PoolError::Timeout(TimeoutType::Wait) => format!(
                    "all {} connections stayed busy for {} s",
                    self.pool.status().max_size,
                    self.timeout.as_secs_f32()
                ),
                PoolError::Timeout(_) => format!(
                    "no answer within {} s (a `connect_timeout=SECONDS` in the URL waits longer)",
                    self.timeout.as_secs_f32()
                ),
                PoolError::Backend(err) => causes(&err),
                other => causes(&other),
            },
        })
    }

    /// Brings the schema up to date (see [`migrate`]).
    pub async fn migrate(&self) -> Result<migrate::Outcome, PgError> {
        let mut client = self.get().await?;
        migrate::run(&mut client).await
    }

    /// `user@host:port/database`, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// Parses a `postgres://` or `postgresql://` URL and its connect timeout.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, Duration), String> {
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        // Not echoed: it may be a password pasted into the wrong variable.
        return Err("must be a URL like postgres://USER:PASSWORD@HOST:5432/DATABASE".into());
    }
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|err| format!("is not a valid PostgreSQL URL: {err}"))?;
    if config.get_hosts().is_empty() {
        return Err("names no host, as in postgres://USER@HOST/DATABASE".into());
    }
    let timeout = match config.get_connect_timeout() {
        Some(timeout) if !timeout.is_zero() => *timeout,
        _ => DEFAULT_CONNECT_TIMEOUT,
    };
    config.connect_timeout(timeout);
    Ok((config, timeout))
}

/// `user@host:port/database` without the password, for messages and logs.
fn describe(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(at, host)| {
            let port = ports.get(at).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().unwrap_or("(user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("{user}@{}/{database}", hosts.join(","))
}

/// An error and its causes, joined by `: `.
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        // tokio-postgres repeats its cause in its own message.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_accepted_and_the_input_is_not_echoed() {
        for url in [
            "mysql://u:hunter2@h/db",
            "hunter2",
            "host=h password=hunter2",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(err.contains("postgres://"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(parse_url("postgresql://u@h/db").is_ok());
    }

    #[test]
    fn the_target_names_user_host_port_and_database_but_never_the_password() {
        let (config, timeout) =
            parse_url("postgres://packr:hunter2@db.internal:6432/registry").expect("a valid URL");
        assert_eq!(describe(&config), "packr@db.internal:6432/registry");
        assert_eq!(timeout, DEFAULT_CONNECT_TIMEOUT);
        let (config, _) = parse_url("postgres://packr@db").unwrap();
        assert_eq!(describe(&config), "packr@db:5432/packr");
    }

    #[test]
    fn the_url_may_set_the_connect_timeout() {
        let (config, timeout) = parse_url("postgres://u@h/db?connect_timeout=3").unwrap();
        assert_eq!(timeout, Duration::from_secs(3));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
    }
}
