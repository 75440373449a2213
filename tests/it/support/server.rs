//! `TestServer`: the real Packr server in-process on an ephemeral loopback port, with its own data
//! directory, plus helpers that run the real `packr` binary against that directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use packr::config::Config;
use packr::server::Server;

use super::s3::S3Server;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running server; stopped when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    /// The server's data directory (database, blobs, secrets).
    pub data_dir: PathBuf,
    /// The S3 server holding the tarballs, when started on [`Storage::S3`].
    pub s3: Option<S3Server>,
    config: Config,
    running: Running,
    data: Option<TempDir>,
}

/// Where a test server keeps its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// SQLite in the data directory.
    Sqlite,
    /// A fresh database on this process's PostgreSQL cluster, with the secrets every instance
    /// would share in a secrets directory (an instance on PostgreSQL generates none).
    Postgres,
}

/// The file in a test data directory naming the environment the `packr` command line needs to
/// reach the same store as the server (`KEY=VALUE` lines).
const STORE_ENV_FILE: &str = "store.env";

/// Where a test server keeps tarballs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Files in the data directory.
    Fs,
    /// A bucket on a real S3 server (s3s-fs) of the test's own.
    S3,
}

struct Running {
    addr: SocketAddr,
    registry: packr::packages::Registry,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Starts a server with [`Config::for_tests`].
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with [`Config::for_tests`] adjusted by `tweak`, on this test binary's
    /// set-up: SQLite and files, or PostgreSQL and S3.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let storage = match crate::METADATA {
            Metadata::Sqlite => Storage::Fs,
            Metadata::Postgres => Storage::S3,
        };
        Self::start_on_with(storage, tweak).await
    }

    /// Starts a server keeping tarballs on `storage`.
    pub async fn start_on(storage: Storage) -> Self {
        Self::start_on_with(storage, |_| {}).await
    }

    /// Starts a server keeping tarballs on `storage` (S3: a new s3s-fs and bucket), with
    /// [`Config::for_tests`] adjusted by `tweak`.
    pub async fn start_on_with(storage: Storage, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_stores(crate::METADATA, storage, tweak).await
    }

    /// Starts a server on `metadata` and `storage`, whatever this test binary's set-up, with
    /// [`Config::for_tests`] adjusted by `tweak`.
    pub async fn start_with_stores(
        metadata: Metadata,
        storage: Storage,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let data = tempfile::Builder::new()
            .prefix("packr-test-")
            .tempdir()
            .expect("creating the test data directory");
        let mut config = Config::for_tests(data.path());
        if metadata == Metadata::Postgres {
            use_postgres(&mut config, data.path()).await;
        }
        let s3 = match storage {
            Storage::Fs => None,
            Storage::S3 => Some(S3Server::start().await),
        };
        if let Some(s3) = &s3 {
            config.storage = packr::config::Storage::S3(s3.config());
        }
        tweak(&mut config);
        let running = launch(&config)
            .await
            .unwrap_or_else(|err| panic!("the test server did not start: {err:#}"));
        Self {
            url: format!("http://{}", running.addr),
            data_dir: data.path().to_owned(),
            s3,
            config,
            running,
            data: Some(data),
        }
    }

    /// Stops the server and hands over its data directory, which then outlives it.
    pub async fn keep_data_and_stop(mut self) -> TempDir {
        self.running.stop.cancel();
        let task = &mut self.running.task;
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("the test server did not stop cleanly: {other:?}"),
        }
        self.data.take().expect("the data directory is still owned")
    }

    /// The names of the stored tarball blobs (files or object keys), whichever the storage.
    pub async fn stored_blobs(&self) -> Vec<String> {
        if let Some(s3) = &self.s3 {
            return s3.keys().await;
        }
        let blobs = self.data_dir.join("blobs");
        let mut stored: Vec<String> = walk_files(&blobs)
            .into_iter()
            .filter(|path| !path.starts_with(blobs.join("tmp")) && *path != blobs.join("layout-1"))
            .map(|path| path.display().to_string())
            .collect();
        stored.sort();
        stored
    }

    /// The running server's registry service (for its cache statistics).
    pub fn registry(&self) -> &packr::packages::Registry {
        &self.running.registry
    }

    /// Runs `sql` (statements valid on both stores) on the server's metadata store directly, as
    /// someone with database access would.
    pub async fn execute_sql(&self, sql: &str) {
        let url = store_env(&self.data_dir)
            .into_iter()
            .find(|(key, _)| key == "PACKR_DATABASE_URL")
            .map(|(_, url)| url);
        match url {
            Some(url) => super::postgres::connect(&url)
                .await
                .batch_execute(sql)
                .await
                .unwrap(),
            None => {
                let conn = rusqlite::Connection::open(self.data_dir.join("packr.db")).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute_batch(sql).unwrap();
            }
        }
    }

    /// `127.0.0.1:PORT`, as used in `.npmrc` credential keys.
    pub fn host(&self) -> String {
        self.running.addr.to_string()
    }

    /// Stops the server, waits until it has finished, and starts a new one on the same data
    /// directory, on the same port when it is still free (otherwise `url` changes).
    pub async fn restart(&mut self) {
        self.running.stop.cancel();
        let task = &mut self.running.task;
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => panic!("the test server failed while stopping: {err:#}"),
            Ok(Err(join)) => panic!("the test server task panicked: {join}"),
            Err(_) => panic!("the test server did not stop within 30 s of being cancelled"),
        }
        let mut config = self.config.clone();
        config.listen = self.running.addr;
        let running = match launch(&config).await {
            Ok(running) => running,
            Err(_) => launch(&self.config)
                .await
                .unwrap_or_else(|err| panic!("the test server did not restart: {err:#}")),
        };
        self.url = format!("http://{}", running.addr);
        self.running = running;
    }

    /// `GET path` with `token` (None: anonymous); the status and the body parsed as JSON
    /// (`Value::Null` when it is not JSON).
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// The full packument of `name` (scoped names are sent as `@scope%2fname`), asserting 200.
    pub async fn packument(&self, name: &str, token: &str) -> Value {
        let (status, body) = self.get_json(&package_path(name), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "GET packument of {name}: {body}");
        body
    }

    /// Creates (or resets) a user with the real `packr user add`.
    pub fn add_user(&self, name: &str, password: &str, role: &str) {
        add_user(&self.data_dir, name, password, role);
    }

    /// Issues a token with the real `packr token create`; `scopes` are like `@acme`.
    pub fn token(&self, user: &str, role: &str, scopes: &[&str]) -> String {
        token(&self.data_dir, user, role, scopes)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.running.stop.cancel();
    }
}

/// Points `config` at a fresh PostgreSQL database and a secrets directory in `data_dir`, and
/// records both for the `packr` command line.
async fn use_postgres(config: &mut Config, data_dir: &Path) {
    let database = super::postgres::fresh_database().await;
    let secrets = data_dir.join("mounted-secrets");
    write_shared_secrets(&secrets);
    config.database_url = Some(database.url.clone().into());
    config.secrets = packr::auth::secrets::SecretSource {
        dir: Some(secrets.clone()),
        generate_in: None,
    };
    write_store_env(data_dir, &database.url, &secrets);
}

/// Records in `data_dir` where its store is, for the `packr` command line ([`store_env`]).
pub fn write_store_env(data_dir: &Path, database_url: &str, secrets: &Path) {
    let env = format!(
        "PACKR_DATABASE_URL={database_url}\nPACKR_SECRETS_DIR={}\n",
        secrets.display()
    );
    std::fs::write(data_dir.join(STORE_ENV_FILE), env).expect("writing the store environment");
}

/// Fills `dir` with the secrets instances on PostgreSQL share, as a mounted Kubernetes Secret
/// would (`PACKR_SECRETS_DIR`): one random hex file per variable.
pub fn write_shared_secrets(dir: &Path) {
    std::fs::create_dir_all(dir).expect("creating the secrets directory");
    for var in [
        "PACKR_JWT_SECRET",
        "PACKR_SESSION_SECRET",
        "PACKR_SECRET_KEY",
    ] {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret[..]);
        std::fs::write(dir.join(var), hex::encode(secret)).expect("writing a secret");
    }
}

/// The environment `packr` needs for the store of the test data directory `data_dir`.
pub fn store_env(data_dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(data_dir.join(STORE_ENV_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

async fn launch(config: &Config) -> anyhow::Result<Running> {
    let server = Server::build(config.clone()).await?;
    let addr = server.local_addr()?;
    let registry = server.registry().clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    Ok(Running {
        addr,
        registry,
        stop,
        task,
    })
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk_files(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// Creates (or resets) a user (`NAME@example.com`) in a data directory with the real `packr user add`.
pub fn add_user(data_dir: &Path, name: &str, password: &str, role: &str) {
    let email = format!("{name}@example.com");
    let args = [
        "user",
        "add",
        name,
        "--password-stdin",
        "--email",
        &email,
        "--role",
        role,
    ];
    packr(data_dir, &args, Some(password));
}

/// Issues a token in a data directory with the real `packr token create`; `scopes` are like `@acme`.
pub fn token(data_dir: &Path, user: &str, role: &str, scopes: &[&str]) -> String {
    let mut args = vec!["token", "create", "--user", user, "--role", role];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let stdout = packr(data_dir, &args, None);
    let token = stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert!(
        !token.is_empty(),
        "packr token create printed no token:\n{stdout}"
    );
    token
}

/// The URL path of a package's packument: `/name` or `/@scope%2fname`.
pub fn package_path(name: &str) -> String {
    format!("/{}", name.replacen('/', "%2f", 1))
}

/// The built `packr` binary.
pub fn packr_binary() -> &'static str {
    env!("CARGO_BIN_EXE_packr")
}

/// `packr ARGS --data-dir DIR`, reaching the store of that test data directory (see
/// [`store_env`]): SQLite in it, or the PostgreSQL database its server runs on.
pub fn packr_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(packr_binary());
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PACKR_DATA_DIR")
        .envs(store_env(data_dir));
    command
}

/// Runs `packr ARGS --data-dir DIR`, feeding `stdin`; panics with both outputs unless it succeeds.
pub fn packr(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;

    let mut child = packr_command(data_dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the packr binary");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        writeln!(input, "{text}").expect("writing to packr's stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("waiting for packr");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "`packr {}` failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        args.join(" "),
        output.status
    );
    stdout
}
