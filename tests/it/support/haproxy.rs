//! A real load balancer for cluster tests: HAProxy (Debian's, installed with apt-get when
//! missing), in front of several `packr serve` processes, checking each one's readiness and
//! retrying a request on another instance when one closes under it, as a production balancer
//! would.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::install::{apt_install, locked};

/// A running HAProxy; stopped when dropped.
pub struct Haproxy {
    /// `http://127.0.0.1:PORT`, where clients connect.
    pub url: String,
    _child: tokio::process::Child,
    _dir: TempDir,
}

/// The haproxy binary, installed if needed.
fn binary() -> &'static Path {
    let path = Path::new("/usr/sbin/haproxy");
    if !path.exists() {
        locked("haproxy", || {
            if path.exists() {
                return Ok(());
            }
            apt_install("haproxy")
        })
        .expect("installing haproxy with apt-get");
    }
    path
}

impl Haproxy {
    /// Balances over `backends` (`127.0.0.1:PORT` each), sending traffic only to those whose
    /// `/-/health/ready` answers.
    pub async fn start(backends: &[&str]) -> Self {
        let binary = tokio::task::spawn_blocking(binary).await.unwrap();
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("finding a free port");
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(at, address)| {
                format!("    server packr{at} {address} check inter 100ms fall 1 rise 2\n")
            })
            .collect();
        let config = format!(
            "global\n    maxconn 512\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    \
             timeout server 30s\n    retries 3\n    option redispatch 1\n    \
             retry-on all-retryable-errors\n\
             frontend registry\n    bind {listen}\n    default_backend packr\n\
             backend packr\n    balance roundrobin\n    option httpchk GET /-/health/ready\n{servers}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let child = tokio::process::Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting haproxy");
        let url = format!("http://{listen}");
        let started = Instant::now();
        while reqwest::get(format!("{url}/-/health/ready"))
            .await
            .map_or(true, |answer| !answer.status().is_success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "haproxy did not pass requests within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            url,
            _child: child,
            _dir: dir,
        }
    }
}
