//! The edge of the server under attack: spoofed forwarding headers, rate limits on polls and
//! logout, cross-site requests with a session cookie, a flood of Host headers, secrets in logged
//! paths and hostile request ids.

use std::num::NonZeroU32;
use std::time::Duration;

use packr::config::RateLimit;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::server::TestServer;

const ALICE_PASSWORD: &str = "alice-password-1";

fn per_minute(requests: u32) -> RateLimit {
    RateLimit::Every {
        requests: NonZeroU32::new(requests).unwrap(),
        per: Duration::from_secs(60),
    }
}

/// One request to `server`: the status and the body as JSON (`Value::Null` when it is not).
struct Send {
    request: reqwest::RequestBuilder,
}

impl Send {
    fn new(server: &TestServer, method: Method, path: &str) -> Self {
        let request = reqwest::Client::new().request(method, format!("{}{path}", server.url));
        Self { request }
    }

    fn token(mut self, token: &str) -> Self {
        self.request = self.request.bearer_auth(token);
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.request = self.request.json(&body);
        self
    }

    fn body(mut self, content_type: &str, body: &str) -> Self {
        self.request = self
            .request
            .header("content-type", content_type)
            .body(body.to_owned());
        self
    }

    async fn response(self) -> reqwest::Response {
        self.request.send().await.expect("the request is sent")
    }

    async fn status_and_body(self) -> (StatusCode, Value) {
        let response = self.response().await;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn get(server: &TestServer, path: &str) -> Send {
    Send::new(server, Method::GET, path)
}

fn post(server: &TestServer, path: &str) -> Send {
    Send::new(server, Method::POST, path)
}

/// A server with the maintainer `alice` and the admin `root`; the admin's token.
async fn server_with(tweak: impl FnOnce(&mut packr::config::Config)) -> (TestServer, String) {
    let server = TestServer::start_with(tweak).await;
    server.add_user("alice", ALICE_PASSWORD, "maintainer");
    server.add_user("root", "root-password-1", "admin");
    let admin = server.token("root", "admin", &[]);
    (server, admin)
}

/// A token of alice's usable only from `network`.
fn token_from(server: &TestServer, network: &str) -> String {
    let stdout = crate::support::server::packr(
        &server.data_dir,
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--role",
            "ci-readonly",
            "--cidr",
            network,
        ],
        None,
    );
    stdout.lines().last().unwrap_or_default().trim().to_owned()
}

/// `POST /-/v1/login` as alice with `password`, the client claiming `forwarded` in `header`.
async fn login(server: &TestServer, password: &str, header: &str, forwarded: &str) -> StatusCode {
    post(server, "/-/v1/login")
        .header(header, forwarded)
        .json(json!({ "name": "alice", "password": password }))
        .status_and_body()
        .await
        .0
}

/// The IP addresses of alice's audited logins, newest first.
async fn login_ips(server: &TestServer, admin: &str) -> Vec<String> {
    let (status, body) = get(server, "/api/v1/audit-log?action=user.login&actor=alice")
        .token(admin)
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["ip"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let (server, admin) = server_with(|config| config.login_rate_limit = per_minute(3)).await;

    // CIDR allow-list: the peer (127.0.0.1) is what counts.
    let token = token_from(&server, "10.0.0.0/8");
    let (status, body) = get(&server, "/-/whoami")
        .token(&token)
        .header("x-forwarded-for", "10.1.2.3")
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("127.0.0.1"),
        "{body}"
    );

    // Audit IP.
    assert_eq!(
        login(&server, ALICE_PASSWORD, "x-forwarded-for", "198.51.100.9").await,
        StatusCode::OK
    );
    assert_eq!(login_ips(&server, &admin).await, ["127.0.0.1"]);

    // Rate-limit key: a new forwarded address per try is still the same bucket.
    for (attempt, ip) in ["198.51.100.1", "198.51.100.2"].iter().enumerate() {
        let status = login(&server, "wrong", "x-forwarded-for", ip).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let status = login(&server, "wrong", "forwarded", "for=198.51.100.3").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn from_a_trusted_proxy_the_forwarded_client_counts_for_limits_cidr_and_audit() {
    let (server, admin) = server_with(|config| {
        config.login_rate_limit = per_minute(3);
        config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;

    let token = token_from(&server, "10.0.0.0/8");
    let whoami = |forwarded: Option<&'static str>| {
        let mut request = get(&server, "/-/whoami").token(&token);
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        async move { request.status_and_body().await.0 }
    };
    assert_eq!(whoami(Some("10.1.2.3")).await, StatusCode::OK);
    assert_eq!(whoami(Some("10.1.2.3, 127.0.0.5")).await, StatusCode::OK);
    // What the client wrote left of the proxy's entry does not count.
    assert_eq!(
        whoami(Some("10.1.2.3, 198.51.100.1")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(whoami(None).await, StatusCode::UNAUTHORIZED);

    assert_eq!(
        login(
            &server,
            ALICE_PASSWORD,
            "x-forwarded-for",
            "6.6.6.6, 198.51.100.7"
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        login(
            &server,
            ALICE_PASSWORD,
            "forwarded",
            r#"for="[2001:db8::7]:4711""#
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        login_ips(&server, &admin).await,
        ["2001:db8::7", "198.51.100.7"]
    );

    // One bucket per client address behind the proxy...
    for _ in 0..3 {
        let status = login(&server, "wrong", "x-forwarded-for", "203.0.113.1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = login(&server, "wrong", "x-forwarded-for", "203.0.113.1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let status = login(&server, "wrong", "x-forwarded-for", "203.0.113.2").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // ...and per IPv6 /64.
    for ip in ["2001:db8:0:5::1", "2001:db8:0:5::2", "2001:db8:0:5:ffff::3"] {
        let status = login(&server, "wrong", "x-forwarded-for", ip).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{ip}");
    }
    let status = login(&server, "wrong", "x-forwarded-for", "2001:db8:0:5::4").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let status = login(&server, "wrong", "x-forwarded-for", "2001:db8:0:6::1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn device_token_polls_have_a_generous_rate_limit() {
    // 1/m for logins; a terminal's polls get twelve times that.
    let (server, _) = server_with(|config| config.login_rate_limit = per_minute(1)).await;
    let poll = || {
        post(&server, "/-/v1/device/token")
            .body(
                "application/x-www-form-urlencoded",
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=bogus",
            )
            .status_and_body()
    };
    for attempt in 1..=12 {
        let (status, body) = poll().await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "poll {attempt}: {body}");
    }
    let (status, body) = poll().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
}

#[tokio::test]
async fn npm_logout_needs_the_token_it_revokes_and_is_rate_limited() {
    let (server, _) = server_with(|config| config.login_rate_limit = per_minute(4)).await;
    server.add_user("bob", "bob-password-1", "maintainer");
    let alice = server.token("alice", "maintainer", &[]);
    let alice_other = server.token("alice", "maintainer", &[]);
    let bob = server.token("bob", "maintainer", &[]);
    let whoami = |token: &str| get(&server, "/-/whoami").token(token).status_and_body();
    let logout = |path_token: &str| {
        Send::new(
            &server,
            Method::DELETE,
            &format!("/-/user/token/{path_token}"),
        )
    };

    // The path alone (read from a proxy's log, say) is not enough.
    let (status, body) = logout(&alice).status_and_body().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(whoami(&alice).await.0, StatusCode::OK);
    // Nor is someone else's token.
    let (status, body) = logout(&alice).token(&bob).status_and_body().await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(whoami(&alice).await.0, StatusCode::OK);
    // The owner's other token may.
    let (status, body) = logout(&alice).token(&alice_other).status_and_body().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(whoami(&alice).await.0, StatusCode::UNAUTHORIZED);
    // npm's own logout: the token in the path and as the bearer; done twice, it still succeeds.
    let (status, body) = logout(&alice).token(&alice).status_and_body().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The fifth try from this address within the minute is refused.
    let (status, body) = logout(&bob).token(&bob).status_and_body().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(whoami(&bob).await.0, StatusCode::OK);
}

/// Signs `root` in through the admin API: the `packr_session=…` cookie pair.
async fn admin_session(server: &TestServer) -> String {
    let response = post(server, "/api/v1/admin/sessions")
        .json(json!({ "name": "root", "password": "root-password-1" }))
        .response()
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn org_slugs(server: &TestServer, admin: &str) -> Vec<String> {
    let (status, body) = get(server, "/api/v1/admin/orgs")
        .token(admin)
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|org| org["slug"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_cross_site_form_post_with_a_session_cookie_is_refused_and_changes_nothing() {
    let (server, admin) = server_with(|_| {}).await;
    let session = admin_session(&server).await;
    let create = |slug: &str| {
        post(&server, "/api/v1/admin/orgs")
            .header("cookie", &session)
            .body("application/json", &json!({ "slug": slug }).to_string())
    };

    // An HTML form on another site: the body is crafted to parse as JSON.
    let (status, body) = post(&server, "/api/v1/admin/orgs")
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .body(
            "application/x-www-form-urlencoded",
            r#"{"slug":"evil","x":"="}"#,
        )
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "cross_site_request", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("application/json"),
        "{body}"
    );
    // `enctype="text/plain"`, and a browser that sends no Origin.
    let (status, body) = post(&server, "/api/v1/admin/orgs")
        .header("cookie", &session)
        .body("text/plain", r#"{"slug":"evil2","x":"="}"#)
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // JSON by fetch() from another site (no CORS preflight is ever granted, but still).
    let (status, body) = create("evil3")
        .header("origin", "http://evil.example")
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("http://evil.example"),
        "{body}"
    );
    let (status, body) = create("evil4")
        .header("sec-fetch-site", "cross-site")
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = Send::new(&server, Method::DELETE, "/api/v1/admin/sessions")
        .header("cookie", &session)
        .header("origin", "null")
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(org_slugs(&server, &admin).await.is_empty());

    // From the registry's own origin, and from a non-browser client, the session still works.
    let own = server.url.clone();
    let (status, body) = create("acme")
        .header("origin", &own)
        .header("sec-fetch-site", "same-origin")
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = create("beta").status_and_body().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A bearer token carries no ambient authority: its requests are not checked.
    let (status, body) = post(&server, "/api/v1/admin/orgs")
        .token(&admin)
        .header("origin", "http://evil.example")
        .json(json!({ "slug": "gamma" }))
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut slugs = org_slugs(&server, &admin).await;
    slugs.sort();
    assert_eq!(slugs, ["acme", "beta", "gamma"]);
}

#[tokio::test]
async fn a_cross_site_sign_in_is_refused_without_a_session_cookie() {
    let (server, _) = server_with(|_| {}).await;
    let credentials = json!({ "name": "root", "password": "root-password-1" }).to_string();
    let response = post(&server, "/api/v1/admin/sessions")
        .header("origin", "http://evil.example")
        .body("application/x-www-form-urlencoded", &credentials)
        .response()
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
    let response = post(&server, "/api/v1/admin/sessions")
        .header("origin", "http://evil.example")
        .body("application/json", &credentials)
        .response()
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
    let own = server.url.clone();
    let response = post(&server, "/api/v1/admin/sessions")
        .header("origin", &own)
        .body("application/json", &credentials)
        .response()
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get("set-cookie").is_some());
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in\n{status}"));
    kib * 1024
}

/// `n` bytes of text that gzip cannot shrink much (hex of chained SHA-512 digests).
fn incompressible_text(n: usize) -> String {
    use sha2::{Digest, Sha512};
    let mut text = String::with_capacity(n + 128);
    let mut digest = Sha512::digest(b"seed");
    while text.len() < n {
        text.push_str(&hex::encode(digest));
        digest = Sha512::digest(digest);
    }
    text.truncate(n);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_host_headers_does_not_grow_the_packument_cache() {
    use crate::support::publish_body::{PublishBody, tarball};
    use crate::support::serve_process::ServeProcess;
    use crate::support::server::{add_user, token};

    let data = tempfile::tempdir().unwrap();
    add_user(data.path(), "alice", ALICE_PASSWORD, "maintainer");
    let token = token(data.path(), "alice", "maintainer", &[]);
    let serve = ServeProcess::start(
        data.path(),
        "serve.log",
        &[("PACKR_CACHE_BYTES", "1048576")],
    )
    .await;

    // A package whose full packument is about 300 KiB plain and 150 KiB gzipped.
    let readme = incompressible_text(300 * 1024);
    let manifest = json!({ "name": "big", "version": "1.0.0", "readme": readme });
    let body = PublishBody::new("big", "1.0.0").with_tarball(tarball(
        "package",
        &manifest,
        &[
            ("index.js", "module.exports = 1;\n"),
            ("README.md", &readme),
        ],
    ));
    let mut document = body.json();
    document["versions"]["1.0.0"]["readme"] = json!(readme);
    let http = reqwest::Client::new();
    let published = http
        .put(serve.url("/big"))
        .bearer_auth(&token)
        .json(&document)
        .send()
        .await
        .unwrap();
    assert!(published.status().is_success(), "{}", serve.log());

    let packument_for = |host: String| {
        let request = http
            .get(serve.url("/big"))
            .bearer_auth(&token)
            .header("host", &host);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "Host: {host}");
            let body: Value = response.json().await.unwrap();
            let tarball = body["versions"]["1.0.0"]["dist"]["tarball"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(tarball, format!("http://{host}/big/-/big-1.0.0.tgz"));
            assert!(body["readme"].as_str().unwrap().len() >= 300 * 1024);
        }
    };
    for _ in 0..5 {
        packument_for("registry.example".to_owned()).await;
    }
    let before = rss_bytes(serve.pid());
    // Each made-up host would keep its own rendering (about 450 KiB): 200 of them, about 90 MiB.
    for round in 0..50 {
        let hosts = (0..4).map(|i| packument_for(format!("x{round}-{i}.example")));
        futures_util::future::join_all(hosts).await;
    }
    // The rendering for each host is still the right one.
    packument_for("registry.example".to_owned()).await;
    packument_for("x0-0.example".to_owned()).await;
    // Measured: about 114 MiB before renderings were bounded per package, about 15 MiB (allocator
    // arenas and transient renders) after.
    let grown = rss_bytes(serve.pid()).saturating_sub(before);
    assert!(
        grown < 45 * 1024 * 1024,
        "memory grew by {} MiB over 200 Host headers",
        grown / (1024 * 1024)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_in_url_paths_never_reach_the_log() {
    use crate::support::serve_process::ServeProcess;
    use crate::support::server::packr;

    let data = tempfile::tempdir().unwrap();
    packr(
        data.path(),
        &[
            "user",
            "add",
            "root",
            "--password-stdin",
            "--email",
            "r@example.com",
            "--role",
            "admin",
        ],
        Some("root-password-1"),
    );
    let tokens: Vec<String> = (0..4)
        .map(|_| {
            let stdout = packr(
                data.path(),
                &["token", "create", "--user", "root", "--role", "admin"],
                None,
            );
            stdout.lines().last().unwrap().trim().to_owned()
        })
        .collect();
    let serve = ServeProcess::start(
        data.path(),
        "serve.log",
        &[("RUST_LOG", "info,packr=debug")],
    )
    .await;
    let http = reqwest::Client::new();
    let admin = &tokens[0];
    for (path, victim) in [
        ("/-/npm/v1/tokens/token/", &tokens[1]),
        ("/api/v1/admin/tokens/", &tokens[2]),
        ("/-/user/token/", &tokens[3]),
    ] {
        let response = http
            .delete(serve.url(&format!("{path}{victim}")))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let whoami = http
            .get(serve.url("/-/whoami"))
            .bearer_auth(victim)
            .send()
            .await
            .unwrap();
        assert_eq!(
            whoami.status(),
            StatusCode::UNAUTHORIZED,
            "{path} revoked it"
        );
    }
    // The access lines are written as each response goes out; give the last one a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = serve.log();
    for prefix in [
        "/-/npm/v1/tokens/token/",
        "/api/v1/admin/tokens/",
        "/-/user/token/",
    ] {
        assert!(
            log.contains(&format!("\"path\":\"{prefix}[redacted]\"")),
            "no redacted access line for {prefix}:\n{log}"
        );
    }
    for token in &tokens[1..] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token reached the log:\n{log}");
    }
}

#[tokio::test]
async fn a_hostile_request_id_is_replaced_before_the_audit_log_and_the_response() {
    let (server, admin) = server_with(|_| {}).await;
    let login_with_id = |id: String| {
        post(&server, "/-/v1/login")
            .header("x-request-id", &id)
            .json(json!({ "name": "alice", "password": ALICE_PASSWORD }))
            .response()
    };
    let audited_ids = || async {
        let (status, body) = get(&server, "/api/v1/audit-log?action=user.login&actor=alice")
            .token(&admin)
            .status_and_body()
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"][0]["request_id"].as_str().unwrap().to_owned()
    };

    for hostile in [
        "x".repeat(8000),
        "<script>alert(1)</script>".to_owned(),
        "id\" onmouseover=\"x".to_owned(),
    ] {
        let response = login_with_id(hostile.clone()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let answered = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(answered, hostile);
        assert_eq!(answered.len(), 36, "a fresh UUID: {answered}");
        assert_eq!(audited_ids().await, answered);
    }
    // A plain id of a tracing system is kept, end to end.
    let plain = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7".to_owned();
    let response = login_with_id(plain.clone()).await;
    assert_eq!(response.headers()["x-request-id"], plain.as_str());
    assert_eq!(audited_ids().await, plain);
}

#[tokio::test]
async fn a_page_csrf_token_in_x_csrf_token_lets_a_session_change_things() {
    let (server, admin) = server_with(|_| {}).await;
    let session = admin_session(&server).await;
    // The registry's own page gives the browser a nonce cookie and the matching token.
    let (status, started) = post(&server, "/-/v1/device/authorize")
        .body("application/x-www-form-urlencoded", "client_id=test")
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let code = started["user_code"].as_str().unwrap();
    let page = get(&server, &format!("/-/cli/auth?code={code}"))
        .response()
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let nonce = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(nonce.starts_with("packr_csrf="), "{nonce}");
    let html = page.text().await.unwrap();
    let (_, rest) = html.split_once(r#"name="csrf" value=""#).unwrap();
    let token = rest.split('"').next().unwrap().to_owned();
    let cookies = format!("{session}; {nonce}");

    let (status, body) = post(&server, "/api/v1/admin/orgs")
        .header("cookie", &cookies)
        .header("x-csrf-token", "0123abcd")
        .body("text/plain", r#"{"slug":"forged"}"#)
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = post(&server, "/api/v1/admin/orgs")
        .header("cookie", &cookies)
        .header("x-csrf-token", &token)
        .body("text/plain", r#"{"slug":"acme"}"#)
        .status_and_body()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(org_slugs(&server, &admin).await, ["acme"]);
}
