//! The `packr` command line as operators and scripts use it: help, users, tokens, and `serve`
//! answering health checks and stopping cleanly on SIGTERM.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::publish_body::PublishBody;
use crate::support::serve_process::ServeProcess;
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
    let mut serve = ServeProcess::start(data.path(), "serve.log", &[]).await;
    let http = reqwest::Client::new();
    let health = http
        .get(serve.url("/-/health"))
        .send()
        .await
        .expect("GET /-/health");
    assert_eq!(health.status(), StatusCode::OK);
    let body: Value = health.json().await.expect("health answers JSON");
    assert_eq!(body["status"], "ok", "{body}");

    let pid = serve.pid().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("running kill");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let status = serve.exit_within(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "packr serve exited with {status} after SIGTERM\n{}",
        serve.log()
    );
    assert!(
        http.get(serve.url("/-/health")).send().await.is_err(),
        "the port must be closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_failure_is_one_error_line_with_the_request_and_its_cause_and_no_secret() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("UTF-8 temp path");
    succeeds(
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--data-dir",
            data_dir,
        ],
        "alice-password-1\n",
    );
    let create = ["token", "create", "--user", "alice", "--role", "maintainer"];
    let stdout = succeeds(&[&create[..], &["--data-dir", data_dir]].concat(), "");
    let token = stdout.lines().last().unwrap_or_default().to_owned();
    // S3 storage on a port nobody listens on: every blob write fails after its retries.
    let dead_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free port")
        .port();
    let dead_endpoint = format!("http://127.0.0.1:{dead_port}");
    let env = [
        ("PACKR_STORAGE", "s3"),
        ("PACKR_S3_BUCKET", "tarballs"),
        ("PACKR_S3_ENDPOINT", dead_endpoint.as_str()),
        ("PACKR_S3_PATH_STYLE", "true"),
        ("PACKR_S3_ACCESS_KEY_ID", "packr"),
        ("PACKR_S3_SECRET_ACCESS_KEY", "packr-secret"),
        ("RUST_LOG", "info,packr=debug"),
    ];
    let serve = ServeProcess::start(data.path(), "serve.log", &env).await;
    let http = reqwest::Client::new();

    let body = PublishBody::new("stranded", "1.0.0");
    let publish = http
        .put(serve.url("/stranded"))
        .bearer_auth(&token)
        .json(&body.json())
        .send()
        .await
        .expect("PUT /stranded");
    assert_eq!(publish.status(), StatusCode::SERVICE_UNAVAILABLE);
    let request_id = publish.headers()["x-request-id"]
        .to_str()
        .expect("ASCII request id")
        .to_owned();
    let logout = http
        .delete(serve.url(&format!("/-/user/token/{token}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("DELETE /-/user/token/…");
    assert_eq!(logout.status(), StatusCode::OK);

    let log = serve.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let failures: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["request_id"] == request_id.as_str())
        .collect();
    assert_eq!(failures.len(), 1, "one line for the failed request:\n{log}");
    let fields = &failures[0]["fields"];
    assert_eq!(failures[0]["level"], "ERROR", "{log}");
    assert_eq!(fields["message"], "request failed");
    assert_eq!(fields["method"], "PUT");
    assert_eq!(fields["path"], "/stranded");
    assert_eq!(fields["status"], 503);
    let error = fields["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("storage unavailable") && error.contains("PUT object"),
        "{error}"
    );
    // At debug every request has an access line; the logout path carries the token.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["path"] == "/-/user/token/[redacted]"
                && l["fields"]["status"] == 200),
        "{log}"
    );
    assert!(
        !log.contains(&token),
        "the token must not be logged:\n{log}"
    );
}
