//! `packr serve` as a child process, for tests of what only the real binary shows: its command
//! line, signals, logs, and restarts after a kill.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::server::packr_binary;

/// A running `packr serve` on a free port, logging to a file in its data directory; killed when
/// dropped.
pub struct ServeProcess {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log_path: PathBuf,
}

impl ServeProcess {
    /// Starts `packr serve` on `data_dir` with no `PACKR_*` or `RUST_LOG` variables but `env`,
    /// and waits until it answers `/-/health` (with any status: a broken store answers 503 there).
    pub async fn start(data_dir: &Path, log_name: &str, env: &[(&str, &str)]) -> Self {
        // `serve` cannot report a port it picked itself, so reserve a free one and hand it over.
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("finding a free port")
            .to_string();
        Self::start_at(data_dir, &listen, log_name, env).await
    }

    /// As [`ServeProcess::start`], listening on `listen` (`127.0.0.1:PORT`).
    pub async fn start_at(
        data_dir: &Path,
        listen: &str,
        log_name: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let listen = listen.to_owned();
        let log_path = data_dir.join(log_name);
        let log_file = std::fs::File::create(&log_path).expect("creating the log file");
        let mut command = tokio::process::Command::new(packr_binary());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PACKR_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["serve", "--listen", &listen, "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning packr serve");
        let mut process = Self {
            child,
            url: format!("http://{listen}"),
            log_path,
        };
        process.wait_until_answering().await;
        process
    }

    async fn wait_until_answering(&mut self) {
        let health = self.url("/-/health");
        let started = Instant::now();
        loop {
            let answer = reqwest::get(&health).await;
            if answer.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("packr serve exited early with {status}\n{}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "packr serve did not answer within 30 s: {answer:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The process id, for sending signals.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("packr serve is running")
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("packr serve did not exit within {limit:?}\n{}", self.log()))
            .expect("waiting for packr serve")
    }

    /// SIGTERM, then waits for the process to finish its shutdown.
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        self.exit_within(Duration::from_secs(30)).await
    }

    /// `127.0.0.1:PORT`, the address it listens on.
    pub fn listen(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("killing packr serve");
    }
}
