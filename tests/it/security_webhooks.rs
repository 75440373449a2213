//! Webhook targets (issue 9, item 14) and the hooks a whole-package unpublish reaches.
//!
//! Nothing here may send a packet off loopback even if Packr were broken: the refused literal
//! addresses subscribe to an event these tests never cause, so no delivery is ever due to them,
//! and the DNS test uses `localhost`, which resolves to loopback.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::clients::ClientEnv;
use crate::support::fixtures::Package;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{TestServer, add_user, token};
use crate::webhooks::{Client, LOOPBACK, Receiver};

/// The stored error of an attempt the target policy refused.
const REFUSED: &str = "refused: the hook's host is a loopback, private, link-local or other internal address; PACKR_WEBHOOK_ALLOWED_NETWORKS can allow its network";

/// A server with one attempt per delivery and `allowed` networks open, an admin token and
/// alice's maintainer token.
async fn registry(allowed: &[&str]) -> (TestServer, Client, String, String) {
    let allowed: Vec<ipnet::IpNet> = allowed.iter().map(|n| n.parse().unwrap()).collect();
    let server = TestServer::start_with(|config| {
        config.webhook_retry_schedule = Vec::new();
        config.webhook_timeout = Duration::from_secs(5);
        config.webhook_allowed_networks = allowed;
    })
    .await;
    server.add_user("root", "root-pass-1", "admin");
    server.add_user("alice", "alice-pass-1", "maintainer");
    let admin = server.token("root", "admin", &[]);
    let alice = server.token("alice", "maintainer", &[]);
    let client = Client::new(&server.url);
    (server, client, admin, alice)
}

/// The only attempt of the hook's only delivery, once it has settled as `status`.
async fn only_attempt(client: &Client, admin: &str, hook: i64, status: &str) -> Value {
    let settled = client.settled(admin, hook, 1, status).await;
    let attempts = settled[0]["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 1, "{settled:#?}");
    attempts[0].clone()
}

#[tokio::test]
async fn hooks_to_the_metadata_address_and_other_internal_literals_are_refused_at_creation() {
    let (_server, client, admin, _alice) = registry(&[]).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://127.0.0.1:9/hook",
        "http://127.1.2.3/hook",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]:9/hook",
        "http://10.0.0.1/hook",
        "https://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:9/hook",
        "http://[::]:9/hook",
        "http://224.0.0.1/hook",
        "http://255.255.255.255/hook",
        "http://[fe80::1]/hook",
        "http://[ff02::1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        // Shorthand forms the system resolver reads as numbers.
        "http://2852039166/latest/meta-data/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://127.1:9/hook",
        "http://2130706433:9/hook",
    ] {
        // token.revoked: never caused here, so even a wrongly accepted hook gets no delivery.
        let body = json!({ "url": url, "events": ["token.revoked"] });
        let (status, error) = client
            .send("POST", "/api/v1/admin/webhooks", &admin, Some(&body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url} → {error}");
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains("PACKR_WEBHOOK_ALLOWED_NETWORKS") && message.contains(url),
            "{url} → {message}"
        );
    }
    let (_, error) = client
        .send(
            "POST",
            "/api/v1/admin/webhooks",
            &admin,
            Some(&json!({ "url": "http://169.254.169.254/", "events": ["token.revoked"] })),
        )
        .await;
    assert!(
        error["error"].as_str().unwrap().contains("link-local"),
        "{error}"
    );
    let (_, listed) = client
        .send("GET", "/api/v1/admin/webhooks", &admin, None)
        .await;
    assert_eq!(listed["webhooks"], json!([]), "{listed}");
}

#[tokio::test]
async fn loopback_is_refused_by_default_and_opened_by_the_allowed_networks() {
    let body = json!({ "url": "http://127.0.0.1:9/hook", "events": ["token.revoked"] });
    let (_server, client, admin, _alice) = registry(&[]).await;
    let (status, error) = client
        .send("POST", "/api/v1/admin/webhooks", &admin, Some(&body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("a loopback address"),
        "{error}"
    );

    let (_server, client, admin, _alice) = registry(&[LOOPBACK]).await;
    let (status, created) = client
        .send("POST", "/api/v1/admin/webhooks", &admin, Some(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // The allow-list opens only what it lists.
    let other = json!({ "url": "http://169.254.169.254/", "events": ["token.revoked"] });
    let (status, _) = client
        .send("POST", "/api/v1/admin/webhooks", &admin, Some(&other))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_refused_at_delivery_with_a_generic_error() {
    let (_server, client, admin, alice) = registry(&[]).await;
    let receiver = Receiver::start(0).await;
    let port = receiver.url.split(':').nth(2).unwrap().to_owned();
    let url = format!("http://localhost:{port}");
    // A name is accepted at creation: what it resolves to is checked when a delivery is sent.
    let (hook, _secret) = client
        .create_hook(
            &admin,
            json!({ "url": url, "events": ["package.published"], "user": "alice" }),
        )
        .await;

    client.publish(&alice, "rebind-me", "1.0.0").await;

    let attempt = only_attempt(&client, &admin, hook, "failed").await;
    assert_eq!(attempt["error"], REFUSED, "{attempt}");
    assert_eq!(attempt["http_status"], Value::Null);
    for leak in ["127.0.0.1", "::1", "os error", "Connection"] {
        assert!(!attempt.to_string().contains(leak), "{leak} in {attempt}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        receiver.hits().is_empty(),
        "the refused receiver was contacted"
    );
}

#[tokio::test]
async fn a_host_name_resolving_into_an_allowed_network_is_delivered() {
    let (_server, client, admin, alice) = registry(&[LOOPBACK]).await;
    let receiver = Receiver::start(0).await;
    let port = receiver.url.split(':').nth(2).unwrap().to_owned();
    let (hook, secret) = client
        .create_hook(
            &admin,
            json!({ "url": format!("http://localhost:{port}"), "events": ["package.published"], "user": "alice" }),
        )
        .await;
    receiver.set_secret(&secret);

    client.publish(&alice, "allowed-here", "1.0.0").await;

    let attempt = only_attempt(&client, &admin, hook, "delivered").await;
    assert_eq!(attempt["http_status"], 200, "{attempt}");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert!(hits[0].signature_ok);
    assert_eq!(hits[0].body["package"], "allowed-here");
}

#[tokio::test]
async fn attempt_errors_name_no_address_and_quote_no_os_error() {
    let (_server, client, admin, alice) = registry(&[LOOPBACK]).await;
    // A port nobody listens on: reserved, then released.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/hook");
    let (hook, _) = client
        .create_hook(
            &admin,
            json!({ "url": url, "events": ["package.published"], "user": "alice" }),
        )
        .await;

    client.publish(&alice, "nobody-listens", "1.0.0").await;

    let attempt = only_attempt(&client, &admin, hook, "failed").await;
    assert_eq!(
        attempt["error"], "could not connect to the receiver",
        "{attempt}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_literal_address_allowed_when_the_hook_was_made_is_not_contacted_once_refused() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    for (user, role) in [("root", "admin"), ("alice", "maintainer")] {
        add_user(dir, user, "a-long-password", role);
    }
    let (admin, alice) = (
        token(dir, "root", "admin", &[]),
        token(dir, "alice", "maintainer", &[]),
    );
    let receiver = Receiver::start(0).await;

    let allowed = [
        ("PACKR_WEBHOOK_ALLOWED_NETWORKS", LOOPBACK),
        ("PACKR_WEBHOOK_RETRY_SCHEDULE", "1s"),
    ];
    let mut first = ServeProcess::start(dir, "serve-allowed.log", &allowed).await;
    let (hook, _) = Client::new(&first.url)
        .create_hook(
            &admin,
            json!({ "url": receiver.url, "events": ["package.published"], "user": "alice" }),
        )
        .await;
    first.kill().await;

    // The operator closes loopback again; the stored hook must not reach it any more.
    let closed = [("PACKR_WEBHOOK_RETRY_SCHEDULE", "1s")];
    let second = ServeProcess::start(dir, "serve-closed.log", &closed).await;
    let client = Client::new(&second.url);
    client.publish(&alice, "closed-again", "1.0.0").await;

    let failed = client.settled(&admin, hook, 1, "failed").await;
    let attempts = failed[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{failed:#?}");
    assert!(
        attempts.iter().all(|a| a["error"] == REFUSED),
        "{failed:#?}"
    );
    assert!(receiver.hits().is_empty(), "{:#?}", receiver.hits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_unpublish_force_notifies_the_hooks_of_every_maintainer() {
    let (server, client, admin, alice) = registry(&[LOOPBACK]).await;
    server.add_user("bob", "bob-pass-1", "maintainer");
    let receiver = Receiver::start(0).await;
    // Bob's hook: he maintains the package but does not unpublish it himself.
    let (hook, secret) = client
        .create_hook(
            &admin,
            json!({ "url": receiver.url, "events": ["package.unpublished"], "user": "bob" }),
        )
        .await;
    receiver.set_secret(&secret);

    let npm = ClientEnv::new(&server, Some(&alice));
    let dir = npm.package(&Package::new("shared-pad", "1.0.0"));
    npm.npm().arg("publish").current_dir(dir).succeeds().await;
    npm.npm()
        .args(["owner", "add", "bob", "shared-pad"])
        .succeeds()
        .await;
    npm.npm()
        .args(["unpublish", "shared-pad", "--force"])
        .succeeds()
        .await
        .assert_mentions("- shared-pad");

    let delivered = client.settled(&admin, hook, 1, "delivered").await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert!(hits[0].signature_ok);
    assert_eq!(hits[0].event, "package.unpublished");
    assert_eq!(hits[0].delivery, delivered[0]["id"]);
    assert_eq!(hits[0].body["package"], "shared-pad");
    assert_eq!(hits[0].body["actor"]["name"], "alice");
    assert_eq!(hits[0].body["data"]["whole_package"], true);
}
