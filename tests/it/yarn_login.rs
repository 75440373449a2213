//! `yarn npm login` (yarn 4) against Packr: the legacy password login and the web login, the latter
//! approved in real headless Chromium.

use std::time::Duration;

use crate::support::clients::ClientEnv;
use crate::support::server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn4_npm_login_with_a_password_stores_a_working_token() {
    let server = TestServer::start_with(|config| {
        config.login.device_poll_interval = Duration::from_secs(1);
    })
    .await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let env = ClientEnv::new(&server, None);
    env.yarn4()
        .args(["npm", "login"])
        .answering(&[("Username", "alice"), ("Password", "alice-password-1")])
        .succeeds()
        .await
        .assert_mentions("Successfully logged in");
    let yarnrc = std::fs::read_to_string(env.home().join(".yarnrc.yml")).unwrap();
    assert!(
        yarnrc.contains("npmAuthToken"),
        "yarn saved the token:\n{yarnrc}"
    );
    env.yarn4()
        .args(["npm", "whoami"])
        .succeeds()
        .await
        .assert_mentions("alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn4_npm_login_on_the_web_completes_when_the_browser_approves() {
    use tokio::io::AsyncWriteExt;

    let server = TestServer::start_with(|config| {
        config.login.device_poll_interval = Duration::from_secs(1);
    })
    .await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let env = ClientEnv::new(&server, None);
    // yarn asks on a terminal whether to open a browser; `script` gives it one, and "n" makes it
    // print the URL instead.
    let yarn = format!(
        "node {} npm login --web-login",
        crate::support::clients::yarn4().display()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qfec", &yarn, "/dev/null"])
        .env("HOME", env.home())
        .env("YARN_IGNORE_PATH", "1")
        .env("YARN_ENABLE_TELEMETRY", "0")
        .env("YARN_ENABLE_COLORS", "0")
        .env("NO_COLOR", "1")
        .current_dir(env.project())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("yarn starts under script");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let answer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stdin
            .write_all(b"n\n")
            .await
            .expect("answering yarn's prompt");
        // Keep the terminal open until yarn is done.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stdin);
    });
    let (url, rest) = crate::web_login::login_url(&mut child).await;
    let url: String = url.chars().take_while(|c| !c.is_control()).collect();
    let confirmation = crate::support::browser::confirm_login(
        &url,
        "alice",
        "alice-password-1",
        true,
        &crate::web_login::screenshot("yarn-web-login.png"),
    )
    .await;
    assert!(confirmation.result.contains("alice"), "{confirmation:?}");
    let output = crate::web_login::finished(child).await;
    answer.abort();
    let printed = rest.await.unwrap();
    assert!(
        output.status.success(),
        "yarn npm login --web-login:\n{printed}"
    );
    assert!(printed.contains("Successfully logged in"), "{printed}");
    env.yarn4()
        .args(["npm", "whoami"])
        .succeeds()
        .await
        .assert_mentions("alice");
}
