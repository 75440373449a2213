//! Issue 12: memory honest to `PACKR_CACHE_BYTES`. Blocking work runs on at most
//! `PACKR_BLOCKING_THREADS` threads however many reads miss the cache at once (each thread keeps
//! its own allocator cache, so their number is part of the memory bound), and a flood of packument
//! reads under made-up `Host` headers keeps the cache within its bytes.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::publish_body::PublishBody;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{TestServer, add_user, token};

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// Threads of a process named as tokio names its workers and blocking threads
/// (`tokio-rt-worker`).
fn tokio_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("tokio-"))
        .count()
}

async fn publish(http: &reqwest::Client, base: &str, token: &str, name: &str) {
    let response = http
        .put(format!("{base}/{name}"))
        .bearer_auth(token)
        .json(&PublishBody::new(name, "1.0.0").json())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "publish {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cache_misses_use_at_most_packr_blocking_threads() {
    const PACKAGES: usize = 24;
    const BLOCKING: usize = 3;
    const CLIENTS: usize = 48;
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "alice", "s3cret-pass", "admin");
    let token = token(data.path(), "alice", "admin", &[]);
    let env = [
        ("PACKR_BLOCKING_THREADS", "3"),
        ("PACKR_CACHE_BYTES", "65536"),
    ];
    let serve = ServeProcess::start(data.path(), "serve.log", &env).await;
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..PACKAGES).map(|i| format!("miss-{i:02}")).collect();
    for name in &names {
        publish(&http, &serve.url, &token, name).await;
    }
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);

    // Every read a miss: each client asks under a Host of its own, so no rendering is reused, and
    // each miss reads the database and renders on blocking threads.
    let pid = serve.pid();
    let reads = (0..CLIENTS).map(|client| {
        let (http, base, token, names) = (http.clone(), serve.url.clone(), token.clone(), &names);
        async move {
            for (i, name) in names.iter().enumerate() {
                let response = http
                    .get(format!("{base}/{name}"))
                    .bearer_auth(&token)
                    .header("host", format!("client-{client}-{i}.example"))
                    .header("accept", ABBREVIATED)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "GET /{name}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["name"], name.as_str());
                let tarball = body["versions"]["1.0.0"]["dist"]["tarball"]
                    .as_str()
                    .unwrap();
                assert!(
                    tarball.starts_with(&format!("http://client-{client}-{i}.example/")),
                    "{tarball}"
                );
            }
        }
    });
    let mut most = 0;
    let mut all = std::pin::pin!(futures_util::future::join_all(reads));
    loop {
        tokio::select! {
            _ = &mut all => break,
            () = tokio::time::sleep(Duration::from_millis(5)) => {
                most = most.max(tokio_threads(pid));
            }
        }
    }
    eprintln!("at most {most} tokio threads ({workers} workers) for {CLIENTS} clients");
    assert!(
        most <= workers + BLOCKING,
        "{most} tokio threads with {workers} workers and PACKR_BLOCKING_THREADS={BLOCKING}"
    );
    // The cap was reached: the test says something about it.
    assert!(most > workers, "no blocking thread seen");
}

#[tokio::test]
async fn packument_reads_under_many_hosts_keep_the_cache_within_its_bytes() {
    const CACHE_BYTES: usize = 48 * 1024;
    let server = TestServer::start_with(|config| config.cache_bytes = CACHE_BYTES).await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..30).map(|i| format!("hosts-{i:02}")).collect();
    for name in &names {
        publish(&http, &server.url, &token, name).await;
    }
    let registry = server.registry();
    let mut most = 0;
    for round in 0..8 {
        for name in &names {
            for form in ["application/json", ABBREVIATED] {
                let response = http
                    .get(format!("{}/{name}", server.url))
                    .bearer_auth(&token)
                    .header("host", format!("h{round}-{name}.example:4873"))
                    .header("accept", form)
                    .header("accept-encoding", "gzip")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "GET /{name}");
            }
        }
        let stats = registry.cache_stats();
        most = most.max(stats.bytes);
        assert!(
            stats.bytes <= CACHE_BYTES as u64,
            "round {round}: the cache holds {stats:?}, over {CACHE_BYTES} bytes"
        );
        // One rendering per package at most, whatever the number of hosts.
        assert!(stats.entries as usize <= names.len(), "{stats:?}");
    }
    // The bound was what limited the cache, not the number of packages.
    let stats = registry.cache_stats();
    assert!((stats.entries as usize) < names.len(), "{stats:?}");
    assert!(most > CACHE_BYTES as u64 / 2, "{most}");
}
