//! A real PostgreSQL (Debian's, 15 on the image) for tests: one throwaway cluster per test
//! process, shared by its tests, each of which gets a fresh database of its own.
//!
//! The cluster is made by `initdb` in a new temp directory as the `postgres` user (`runuser`
//! when the tests run as root, as on CI; initdb refuses root), with trust authentication, and
//! listens on a free loopback port with its socket in the data directory and `fsync=off`. If
//! initdb is missing, Debian's `postgresql` is installed with apt-get first.
//!
//! Stopping it: Rust never drops statics, so a guard's `Drop` would not run at exit. Instead a
//! small watcher shell, started in its own process group, polls the test process and, once it
//! has exited (passed, failed or killed), stops the cluster (`pg_ctl stop -m immediate`) and
//! removes its directory.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::Context;

use super::install::{apt_install, locked, run};

/// The running cluster of this test process.
struct Cluster {
    port: u16,
}

/// A database of its own for one test.
pub struct TestDatabase {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    /// The database's name, `t_<random>`.
    pub name: String,
}

impl TestDatabase {
    /// A client on this database; its connection runs on the current runtime.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

/// Creates an empty database on this process's cluster, starting the cluster first if needed.
pub async fn fresh_database() -> TestDatabase {
    let port = tokio::task::spawn_blocking(|| cluster().port)
        .await
        .expect("starting PostgreSQL");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|err| panic!("creating database {name}: {err:?}"));
    TestDatabase {
        url: format!("postgres://postgres@127.0.0.1:{port}/{name}"),
        name,
    }
}

/// A client on `url`; its connection runs on the current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("connecting to {url}: {err:?}"));
    tokio::spawn(connection);
    client
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| start().unwrap_or_else(|err| panic!("starting PostgreSQL: {err:#}")))
}

fn start() -> anyhow::Result<Cluster> {
    let bin = server_binaries()?;
    let data = tempfile::Builder::new()
        .prefix("packr-pg.")
        .tempdir()
        .context("creating the cluster's directory")?
        .keep();
    if running_as_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(&data))?;
    }
    run(as_postgres(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
        .args(["--locale=C.UTF-8", "--no-sync"]))
    .context("initdb")?;
    // Watch before starting, so that a failed start is cleaned up too.
    watch_and_stop_at_exit(&bin.join("pg_ctl"), &data)?;
    let log = data.join("server.log");
    // The port is free when picked, but another process may take it before PostgreSQL binds it.
    let mut last_error = None;
    for _ in 0..3 {
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            data.display()
        );
        let started = run(as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "30", "-o", &options, "start"]));
        match started {
            Ok(()) => return Ok(Cluster { port }),
            Err(err) => last_error = Some(err),
        }
    }
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("never started"))
        .context(format!("pg_ctl start; server.log:\n{server_log}")))
}

/// The newest installed PostgreSQL's `bin` directory, installing Debian's package if none is.
fn server_binaries() -> anyhow::Result<PathBuf> {
    if let Some(bin) = find_server_binaries() {
        return Ok(bin);
    }
    locked("test-postgresql", || {
        if find_server_binaries().is_some() {
            return Ok(());
        }
        apt_install("postgresql")
    })?;
    find_server_binaries().context("postgresql is installed but no initdb was found")
}

fn find_server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// `/proc/self` belongs to the process's effective user.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// `program`, run as the `postgres` user when the tests run as root.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Starts a detached shell that waits for this process to exit, then stops the cluster and
/// removes `data`.
fn watch_and_stop_at_exit(pg_ctl: &Path, data: &Path) -> anyhow::Result<()> {
    let stop = if running_as_root() {
        "runuser -u postgres -- \"$2\""
    } else {
        "\"$2\""
    };
    let script = format!(
        "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
         {stop} -D \"$3\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$3\""
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("packr-pg-watch")
        .arg(std::process::id().to_string())
        .arg(pg_ctl)
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to the test run must not stop the watcher first.
        .process_group(0)
        .spawn()
        .context("starting the cluster's watcher")?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A streaming replica of this process's cluster, shared by the tests that use it: made with
/// `pg_basebackup -R` (which writes `standby.signal` and `primary_conninfo`) into a temp directory,
/// on a free loopback port, as the `postgres` user; stopped and removed when the test process
/// exits, like the primary. Tests pause its replay and stop it, so each holds [`ReplicaGuard`]
/// for its whole run.
pub struct Replica {
    port: u16,
    data: PathBuf,
    bin: PathBuf,
}

/// Exclusive use of the replica; while held it is the test's to pause, stop and restart.
pub struct ReplicaGuard {
    replica: &'static Replica,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for ReplicaGuard {
    type Target = Replica;

    fn deref(&self) -> &Replica {
        self.replica
    }
}

/// The replica, made on first use, running and replaying, for this test alone until dropped.
pub async fn replica() -> ReplicaGuard {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    static REPLICA: OnceLock<Replica> = OnceLock::new();
    let turn = TURN.lock().await;
    let replica = tokio::task::spawn_blocking(|| {
        let replica = REPLICA.get_or_init(|| {
            let primary = cluster().port;
            start_replica(primary).unwrap_or_else(|err| panic!("starting the replica: {err:#}"))
        });
        // A test that failed before restarting or resuming it leaves it stopped or paused.
        if !replica.is_running() {
            replica.start().expect("restarting the replica");
        }
        replica
    })
    .await
    .expect("starting the replica");
    let guard = ReplicaGuard {
        replica,
        _turn: turn,
    };
    guard.resume_replay().await;
    guard
}

impl Replica {
    /// The replica's copy of `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the replica (fast shutdown); reads of it fail until [`Replica::start`].
    pub fn stop(&self) {
        run(as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]))
        .expect("stopping the replica");
    }

    /// Starts the stopped replica again on its port; it resumes streaming from the primary.
    pub fn start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c hot_standby=on",
            self.port,
            self.data.display()
        );
        run(as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.join("replica.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"]))
        .context("pg_ctl start (replica)")
    }

    fn is_running(&self) -> bool {
        as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// A client on the replica's `postgres` database.
    pub async fn admin(&self) -> tokio_postgres::Client {
        connect(&self.url("postgres")).await
    }

    /// Stops applying WAL (it keeps receiving it): the replica stays where it is.
    pub async fn pause_replay(&self) {
        self.admin()
            .await
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pausing replay");
    }

    /// Applies WAL again.
    pub async fn resume_replay(&self) {
        self.admin()
            .await
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .expect("resuming replay");
    }

    /// Waits until the replica has replayed all the primary had written when called (each wait
    /// also writes a little WAL, so that a position just past a page header is passed too).
    pub async fn catch_up(&self) {
        let primary = connect(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            cluster().port
        ))
        .await;
        let target: i64 = primary
            .query_one(
                "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let replica = self.admin().await;
        let started = std::time::Instant::now();
        loop {
            let replayed: i64 = replica
                .query_one(
                    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if replayed >= target {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the replica did not reach {target} within 30 s (at {replayed})"
            );
            primary
                .batch_execute("SELECT txid_current()")
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn start_replica(primary_port: u16) -> anyhow::Result<Replica> {
    let bin = server_binaries()?;
    let data = tempfile::Builder::new()
        .prefix("packr-pg-replica.")
        .tempdir()
        .context("creating the replica's directory")?
        .keep();
    if running_as_root() {
        run(Command::new("chown").arg("postgres:postgres").arg(&data))?;
    }
    watch_and_stop_at_exit(&bin.join("pg_ctl"), &data)?;
    run(as_postgres(&bin.join("pg_basebackup"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary_port.to_string(),
            "-U",
            "postgres",
        ])
        .arg("-D")
        .arg(&data)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]))
    .context("pg_basebackup")?;
    // pg_basebackup gives the directory the primary's mode; PostgreSQL wants 0700 or 0750.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .context("restricting the replica's directory")?;
    }
    let mut last_error = None;
    for _ in 0..3 {
        let replica = Replica {
            port: free_port()?,
            data: data.clone(),
            bin: bin.clone(),
        };
        match replica.start() {
            Ok(()) => return Ok(replica),
            Err(err) => last_error = Some(err),
        }
    }
    let log = std::fs::read_to_string(data.join("replica.log")).unwrap_or_default();
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("never started"))
        .context(format!("replica.log:\n{log}")))
}
