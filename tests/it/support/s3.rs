//! A real S3 server for tests: s3s-fs, which checks SigV4 signatures like AWS does.
//!
//! It is installed once with `cargo install` into `<target>/test-tools/` (a few minutes on the
//! first run, then reused; see [`super::install`]). Each test starts its own server on a free
//! loopback port with its own data directory and bucket, and the server is killed when the
//! [`S3Server`] is dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use packr::config::{S3Config, S3Credentials};
use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};
use tempfile::TempDir;

use super::install::install_once;

/// The s3s-fs release the suite runs; changing it reinstalls.
const S3S_FS: &str = "s3s-fs@0.14.1";
/// Fixed test credentials: s3s-fs checks every signature against them.
pub const ACCESS_KEY: &str = "AKIAPACKRTEST";
/// The secret half of the test credentials.
pub const SECRET_KEY: &str = "packr-test-secret-key";
/// Region name used in signatures (s3s-fs accepts any).
pub const REGION: &str = "us-east-1";
/// The bucket each server is started with.
pub const BUCKET: &str = "packr-test";
/// The key prefix test servers store tarballs under.
pub const PREFIX: &str = "tarballs";

/// A running s3s-fs with one empty bucket; killed when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
    _data: TempDir,
}

impl S3Server {
    /// Installs s3s-fs if needed, starts it on a free port and creates [`BUCKET`].
    pub async fn start() -> Self {
        let binary = tokio::task::spawn_blocking(binary)
            .await
            .expect("installing s3s-fs");
        let server = tokio::task::spawn_blocking(move || launch(&binary))
            .await
            .expect("starting s3s-fs")
            .unwrap_or_else(|err| panic!("s3s-fs did not start: {err:#}"));
        Bucket::create_with_path_style(
            BUCKET,
            server.region(),
            credentials(),
            BucketConfiguration::default(),
        )
        .await
        .unwrap_or_else(|err| panic!("creating bucket {BUCKET} on {}: {err}", server.endpoint));
        server
    }

    /// The settings that point Packr at this server (path-style, test keys, [`PREFIX`]).
    pub fn config(&self) -> S3Config {
        S3Config {
            bucket: BUCKET.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: REGION.to_owned(),
            path_style: true,
            prefix: PREFIX.to_owned(),
            credentials: Some(S3Credentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: SECRET_KEY.into(),
            }),
            timeout: Duration::from_secs(10),
        }
    }

    /// The `PACKR_*` variables that point a `packr` process at this server, as [`S3Server::config`].
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("PACKR_STORAGE", "s3"),
            ("PACKR_S3_BUCKET", BUCKET),
            ("PACKR_S3_ENDPOINT", &self.endpoint),
            ("PACKR_S3_REGION", REGION),
            ("PACKR_S3_PATH_STYLE", "true"),
            ("PACKR_S3_PREFIX", PREFIX),
            ("PACKR_S3_ACCESS_KEY_ID", ACCESS_KEY),
            ("PACKR_S3_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
    }

    /// Every object key in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let bucket = Bucket::new(BUCKET, self.region(), credentials())
            .expect("a bucket handle")
            .with_path_style();
        let pages = bucket
            .list(String::new(), None)
            .await
            .unwrap_or_else(|err| panic!("listing bucket {BUCKET}: {err}"));
        let mut keys: Vec<String> = pages
            .into_iter()
            .flat_map(|page| page.contents.into_iter().map(|object| object.key))
            .collect();
        keys.sort();
        keys
    }

    /// Kills the server now (the port then refuses connections), as an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn region(&self) -> Region {
        Region::Custom {
            region: REGION.to_owned(),
            endpoint: self.endpoint.clone(),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn credentials() -> Credentials {
    Credentials::new(Some(ACCESS_KEY), Some(SECRET_KEY), None, None, None)
        .expect("static credentials")
}

/// Starts s3s-fs on a free port, trying again on another port if one was taken meanwhile.
fn launch(binary: &Path) -> anyhow::Result<S3Server> {
    let mut last = None;
    for _ in 0..5 {
        let data = tempfile::Builder::new().prefix("packr-s3-").tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            _data: data,
        };
        match wait_until_listening(&mut server, port) {
            Ok(()) => return Ok(server),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt was made")))
}

fn wait_until_listening(server: &mut S3Server, port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = server
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            anyhow::bail!("s3s-fs exited with {status} (port {port} taken?)");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("s3s-fs did not listen on port {port} within 20 s")
}

/// The s3s-fs binary, installed on first use.
fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| install().unwrap_or_else(|err| panic!("installing {S3S_FS}: {err:#}")))
        .clone()
}

fn install() -> anyhow::Result<PathBuf> {
    use anyhow::{Context, bail};

    let root = install_once("test-tools", S3S_FS, |root| {
        eprintln!(
            "installing {S3S_FS} into {} (first run only; takes minutes)",
            root.display()
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // The outer build may own CARGO_TARGET_DIR; the install uses a temporary one of its own.
        let status = Command::new(cargo)
            .args([
                "install",
                S3S_FS,
                "--features",
                "binary",
                "--locked",
                "--root",
            ])
            .arg(root)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .context("running cargo install")?;
        if !status.success() || !root.join("bin").join("s3s-fs").is_file() {
            bail!(
                "`cargo install {S3S_FS} --features binary --locked` failed ({status}); its output is above"
            );
        }
        Ok(())
    })?;
    Ok(root.join("bin").join("s3s-fs"))
}
