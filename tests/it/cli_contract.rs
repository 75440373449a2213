//! The `packr` command line as operators and scripts use it: help, users, tokens, and `serve`
//! answering health checks and stopping cleanly on SIGTERM.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::server::{TestServer, packr_binary};

/// Runs `packr ARGS` with no `PACKR_*` variables from the environment, feeding `stdin`.
fn packr(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;

    let mut command = Command::new(packr_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PACKR_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning packr");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("writing packr's stdin");
    child.wait_with_output().expect("waiting for packr")
}

fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "`packr {}` exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn succeeds(args: &[&str], stdin: &str) -> String {
    let output = packr(args, stdin);
    assert!(output.status.success(), "{}", describe(args, &output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails(args: &[&str], stdin: &str) -> String {
    let output = packr(args, stdin);
    assert!(!output.status.success(), "{}", describe(args, &output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn packr_help_lists_the_serve_user_and_token_commands() {
    let help = succeeds(&["--help"], "");
    for command in ["serve", "user", "token"] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(command)),
            "`packr --help` does not list {command}:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packr_token_create_prints_a_jwt_alone_on_its_last_line_that_the_server_accepts() {
    let server = TestServer::start().await;
    let data_dir = server.data_dir.to_str().expect("UTF-8 temp path");
    succeeds(
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--email",
            "alice@example.com",
            "--data-dir",
            data_dir,
        ],
        "alice-password-1\n",
    );
    let stdout = succeeds(
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--role",
            "ci-publish",
            "--scope",
            "@acme",
            "--expires",
            "30d",
            "--name",
            "ci",
            "--data-dir",
            data_dir,
        ],
        "",
    );

    let token = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        token,
        token.trim(),
        "the last line must be the token alone: {stdout:?}"
    );
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "a JWT has three dot-separated parts: {token:?}"
    );
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("the JWT payload is base64url");
    let claims: Value = serde_json::from_slice(&claims).expect("the JWT payload is JSON");
    assert_eq!(claims["sub"], "alice", "claims: {claims}");
    let issued = claims["iat"].as_i64().expect("iat claim");
    let expires = claims["exp"].as_i64().expect("exp claim for --expires 30d");
    assert_eq!(expires - issued, 30 * 86_400, "claims: {claims}");

    let (status, whoami) = server.get_json("/-/whoami", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "GET /-/whoami: {whoami}");
    assert_eq!(whoami["username"], "alice");
}

#[test]
fn packr_token_create_refuses_an_unknown_role_and_a_role_above_the_users() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("UTF-8 temp path");
    succeeds(
        &[
            "user",
            "add",
            "rita",
            "--password-stdin",
            "--role",
            "reader",
            "--data-dir",
            data_dir,
        ],
        "rita-password-1\n",
    );

    let stderr = fails(
        &[
            "token",
            "create",
            "--user",
            "rita",
            "--role",
            "superuser",
            "--data-dir",
            data_dir,
        ],
        "",
    );
    assert!(
        stderr.contains("superuser"),
        "the error should name the bad role:\n{stderr}"
    );

    let stderr = fails(
        &[
            "token",
            "create",
            "--user",
            "rita",
            "--role",
            "ci-publish",
            "--data-dir",
            data_dir,
        ],
        "",
    );
    assert!(
        stderr.contains("reader"),
        "the error should say why:\n{stderr}"
    );

    let stdout = succeeds(
        &[
            "token",
            "create",
            "--user",
            "rita",
            "--role",
            "ci-readonly",
            "--data-dir",
            data_dir,
        ],
        "",
    );
    assert_eq!(
        stdout.lines().last().unwrap_or_default().split('.').count(),
        3
    );

    let stderr = fails(
        &[
            "token",
            "create",
            "--user",
            "nobody",
            "--role",
            "ci-readonly",
            "--data-dir",
            data_dir,
        ],
        "",
    );
    assert!(
        stderr.contains("nobody"),
        "the error should name the unknown user:\n{stderr}"
    );
}

#[test]
fn packr_user_add_needs_a_password_on_stdin() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("UTF-8 temp path");
    let stderr = fails(
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--data-dir",
            data_dir,
        ],
        "",
    );
    assert!(stderr.contains("password"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packr_serve_answers_health_checks_and_exits_zero_on_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    // `serve` cannot report a port it picked itself, so reserve a free one and hand it over.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let log_path = data.path().join("serve.log");
    let log_file = std::fs::File::create(&log_path).expect("creating the log file");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut command = tokio::process::Command::new(packr_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PACKR_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning packr serve");

    // The process is outside the test, so poll until it is ready.
    let http = reqwest::Client::new();
    let started = Instant::now();
    let health = loop {
        match http.get(format!("http://{listen}/health")).send().await {
            Ok(response) => break response,
            Err(err) if started.elapsed() < Duration::from_secs(20) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("packr serve exited early with {status}: {err}\n{}", log());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("packr serve did not answer within 20 s: {err}\n{}", log()),
        }
    };
    assert_eq!(health.status(), StatusCode::OK);
    let body: Value = health.json().await.expect("health answers JSON");
    assert_eq!(body["status"], "ok", "{body}");

    let pid = child.id().expect("packr serve is running").to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("running kill");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap_or_else(|_| panic!("packr serve did not exit within 10 s of SIGTERM\n{}", log()))
        .expect("waiting for packr serve");
    assert!(
        status.success(),
        "packr serve exited with {status} after SIGTERM\n{}",
        log()
    );
    assert!(
        http.get(format!("http://{listen}/health"))
            .send()
            .await
            .is_err(),
        "the port must be closed after shutdown"
    );
}
