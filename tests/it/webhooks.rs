//! Webhooks end to end: a real HTTP receiver on loopback checks every signature and answers as
//! told; deliveries are retried on a short schedule, logged, redelivered, and survive a SIGKILL of
//! the real `packr serve` process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::publish_body::PublishBody;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{TestServer, add_user, token};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) delivery: String,
    pub(crate) event: String,
    event_id: String,
    pub(crate) signature_ok: bool,
    user_agent: String,
    pub(crate) body: Value,
    answered: u16,
}

#[derive(Clone)]
struct Inbox {
    secret: Arc<OnceLock<String>>,
    /// Each delivery id is answered 500 this many times, then 200.
    failures: Arc<AtomicUsize>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

/// A webhook receiver on loopback; stops when dropped.
pub(crate) struct Receiver {
    pub(crate) url: String,
    inbox: Inbox,
    stop: CancellationToken,
}

impl Receiver {
    pub(crate) async fn start(failures: usize) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), failures)
    }

    fn start_on(listener: TcpListener, failures: usize) -> Self {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let inbox = Inbox {
            secret: Arc::new(OnceLock::new()),
            failures: Arc::new(AtomicUsize::new(failures)),
            hits: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        Self { url, inbox, stop }
    }

    /// Verifies signatures with `secret` from now on.
    pub(crate) fn set_secret(&self, secret: &str) {
        self.inbox.secret.set(secret.to_owned()).unwrap();
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.inbox.hits.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature_ok = inbox
        .secret
        .get()
        .is_some_and(|secret| verify(secret, &body, &header("x-packr-signature")));
    let mut hits = inbox.hits.lock().unwrap();
    let delivery = header("x-packr-delivery");
    let earlier = hits.iter().filter(|h| h.delivery == delivery).count();
    let answer = if earlier < inbox.failures.load(Ordering::SeqCst) {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::OK
    };
    hits.push(Hit {
        delivery,
        event: header("x-packr-event"),
        event_id: header("x-packr-event-id"),
        signature_ok,
        user_agent: header("user-agent"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered: answer.as_u16(),
    });
    answer
}

/// Checks `sha256=<hex HMAC-SHA256 of the body>` independently of Packr's own code.
fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(digest) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// Waits for `check` to return something, polling; panics after `limit`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Talks to a registry (in-process or a child process) over HTTP.
pub(crate) struct Client {
    url: String,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn publish(&self, token: &str, name: &str, version: &str) {
        let path = format!("/{}", name.replacen('/', "%2f", 1));
        let (status, body) = self
            .send(
                "PUT",
                &path,
                token,
                Some(&PublishBody::new(name, version).json()),
            )
            .await;
        assert!(
            status.is_success(),
            "publishing {name}@{version}: {status} {body}"
        );
    }

    /// Creates a hook; returns its id and secret.
    pub(crate) async fn create_hook(&self, admin: &str, body: Value) -> (i64, String) {
        let (status, created) = self
            .send("POST", "/api/v1/admin/webhooks", admin, Some(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        (created["id"].as_i64().unwrap(), secret)
    }

    pub(crate) async fn deliveries(&self, admin: &str, hook: i64) -> Vec<Value> {
        let path = format!("/api/v1/admin/webhooks/{hook}/deliveries");
        let (status, body) = self.send("GET", &path, admin, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["deliveries"].as_array().unwrap().clone()
    }

    /// Waits until the hook has `count` deliveries, all with `status`; returns them.
    pub(crate) async fn settled(
        &self,
        admin: &str,
        hook: i64,
        count: usize,
        status: &str,
    ) -> Vec<Value> {
        eventually(
            &format!("{count} {status} deliveries"),
            Duration::from_secs(30),
            || async {
                let list = self.deliveries(admin, hook).await;
                (list.len() == count && list.iter().all(|d| d["status"] == status)).then_some(list)
            },
        )
        .await
    }
}

fn http_statuses(delivery: &Value) -> Vec<Value> {
    delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["http_status"].clone())
        .collect()
}

/// The receivers listen on loopback, which hooks may only reach when it is allowed.
pub(crate) const LOOPBACK: &str = "127.0.0.0/8";

/// A server retrying after 300 ms, an admin token, and alice's maintainer token.
async fn registry() -> (TestServer, Client, String, String) {
    let server = TestServer::start_with(|config| {
        config.webhook_retry_schedule = vec![Duration::from_millis(300); 5];
        config.webhook_timeout = Duration::from_secs(5);
        config.webhook_allowed_networks = vec![LOOPBACK.parse().unwrap()];
    })
    .await;
    server.add_user("root", "root-pass-1", "admin");
    server.add_user("alice", "alice-pass-1", "maintainer");
    let admin = server.token("root", "admin", &[]);
    let alice = server.token("alice", "maintainer", &[]);
    let client = Client::new(&server.url);
    (server, client, admin, alice)
}

#[tokio::test]
async fn a_delivery_refused_twice_arrives_signed_on_the_third_attempt_and_every_attempt_is_logged()
{
    let (_server, client, admin, alice) = registry().await;
    let receiver = Receiver::start(2).await;
    let (hook, secret) = client
        .create_hook(
            &admin,
            json!({ "url": receiver.url, "events": ["package.published"], "user": "alice" }),
        )
        .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.set_secret(&secret);

    client.publish(&alice, "left-pad", "1.0.0").await;

    let deliveries = client.settled(&admin, hook, 1, "delivered").await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3, "{hits:#?}");
    let delivery = &deliveries[0];
    assert!(
        hits.iter().all(|h| h.delivery == delivery["id"]),
        "{hits:#?}"
    );
    assert!(
        hits.iter().all(|h| h.signature_ok),
        "a signature did not verify: {hits:#?}"
    );
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let last = &hits[2];
    assert_eq!(last.event, "package.published");
    assert_eq!(last.user_agent, "packr-webhooks");
    assert_eq!(last.event_id, delivery["event_id"].to_string());
    assert_eq!(last.body["id"], delivery["event_id"]);
    assert_eq!(last.body["event"], "package.published");
    assert_eq!(last.body["package"], "left-pad");
    assert_eq!(last.body["actor"]["name"], "alice");
    assert_eq!(last.body["data"]["version"], "1.0.0");

    assert_eq!(
        http_statuses(delivery),
        [json!(500), json!(500), json!(200)]
    );
    let numbers: Vec<&Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["attempt"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(
        delivery["attempts"][0]["error"],
        "the receiver answered 500"
    );
    assert_eq!(delivery["attempts"][2]["error"], Value::Null);
    assert_eq!(delivery["next_attempt"], Value::Null);

    let (_, listed) = client
        .send("GET", "/api/v1/admin/webhooks", &admin, None)
        .await;
    assert_eq!(listed["webhooks"][0]["id"], hook);
    assert_eq!(listed["webhooks"][0]["owner"], json!({ "user": "alice" }));
    assert!(
        !listed.to_string().contains(&secret),
        "the secret was listed: {listed}"
    );
}

#[tokio::test]
async fn a_delivery_is_failed_after_six_attempts_and_an_admin_can_redeliver_it() {
    let (server, client, admin, _alice) = registry().await;
    let receiver = Receiver::start(usize::MAX).await;
    let (hook, secret) = client
        .create_hook(
            &admin,
            json!({ "url": receiver.url, "events": ["token.created", "token.revoked"], "user": "alice" }),
        )
        .await;
    receiver.set_secret(&secret);

    // Issued by the `packr` CLI in its own process: the outbox row is written by that process.
    server.token("alice", "ci-readonly", &[]);

    let failed = client.settled(&admin, hook, 1, "failed").await;
    assert_eq!(http_statuses(&failed[0]), vec![json!(500); 6]);
    assert_eq!(receiver.hits().len(), 6);
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.signature_ok && h.event == "token.created")
    );

    receiver.inbox.failures.store(0, Ordering::SeqCst);
    let id = failed[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/webhooks/deliveries/{id}/redeliver");
    let (status, queued) = client.send("POST", &path, &admin, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "pending");

    let delivered = client.settled(&admin, hook, 1, "delivered").await;
    let mut statuses = vec![json!(500); 6];
    statuses.push(json!(200));
    assert_eq!(http_statuses(&delivered[0]), statuses);
    assert_eq!(delivered[0]["attempts"][6]["attempt"], 7);
    assert_eq!(receiver.hits().len(), 7);

    let (status, _) = client
        .send(
            "POST",
            "/api/v1/admin/webhooks/deliveries/no-such-id/redeliver",
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = client
        .send(
            "GET",
            "/api/v1/audit-log?action=webhook.redelivered",
            &admin,
            None,
        )
        .await;
    assert_eq!(audit["events"][0]["details"]["delivery_id"], id, "{audit}");
    assert_eq!(audit["events"][0]["actor"], "root");
}

#[tokio::test]
async fn an_org_hook_receives_the_events_of_packages_under_its_scope_only() {
    let (_server, client, admin, alice) = registry().await;
    let receiver = Receiver::start(0).await;
    let (status, body) = client
        .send(
            "POST",
            "/api/v1/admin/orgs",
            &admin,
            Some(&json!({ "slug": "acme" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = client
        .send(
            "POST",
            "/api/v1/admin/orgs/acme/members",
            &admin,
            Some(&json!({ "user": "alice", "role": "maintainer" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (hook, secret) = client
        .create_hook(
            &admin,
            json!({ "url": receiver.url, "events": ["package.published", "dist-tag.changed"], "org": "acme" }),
        )
        .await;
    receiver.set_secret(&secret);

    client.publish(&alice, "unscoped-thing", "1.0.0").await;
    client.publish(&alice, "@acme/widget", "1.0.0").await;

    let delivered = client.settled(&admin, hook, 1, "delivered").await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].body["package"], "@acme/widget");
    assert_eq!(hits[0].delivery, delivered[0]["id"]);
    assert!(hits[0].signature_ok);
}

#[tokio::test]
async fn webhook_changes_are_validated_and_audited() {
    let (_server, client, admin, alice) = registry().await;
    let create = |body: Value| {
        let (client, admin) = (&client, &admin);
        async move {
            client
                .send("POST", "/api/v1/admin/webhooks", admin, Some(&body))
                .await
        }
    };
    let url = "http://127.0.0.1:9/hook";
    for (body, status, mention) in [
        (
            json!({ "url": "ftp://127.0.0.1/x", "events": ["token.created"] }),
            400,
            "http://",
        ),
        (
            json!({ "url": url, "events": ["user.login"] }),
            400,
            "unknown event",
        ),
        (json!({ "url": url, "events": [] }), 400, "at least one"),
        (json!({ "url": url }), 400, "events"),
        (json!({ "events": ["token.created"] }), 400, "url"),
        (
            json!({ "url": url, "events": ["token.created"], "user": "nobody" }),
            404,
            "nobody",
        ),
        (
            json!({ "url": url, "events": ["token.created"], "org": "nope" }),
            404,
            "nope",
        ),
        (
            json!({ "url": url, "events": ["token.created"], "user": "alice", "org": "x" }),
            400,
            "not both",
        ),
    ] {
        let (got, error) = create(body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} → {error}");
        assert!(
            error["error"].as_str().unwrap().contains(mention),
            "{body} → {error}"
        );
    }
    let (status, _) = client
        .send(
            "POST",
            "/api/v1/admin/webhooks",
            &alice,
            Some(&json!({ "url": url, "events": ["token.created"] })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, created) = create(json!({ "url": url, "events": ["token.created"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["owner"], json!({ "user": "root" }));
    let id = created["id"].as_i64().unwrap();

    let path = format!("/api/v1/admin/webhooks/{id}");
    assert_eq!(
        client.send("DELETE", &path, &admin, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        client.send("DELETE", &path, &admin, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, listed) = client
        .send("GET", "/api/v1/admin/webhooks", &admin, None)
        .await;
    assert_eq!(listed["webhooks"], json!([]));

    for action in ["webhook.created", "webhook.deleted"] {
        let (_, audit) = client
            .send(
                "GET",
                &format!("/api/v1/audit-log?action={action}"),
                &admin,
                None,
            )
            .await;
        assert_eq!(audit["total"], 1, "{audit}");
        let event = &audit["events"][0];
        assert_eq!(event["actor"], "root");
        assert_eq!(event["details"]["webhook_id"], id);
        assert_eq!(event["details"]["url"], url);
        assert!(!event.to_string().contains("whsec_"), "{event}");
    }
}

/// What the restart test gives `packr serve`: quick retries, and info logs to read on failure.
const SERVE_ENV: [(&str, &str); 4] = [
    ("PACKR_WEBHOOK_RETRY_SCHEDULE", "1s,2s,2s,2s,2s"),
    ("PACKR_WEBHOOK_TIMEOUT", "2s"),
    ("PACKR_WEBHOOK_ALLOWED_NETWORKS", LOOPBACK),
    ("RUST_LOG", "info"),
];

async fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_pending_when_the_registry_is_killed_all_arrive_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    for (user, role) in [("root", "admin"), ("alice", "maintainer")] {
        add_user(dir, user, "a-long-password", role);
    }
    let (admin, alice) = (
        token(dir, "root", "admin", &[]),
        token(dir, "alice", "maintainer", &[]),
    );
    // The receiver's port is chosen now, but nothing listens on it until after the kill.
    let receiver_addr = free_port().await;

    let mut first = ServeProcess::start(dir, "serve-1.log", &SERVE_ENV).await;
    let client = Client::new(&first.url);
    let (hook, secret) = client
        .create_hook(
            &admin,
            json!({ "url": format!("http://{receiver_addr}/hook"), "events": ["package.published"], "user": "alice" }),
        )
        .await;
    let versions = ["1.0.0", "1.0.1", "1.1.0", "2.0.0", "2.0.1"];
    for version in versions {
        client.publish(&alice, "durable", version).await;
    }
    // Every delivery has been tried and refused at least once, and is waiting for a retry.
    let pending = eventually(
        "every delivery to fail once",
        Duration::from_secs(30),
        || async {
            let list = client.deliveries(&admin, hook).await;
            let tried = list.len() == versions.len()
                && list.iter().all(|d| {
                    d["status"] == "pending" && !d["attempts"].as_array().unwrap().is_empty()
                });
            tried.then_some(list)
        },
    )
    .await;
    first.kill().await;

    let receiver = Receiver::start_on(TcpListener::bind(receiver_addr).await.unwrap(), 0);
    receiver.set_secret(&secret);
    let second = ServeProcess::start(dir, "serve-2.log", &SERVE_ENV).await;
    let client = Client::new(&second.url);
    let delivered = client
        .settled(&admin, hook, versions.len(), "delivered")
        .await;

    let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
    for hit in receiver.hits() {
        assert!(hit.signature_ok, "{hit:?}");
        assert_eq!(hit.answered, 200);
        *arrived.entry(hit.delivery).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = pending
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), 1))
        .collect();
    assert_eq!(
        arrived, expected,
        "each pending delivery must arrive exactly once"
    );
    let mut published: Vec<String> = receiver
        .hits()
        .iter()
        .map(|h| h.body["data"]["version"].as_str().unwrap().to_owned())
        .collect();
    published.sort();
    assert_eq!(published, versions);
    for delivery in delivered {
        assert_eq!(
            delivery["attempts"].as_array().unwrap().last().unwrap()["http_status"],
            200
        );
    }
}
