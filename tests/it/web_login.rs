//! Browser login: real `npm login` (web) and `packr login` processes while real headless Chromium
//! opens the printed URL, signs in and approves or denies; plus the RFC 8628 error answers.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::browser::confirm_login;
use crate::support::clients::{self, ClientEnv};
use crate::support::fixtures::Package;
use crate::support::server::{TestServer, packr_binary};

async fn server() -> TestServer {
    let server = TestServer::start_with(|config| {
        config.login.device_poll_interval = Duration::from_secs(1);
    })
    .await;
    server.add_user("alice", "alice-password-1", "maintainer");
    server
}

/// Reads a child's stdout until a line holding the `/-/cli/auth` URL; the rest of its output is
/// collected by the returned task.
pub(crate) async fn login_url(child: &mut Child) -> (String, tokio::task::JoinHandle<String>) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("stdout readable") {
            if let Some(at) = line.find("http") {
                let url = line[at..].trim().to_owned();
                if url.contains("/-/cli/auth") {
                    return url;
                }
            }
        }
        panic!("the client exited without printing a login URL");
    })
    .await
    .expect("a login URL within 60 s");
    // Keep draining so the child never blocks on a full pipe.
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    (url, rest)
}

pub(crate) async fn finished(child: Child) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client finished within 60 s after the browser")
        .expect("the client ran")
}

pub(crate) fn screenshot(name: &str) -> std::path::PathBuf {
    let dir = Path::new(packr_binary())
        .ancestors()
        .nth(2)
        .unwrap()
        .join("test-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_web_login_completes_when_the_browser_approves_and_the_token_publishes() {
    let server = server().await;
    let npm = ClientEnv::new(&server, None);
    let mut child = Command::new("node")
        .arg(clients::npm())
        .args(["login", "--registry", &format!("{}/", server.url)])
        .env("HOME", npm.home())
        .env("npm_config_userconfig", npm.npmrc_path())
        .env("npm_config_cache", npm.home().join(".npm-cache"))
        .env("npm_config_update_notifier", "false")
        .current_dir(npm.project())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("npm starts");
    let (url, _) = login_url(&mut child).await;
    assert!(
        url.starts_with(&format!("{}/-/cli/auth?code=", server.url)),
        "{url}"
    );

    let confirmation = confirm_login(
        &url,
        "alice",
        "alice-password-1",
        true,
        &screenshot("npm-login.png"),
    )
    .await;
    assert!(
        confirmation.result.contains("logged in as alice"),
        "{confirmation:?}"
    );
    assert!(
        url.ends_with(&confirmation.code),
        "the page shows the code npm printed"
    );

    let output = finished(child).await;
    assert!(
        output.status.success(),
        "npm login: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    npm.npm()
        .arg("whoami")
        .succeeds()
        .await
        .assert_mentions("alice");
    let dir = npm.package(&Package::new("web-login-pkg", "1.0.0"));
    npm.npm()
        .arg("publish")
        .current_dir(dir)
        .succeeds()
        .await
        .assert_mentions("+ web-login-pkg@1.0.0");
}

pub(crate) async fn packr_login(server: &TestServer, npmrc: &Path) -> Child {
    Command::new(packr_binary())
        .args([
            "login",
            "--registry",
            &server.url,
            "--scope",
            "@acme",
            "--userconfig",
        ])
        .arg(npmrc)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("packr login starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packr_login_writes_a_working_token_into_the_npmrc() {
    let server = server().await;
    let npm = ClientEnv::new(&server, None);
    let npmrc = npm.npmrc_path();
    let mut child = packr_login(&server, &npmrc).await;
    let (url, rest) = login_url(&mut child).await;
    let confirmation = confirm_login(
        &url,
        "alice",
        "alice-password-1",
        true,
        &screenshot("packr-login.png"),
    )
    .await;
    assert!(confirmation.result.contains("alice"), "{confirmation:?}");
    let output = finished(child).await;
    assert!(
        output.status.success(),
        "packr login: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = rest.await.unwrap();
    assert!(printed.contains("Logged in as alice"), "{printed}");
    let written = std::fs::read_to_string(&npmrc).unwrap();
    let host = server.url.trim_start_matches("http://");
    assert!(
        written.contains(&format!("@acme:registry={}/", server.url)),
        "{written}"
    );
    assert!(
        written.contains(&format!("//{host}/:_authToken=ey")),
        "{written}"
    );
    npm.npm()
        .arg("whoami")
        .succeeds()
        .await
        .assert_mentions("alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_login_ends_the_terminal_with_an_error() {
    let server = server().await;
    let npm = ClientEnv::new(&server, None);
    let mut child = packr_login(&server, &npm.npmrc_path()).await;
    let (url, _) = login_url(&mut child).await;
    let confirmation = confirm_login(
        &url,
        "alice",
        "alice-password-1",
        false,
        &screenshot("denied.png"),
    )
    .await;
    assert!(confirmation.result.contains("Denied"), "{confirmation:?}");
    let output = finished(child).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("denied"));
}

async fn form(server: &TestServer, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn device_polls_answer_pending_slow_down_and_expired_as_rfc_8628_says() {
    let server = TestServer::start_with(|config| {
        config.login.device_code_ttl = Duration::from_secs(2);
        config.login.device_poll_interval = Duration::from_secs(1);
    })
    .await;
    let (status, start) = form(
        &server,
        "/-/v1/device/authorize",
        &[("client_id", "test"), ("scope", "ci-readonly")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for field in [
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
    ] {
        assert!(start[field].is_string(), "{field} in {start}");
    }
    assert_eq!(start["expires_in"], 2);
    assert_eq!(start["interval"], 1);
    let user_code = start["user_code"].as_str().unwrap();
    assert!(
        user_code.len() == 9
            && user_code
                .chars()
                .all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    let device_code = start["device_code"].as_str().unwrap();
    let fields = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ];
    let poll = || form(&server, "/-/v1/device/token", &fields);

    let (status, first) = poll().await;
    assert_eq!(
        (status, first["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("authorization_pending"))
    );
    let (_, second) = poll().await;
    assert_eq!(second["error"], "slow_down");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_, expired) = poll().await;
    assert_eq!(expired["error"], "expired_token");
    let (_, unknown) = form(&server, "/-/v1/device/token", &[("device_code", "nope")]).await;
    assert_eq!(unknown["error"], "expired_token");

    let page = reqwest::get(format!("{}/-/cli/auth?code={user_code}", server.url))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("unknown, expired or already used")
    );
}

#[tokio::test]
async fn page_forms_without_a_valid_csrf_token_are_refused() {
    let server = server().await;
    let (_, start) = form(&server, "/-/v1/device/authorize", &[]).await;
    let code = start["user_code"].as_str().unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/-/cli/auth/login", server.url))
        .header("cookie", "packr_csrf=attacker-nonce")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", "forged"),
                ("code", code),
                ("username", "alice"),
                ("password", "alice-password-1"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("packr_session"))
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("did not come from this site")
    );
}

#[tokio::test]
async fn an_admin_session_cookie_opens_the_admin_api() {
    let server = server().await;
    server.add_user("root", "root-password-1", "admin");
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/api/v1/admin/sessions", server.url))
        .json(&json!({ "name": "root", "password": "root-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let orgs = http
        .get(format!("{}/api/v1/admin/orgs", server.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(orgs.status(), StatusCode::OK);
    let tampered = session.replacen("packr_session=", "packr_session=9", 1);
    let refused = http
        .get(format!("{}/api/v1/admin/orgs", server.url))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let maintainer = http
        .post(format!("{}/api/v1/admin/sessions", server.url))
        .json(&json!({ "name": "alice", "password": "alice-password-1" }))
        .send()
        .await
        .unwrap();
    let alice = maintainer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let forbidden = http
        .get(format!("{}/api/v1/admin/orgs", server.url))
        .header("cookie", alice)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}
