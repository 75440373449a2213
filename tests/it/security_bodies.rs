//! Issue 9: request bodies are bounded before anyone is authenticated (a gzip bomb costs nothing),
//! a publish over the limit gets a 413 npm can print, Argon2 runs under a bound, an unknown user
//! looks like a wrong password, and user names are unique regardless of case.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clients::ClientEnv;
use crate::support::fixtures::Package;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{TestServer, add_user, packr_binary};

/// 63 MiB of `[0,0,0,…]` (under the default 64 MiB limit), gzipped to about 65 KB: the body of
/// the review's attack.
fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let mebibyte = "0,".repeat(512 * 1024);
        encoder.write_all(b"[").unwrap();
        for _ in 0..63 {
            encoder.write_all(mebibyte.as_bytes()).unwrap();
        }
        encoder.write_all(b"0]").unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
        bomb
    })
}

/// Routes anyone may call without a token that take JSON or OAuth bodies. (The HTML login form
/// takes no compressed body at all: axum's form extractor reads at most 64 KiB as sent.)
const ROUTES_WITHOUT_TOKEN: &[(&str, &str, &str)] = &[
    ("POST", "/-/v1/device/token", "application/json"),
    ("POST", "/-/v1/device/authorize", "application/json"),
    (
        "PUT",
        "/-/user/org.couchdb.user:mallory",
        "application/json",
    ),
    ("POST", "/-/v1/login", "application/json"),
    ("POST", "/api/v1/admin/sessions", "application/json"),
];

fn bomb_request(
    http: &reqwest::Client,
    base: &str,
    (method, path, content_type): (&str, &str, &str),
) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    http.request(method, format!("{base}{path}"))
        .header("content-type", content_type)
        .header("content-encoding", "gzip")
        .body(gzip_bomb().to_vec())
}

async fn error_body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("error bodies are JSON");
    (status, body)
}

#[tokio::test]
async fn a_gzip_bomb_to_a_route_without_a_token_is_refused_with_413_quickly() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for &route in ROUTES_WITHOUT_TOKEN {
        let started = Instant::now();
        let response = bomb_request(&http, &server.url, route)
            .send()
            .await
            .unwrap();
        let (status, body) = error_body(response).await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{route:?}: {body}");
        assert_eq!(body["code"], "too_large", "{route:?}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("65536 bytes") && message.contains("without a token"),
            "{route:?}: {message}"
        );
        assert!(took < Duration::from_secs(2), "{route:?} took {took:?}");
    }
}

#[tokio::test]
async fn a_gzip_bomb_publish_without_a_valid_token_is_refused_before_its_body_is_read() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for token in [None, Some("not-a-token")] {
        let mut request =
            bomb_request(&http, &server.url, ("PUT", "/left-pad", "application/json"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let (status, body) = error_body(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert!(started.elapsed() < Duration::from_secs(2), "{token:?}");
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

const MEMORY_BOUND_KIB: u64 = 100 * 1024;

/// Watches the process's RSS until `work` ends; stops early (the process dies with the test) far
/// past the bound, so that a regression cannot take the machine's memory.
async fn peak_rss_while(serve: &ServeProcess, work: impl Future<Output = ()>) -> u64 {
    let pid = serve.pid();
    let mut work = std::pin::pin!(work);
    let mut peak = 0;
    loop {
        tokio::select! {
            () = &mut work => break,
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                let rss = memory_kib(pid, "VmRSS");
                peak = peak.max(rss);
                assert!(rss < 4 * MEMORY_BOUND_KIB, "packr serve reached {rss} KiB of RSS");
            }
        }
    }
    peak.max(memory_kib(pid, "VmHWM"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packr_serve_stays_under_100_mib_while_16_clients_send_gzip_bombs() {
    let data = tempfile::tempdir().unwrap();
    let env = [("PACKR_LOGIN_RATE_LIMIT", "off")];
    let serve = ServeProcess::start(data.path(), "serve.log", &env).await;
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(4);
    let clients = (0..16).map(|client| {
        let (http, base) = (http.clone(), serve.url.clone());
        async move {
            let mut sent = 0;
            while Instant::now() < until {
                let route = ROUTES_WITHOUT_TOKEN[(client + sent) % ROUTES_WITHOUT_TOKEN.len()];
                let response = bomb_request(&http, &base, route).send().await.unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "{route:?}"
                );
                sent += 1;
            }
            sent
        }
    });
    let sent = std::sync::Mutex::new(0);
    let peak = peak_rss_while(&serve, async {
        let counts = futures_util::future::join_all(clients).await;
        *sent.lock().unwrap() = counts.iter().sum::<usize>();
    })
    .await;
    let sent = *sent.lock().unwrap();
    eprintln!("peak RSS {peak} KiB while {sent} gzip bombs were refused");
    assert!(sent >= 16, "only {sent} bombs were answered");
    assert!(
        peak < MEMORY_BOUND_KIB,
        "peak RSS {peak} KiB after {sent} bombs\n{}",
        serve.log()
    );
}

/// `chars` characters of barely compressible text.
fn filler(chars: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..chars)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'!' + (state % 90) as u8)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_prints_the_413_message_for_a_publish_just_over_the_limit() {
    let limit = 2 * 1024 * 1024;
    let server = TestServer::start_with(|config| config.max_body_bytes = limit).await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let npm = ClientEnv::new(&server, Some(&token));
    // Barely compressible text: the body is about 8.8 MiB, so what is left past the 2 MiB limit no
    // longer fits in the loopback socket buffers, the case where npm used to see only EPIPE.
    let filler = filler(8_000_000);
    let dir = npm.package(&Package::new("hefty", "1.0.0").file("data.txt", &filler));
    let output = npm.npm().arg("publish").current_dir(dir).fails().await;
    output
        .assert_mentions("413")
        .assert_mentions("PACKR_MAX_BODY_BYTES");
    let (status, _) = server.get_json("/hefty", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A data directory whose database has the admin `alice` (password `s3cret-pass`).
fn data_dir_with_alice() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "alice", "s3cret-pass", "admin");
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packr_serve_stays_under_100_mib_while_32_logins_hash_at_once() {
    let data = data_dir_with_alice();
    let env = [
        ("PACKR_LOGIN_RATE_LIMIT", "off"),
        ("PACKR_PASSWORD_CONCURRENCY", "2"),
    ];
    let serve = ServeProcess::start(data.path(), "serve.log", &env).await;
    let http = reqwest::Client::new();
    let logins = (0..32).map(|i| {
        let request = http
            .post(serve.url("/-/v1/login"))
            .json(&json!({ "name": "alice", "password": format!("wrong-{i}") }));
        async move { request.send().await.unwrap().status() }
    });
    let peak = peak_rss_while(&serve, async {
        for status in futures_util::future::join_all(logins).await {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    })
    .await;
    eprintln!("peak RSS {peak} KiB with 32 logins at once");
    assert!(
        peak < MEMORY_BOUND_KIB,
        "peak RSS {peak} KiB after 32 logins"
    );
}

/// Status and body of a password login on each path that takes one.
async fn login_answers(
    server: &TestServer,
    name: &str,
    password: &str,
) -> Vec<(StatusCode, Value)> {
    let http = reqwest::Client::new();
    let body = json!({ "name": name, "password": password });
    let requests = [
        http.put(format!("{}/-/user/org.couchdb.user:{name}", server.url)),
        http.post(format!("{}/-/v1/login", server.url)),
        http.post(format!("{}/api/v1/admin/sessions", server.url)),
    ];
    let mut answers = Vec::new();
    for request in requests {
        answers.push(error_body(request.json(&body).send().await.unwrap()).await);
    }
    answers
}

#[tokio::test]
async fn an_unknown_user_gets_the_same_answer_as_a_wrong_password_on_every_login_path() {
    let server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let wrong_password = login_answers(&server, "alice", "not-it").await;
    let unknown_user = login_answers(&server, "nobody", "not-it").await;
    for (wrong, unknown) in wrong_password.iter().zip(&unknown_user) {
        assert_eq!(wrong.0, StatusCode::UNAUTHORIZED, "{}", wrong.1);
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.1["error"], "incorrect username or password");
    }
}

async fn median_login_time(server: &TestServer, name: &str) -> Duration {
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let response = http
            .post(format!("{}/-/v1/login", server.url))
            .json(&json!({ "name": name, "password": "not-it" }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn an_unknown_user_costs_the_same_argon2_work_as_a_wrong_password() {
    let server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let wrong_password = median_login_time(&server, "alice").await;
    let unknown_user = median_login_time(&server, "nobody").await;
    assert!(
        unknown_user * 2 > wrong_password,
        "an unknown user answers in {unknown_user:?}, a wrong password in {wrong_password:?}"
    );
}

/// Runs `packr ARGS --data-dir DIR` with `stdin`, expecting it to fail; returns its stderr.
fn packr_fails(data_dir: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = crate::support::server::packr_command(data_dir, args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{stdin}").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "`packr {}` succeeded: {stderr}",
        args.join(" ")
    );
    stderr
}

#[tokio::test]
async fn packr_user_add_refuses_a_case_variant_of_an_existing_name() {
    let server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "admin");
    let stderr = packr_fails(
        &server.data_dir,
        &[
            "user",
            "add",
            "Alice",
            "--password-stdin",
            "--role",
            "maintainer",
        ],
        "other-pass",
    );
    assert!(
        stderr.contains("`alice` already exists") && stderr.contains("regardless of case"),
        "{stderr}"
    );
    // Resetting the account under its own name still works.
    server.add_user("alice", "new-pass", "admin");
    let (status, _) = error_body(
        reqwest::Client::new()
            .post(format!("{}/-/v1/login", server.url))
            .json(&json!({ "name": "alice", "password": "new-pass" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn npm_adduser_refuses_a_case_variant_of_an_existing_name() {
    let server = TestServer::start_with(|config| config.allow_signup = true).await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let response = reqwest::Client::new()
        .put(format!("{}/-/user/org.couchdb.user:ALICE", server.url))
        .json(&json!({ "name": "ALICE", "password": "p4ss", "email": "a@example.com" }))
        .send()
        .await
        .unwrap();
    let (status, body) = error_body(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("`alice` already exists"), "{message}");
    let (status, _) = server
        .get_json(
            "/-/user/org.couchdb.user:ALICE",
            Some(&server.token("alice", "maintainer", &[])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn packr_serve_refuses_a_database_whose_user_names_differ_only_in_case() {
    let data = data_dir_with_alice();
    // A database from before the rule: the index absent, and a case variant of alice.
    let db = rusqlite::Connection::open(data.path().join("packr.db")).unwrap();
    db.execute_batch(
        "DROP INDEX IF EXISTS users_name_nocase;
         INSERT INTO users (name, email, role, created_at) VALUES ('ALICE', '', 'reader', 0);
         PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(db);
    for _ in 0..2 {
        let listen = "127.0.0.1:0";
        let output = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::process::Command::new(packr_binary())
                .args(["serve", "--listen", listen, "--data-dir"])
                .arg(data.path())
                .env_remove("PACKR_DATA_DIR")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("packr serve must refuse to start, not serve")
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains("ALICE") && stderr.contains("alice") && stderr.contains("case"),
            "{stderr}"
        );
    }
}

/// The token is checked before the body is read; the unread body is still drained, so npm prints
/// its "log in again" advice instead of `EPIPE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_prints_the_401_message_for_a_large_publish_with_a_bad_token() {
    let server = TestServer::start().await;
    let npm = ClientEnv::new(&server, Some("not-a-token"));
    let dir = npm.package(&Package::new("hefty", "1.0.0").file("data.txt", &filler(8_000_000)));
    let output = npm.npm().arg("publish").current_dir(dir).fails().await;
    output
        .assert_mentions("E401")
        .assert_mentions("npm login")
        .assert_does_not_mention("EPIPE");
}
