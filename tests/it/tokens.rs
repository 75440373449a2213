//! Tokens end to end: real npm 11 `token create|list|revoke`, CIDR allow-lists (EAUTHIP), the
//! token admin API, `packr token list|revoke` through the binary, usage data, and the rate limit
//! on the login and token endpoints.

use std::num::NonZeroU32;
use std::process::Output;
use std::time::{Duration, Instant};

use packr::auth::tokens::token_hash;
use packr::config::RateLimit;
use reqwest::header::{HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::clients::ClientEnv;
use crate::support::server::{TestServer, packr_command};

const ALICE_PASSWORD: &str = "alice-password-1";

/// A server with the maintainer `alice` (password [`ALICE_PASSWORD`]) and the admin `root`, and a
/// token for each.
struct Setup {
    server: TestServer,
    alice: String,
    admin: String,
}

impl Setup {
    async fn start() -> Self {
        Self::on(TestServer::start().await)
    }

    fn on(server: TestServer) -> Self {
        server.add_user("alice", ALICE_PASSWORD, "maintainer");
        server.add_user("root", "root-password-1", "admin");
        let alice = server.token("alice", "maintainer", &[]);
        let admin = server.token("root", "admin", &[]);
        Self {
            server,
            alice,
            admin,
        }
    }

    /// Sends `method path` with `token` and an optional JSON body; the status, headers and body
    /// (`Value::Null` when it is not JSON).
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request =
            reqwest::Client::new().request(method.clone(), format!("{}{path}", self.server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn whoami(&self, token: &str) -> StatusCode {
        self.send(Method::GET, "/-/whoami", Some(token), None)
            .await
            .0
    }

    /// The admin API's entry for token `id`.
    async fn admin_entry(&self, id: &str) -> Value {
        let (status, _, body) = self
            .send(Method::GET, "/api/v1/admin/tokens", Some(&self.admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "admin token list: {body}");
        body["tokens"]
            .as_array()
            .and_then(|tokens| tokens.iter().find(|t| t["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("token {id} is not in the admin list: {body}"))
    }

    /// Polls the admin API (at most 10 s) until token `id`'s entry satisfies `done`.
    async fn admin_entry_once(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let entry = self.admin_entry(id).await;
            if done(&entry) {
                return entry;
            }
            assert!(
                Instant::now() < deadline,
                "token {id} never reached the expected state: {entry}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `jti` (token id) in a token's claims.
fn token_id(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("the payload is base64url"),
    )
    .expect("the payload is JSON");
    claims["jti"].as_str().expect("a jti claim").to_owned()
}

/// Runs `packr ARGS --data-dir <the server's>`.
fn packr(server: &TestServer, args: &[&str]) -> Output {
    packr_command(&server.data_dir, args)
        .output()
        .expect("running the packr binary")
}

fn packr_succeeds(server: &TestServer, args: &[&str]) -> String {
    let output = packr(server, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`packr {}` failed:\n{stdout}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_creates_lists_and_revokes_a_token_and_the_revoked_token_fails_at_once() {
    let setup = Setup::start().await;
    let npm = ClientEnv::new(&setup.server, Some(&setup.alice));

    npm.npm()
        .args(["token", "create", "--name", "ci", "--expires", "30"])
        .args(["--cidr", "127.0.0.1/32", "--password", "not-her-password"])
        .fails()
        .await
        .assert_mentions("E401");

    let created = npm
        .npm()
        .args(["token", "create", "--name", "ci", "--expires", "30"])
        .args(["--cidr", "127.0.0.1/32", "--password", ALICE_PASSWORD])
        .succeeds()
        .await;
    created
        .assert_mentions("with IP whitelist: 127.0.0.1/32")
        .assert_mentions("expires: ");
    let token = created
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Created token "))
        .unwrap_or_else(|| panic!("npm printed no token\n{created}"))
        .trim()
        .to_owned();
    let id = token_id(&token);

    let listed = npm.npm().args(["token", "list"]).succeeds().await;
    listed
        .assert_mentions("name ci created")
        .assert_mentions("with IP whitelist: 127.0.0.1/32")
        .assert_does_not_mention(&token);
    let listed = npm.npm().args(["token", "list", "--json"]).succeeds().await;
    let tokens: Value = serde_json::from_str(&listed.stdout)
        .unwrap_or_else(|err| panic!("npm token list --json printed no JSON ({err})\n{listed}"));
    let entry = tokens
        .as_array()
        .and_then(|tokens| tokens.iter().find(|t| t["name"] == "ci"))
        .unwrap_or_else(|| panic!("the new token is not listed\n{listed}"));
    assert_eq!(entry["key"], id.as_str(), "{entry}");
    assert_eq!(entry["readonly"], false, "{entry}");
    assert!(entry["expires"].is_string(), "{entry}");
    let short_id = entry["id"]
        .as_str()
        .expect("npm adds the short id")
        .to_owned();
    assert!(short_id.len() >= 6 && id.starts_with(&short_id), "{entry}");

    let ci = ClientEnv::new(&setup.server, Some(&token));
    let whoami = ci.npm().arg("whoami").succeeds().await;
    assert_eq!(whoami.stdout.trim(), "alice", "{whoami}");
    assert_eq!(setup.admin_entry(&id).await["role"], "maintainer");

    npm.npm()
        .args(["token", "revoke", &short_id])
        .succeeds()
        .await
        .assert_mentions("Removed 1 token");
    ci.npm().arg("whoami").fails().await.assert_mentions("E401");
    let listed = npm.npm().args(["token", "list"]).succeeds().await;
    listed.assert_does_not_mention("name ci ");

    let (status, _, log) = setup
        .send(
            Method::GET,
            "/api/v1/audit-log?actor=alice",
            Some(&setup.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let actions: Vec<&str> = log["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["details"]["token_id"] == id.as_str())
                .filter_map(|e| e["action"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(actions, ["token.revoked", "token.created"], "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_limited_to_another_network_is_refused_with_eauthip() {
    let setup = Setup::start().await;
    let stdout = packr_succeeds(
        &setup.server,
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--role",
            "ci-readonly",
            "--cidr",
            "10.0.0.0/8",
            "--cidr",
            "2001:db8::/32",
        ],
    );
    let token = stdout.lines().last().unwrap_or_default().trim().to_owned();

    let (status, headers, body) = setup
        .send(Method::GET, "/-/whoami", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let challenge = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(challenge.contains("ipaddress"), "{challenge}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "{body}"
    );

    let npm = ClientEnv::new(&setup.server, Some(&token));
    npm.npm()
        .arg("whoami")
        .fails()
        .await
        .assert_mentions("EAUTHIP")
        .assert_mentions("Login is not allowed from your IP address");
    // The check applies on every use, not only when the token is first looked up.
    assert_eq!(setup.whoami(&token).await, StatusCode::UNAUTHORIZED);

    let entry = setup.admin_entry(&token_id(&token)).await;
    assert_eq!(
        entry["cidr"],
        json!(["10.0.0.0/8", "2001:db8::/32"]),
        "{entry}"
    );
    assert_eq!(
        entry["use_count"], 0,
        "refused uses are not counted: {entry}"
    );
}

#[tokio::test]
async fn the_npm_token_endpoints_page_take_npm_10_bodies_and_revoke_by_key_prefix_or_token() {
    let setup = Setup::start().await;
    let create = |body: Value| {
        setup.send(
            Method::POST,
            "/-/npm/v1/tokens",
            Some(&setup.alice),
            Some(body),
        )
    };

    // npm 10: password, readonly and an empty CIDR list, always.
    let (status, _, readonly) = create(json!({
        "password": ALICE_PASSWORD, "readonly": true, "cidr_whitelist": []
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{readonly}");
    assert_eq!(readonly["readonly"], true, "{readonly}");
    assert_eq!(readonly["cidr_whitelist"], Value::Null, "{readonly}");
    let readonly_token = readonly["token"].as_str().unwrap().to_owned();
    assert_eq!(readonly["key"], token_id(&readonly_token).as_str());
    assert_eq!(
        setup.admin_entry(&token_id(&readonly_token)).await["role"],
        "ci-readonly"
    );

    // npm 11 with a scope and read-write permission: a scoped publish token.
    let (status, _, scoped) = create(json!({
        "name": "acme", "password": ALICE_PASSWORD, "scopes": ["acme"],
        "packages_and_scopes_permission": "read-write"
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{scoped}");
    let scoped_entry = setup.admin_entry(scoped["key"].as_str().unwrap()).await;
    assert_eq!(scoped_entry["role"], "ci-publish", "{scoped_entry}");
    assert_eq!(scoped_entry["scopes"], json!(["@acme"]), "{scoped_entry}");

    let (status, _, refused) =
        create(json!({ "password": ALICE_PASSWORD, "cidr_whitelist": ["10.0.0.0/33"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, _, refused) =
        create(json!({ "password": ALICE_PASSWORD, "packages": ["left-pad"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    // alice now holds three live tokens: the setup's and the two above. Pages of two.
    let (status, _, first) = setup
        .send(
            Method::GET,
            "/-/npm/v1/tokens?perPage=2",
            Some(&setup.alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["total"], 3, "{first}");
    assert_eq!(
        first["objects"].as_array().map(Vec::len),
        Some(2),
        "{first}"
    );
    let next = first["urls"]["next"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let path = next
        .strip_prefix(&setup.server.url)
        .expect("an absolute next URL");
    let (_, _, second) = setup
        .send(Method::GET, path, Some(&setup.alice), None)
        .await;
    assert_eq!(
        second["objects"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert_eq!(second["urls"], json!({}), "{second}");
    let listed = format!("{first}{second}");
    assert!(
        !listed.contains(&readonly_token) && !listed.contains(&setup.alice),
        "{listed}"
    );

    // Another user's token cannot be revoked here, by id or by value.
    let other = setup.server.token("root", "ci-readonly", &[]);
    for key in [token_id(&other), other.clone()] {
        let path = format!("/-/npm/v1/tokens/token/{key}");
        let (status, _, body) = setup
            .send(Method::DELETE, &path, Some(&setup.alice), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    assert_eq!(setup.whoami(&other).await, StatusCode::OK);

    // Revoke by a 6-character key prefix, and by the raw token.
    let prefix = &token_id(&readonly_token)[..6];
    let path = format!("/-/npm/v1/tokens/token/{prefix}");
    let (status, _, _) = setup
        .send(Method::DELETE, &path, Some(&setup.alice), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        setup.whoami(&readonly_token).await,
        StatusCode::UNAUTHORIZED
    );
    let scoped_token = scoped["token"].as_str().unwrap();
    let path = format!("/-/npm/v1/tokens/token/{scoped_token}");
    let (status, _, _) = setup
        .send(Method::DELETE, &path, Some(&setup.alice), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(setup.whoami(scoped_token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_api_creates_lists_and_revokes_tokens_without_showing_secrets() {
    let setup = Setup::start().await;
    let (status, _, created) = setup
        .send(
            Method::POST,
            "/api/v1/admin/tokens",
            Some(&setup.admin),
            Some(json!({
                "user": "alice", "role": "ci-publish", "scopes": ["@acme"], "expires": "30d",
                "name": "deploy", "cidr": ["127.0.0.0/8"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"]
        .as_str()
        .expect("the token, once")
        .to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id, token_id(&token));
    assert_eq!(setup.whoami(&token).await, StatusCode::OK);

    let (status, _, list) = setup
        .send(
            Method::GET,
            "/api/v1/admin/tokens?user=alice",
            Some(&setup.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let text = list.to_string();
    for secret in [
        &token,
        &token_hash(&token),
        &setup.alice,
        &token_hash(&setup.alice),
    ] {
        assert!(
            !text.contains(secret.as_str()),
            "the list shows a secret: {text}"
        );
    }
    let entries = list["tokens"].as_array().unwrap();
    assert!(entries.iter().all(|t| t["user"] == "alice"), "{list}");
    let entry = entries
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("listed");
    assert_eq!(entry["role"], "ci-publish");
    assert_eq!(entry["scopes"], json!(["@acme"]));
    assert_eq!(entry["name"], "deploy");
    assert_eq!(entry["cidr"], json!(["127.0.0.0/8"]));
    assert_eq!(entry["revoked"], false);
    assert!(
        entry["expires"].is_string() && entry["created"].is_string(),
        "{entry}"
    );
    assert!(
        entry.get("token").is_none() && entry.get("token_hash").is_none(),
        "{entry}"
    );

    for (body, wanted) in [
        (
            json!({ "user": "alice", "role": "admin" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "user": "nobody", "role": "ci-readonly" }),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({ "user": "alice", "role": "ci-readonly", "cidr": ["nowhere"] }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "user": "alice", "role": "ci-readonly", "expires": "soon" }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, _, answer) = setup
            .send(
                Method::POST,
                "/api/v1/admin/tokens",
                Some(&setup.admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, wanted, "{body} → {answer}");
    }
    let (status, _, _) = setup
        .send(
            Method::GET,
            "/api/v1/admin/tokens",
            Some(&setup.alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let path = format!("/api/v1/admin/tokens/{id}");
    let (status, _, body) = setup
        .send(Method::DELETE, &path, Some(&setup.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(setup.whoami(&token).await, StatusCode::UNAUTHORIZED);
    let entry = setup.admin_entry(&id).await;
    assert_eq!(entry["revoked"], true, "{entry}");
    let (status, _, body) = setup
        .send(
            Method::DELETE,
            "/api/v1/admin/tokens/ffffffffffff",
            Some(&setup.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn packr_token_list_and_revoke_work_on_the_data_directory() {
    let setup = Setup::start().await;
    let stdout = packr_succeeds(
        &setup.server,
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--role",
            "ci-publish",
            "--name",
            "from-cli",
            "--cidr",
            "127.0.0.1",
        ],
    );
    let token = stdout.lines().last().unwrap_or_default().trim().to_owned();
    let id = token_id(&token);
    assert_eq!(setup.whoami(&token).await, StatusCode::OK);

    let table = packr_succeeds(&setup.server, &["token", "list", "--user", "alice"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("LAST USED"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_else(|| panic!("token {id} is not listed:\n{table}"));
    assert!(
        row.contains("from-cli") && row.contains("127.0.0.1/32"),
        "{row}"
    );
    assert!(
        !table.contains("root"),
        "--user alice lists only alice's tokens:\n{table}"
    );
    for secret in [&token, &token_hash(&token), &setup.alice] {
        assert!(
            !table.contains(secret.as_str()),
            "the table shows a secret:\n{table}"
        );
    }

    let revoked = packr_succeeds(&setup.server, &["token", "revoke", &id[..8]]);
    assert!(revoked.contains(&id), "{revoked}");
    // The server trusts a token it checked for up to 10 s; another process's revocation takes
    // effect within that.
    let deadline = Instant::now() + Duration::from_secs(15);
    while setup.whoami(&token).await != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "the revoked token still works after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let table = packr_succeeds(&setup.server, &["token", "list"]);
    assert!(
        !table.contains(&id),
        "a revoked token is listed without --all:\n{table}"
    );
    let table = packr_succeeds(&setup.server, &["token", "list", "--all"]);
    let row = table
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_default();
    assert!(row.ends_with("revoked"), "{table}");

    let unknown = packr(&setup.server, &["token", "revoke", "abcdef0123"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no token"));
}

#[tokio::test]
async fn token_use_count_and_last_use_grow_with_use() {
    let setup = Setup::start().await;
    let id = token_id(&setup.alice);
    for _ in 0..3 {
        assert_eq!(setup.whoami(&setup.alice).await, StatusCode::OK);
    }
    let first = setup
        .admin_entry_once(&id, |entry| entry["use_count"].as_i64() >= Some(3))
        .await;
    let first_use = first["last_used_at"]
        .as_str()
        .expect("a last use")
        .to_owned();

    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..2 {
        assert_eq!(setup.whoami(&setup.alice).await, StatusCode::OK);
    }
    let second = setup
        .admin_entry_once(&id, |entry| entry["use_count"].as_i64() >= Some(5))
        .await;
    let second_use = second["last_used_at"].as_str().expect("a last use");
    assert!(
        second_use > first_use.as_str(),
        "{first_use} then {second_use}"
    );
}

#[tokio::test]
async fn usage_counted_since_the_last_flush_is_written_when_the_server_stops() {
    let server = TestServer::start_with(|config| {
        config.token_usage_flush = Duration::from_secs(3600);
    })
    .await;
    let mut setup = Setup::on(server);
    let id = token_id(&setup.alice);
    for _ in 0..4 {
        assert_eq!(setup.whoami(&setup.alice).await, StatusCode::OK);
    }
    setup.server.restart().await;
    let entry = setup.admin_entry(&id).await;
    assert_eq!(entry["use_count"], 4, "{entry}");
    assert!(entry["last_used_at"].is_string(), "{entry}");
}

#[tokio::test]
async fn the_login_rate_limit_answers_429_with_retry_after_per_address() {
    let server = TestServer::start_with(|config| {
        config.login_rate_limit = RateLimit::Every {
            requests: NonZeroU32::new(3).unwrap(),
            per: Duration::from_secs(60),
        };
    })
    .await;
    let setup = Setup::on(server);
    let wrong = json!({ "name": "alice", "password": "wrong" });
    for attempt in 1..=3 {
        let (status, _, body) = setup
            .send(Method::POST, "/-/v1/login", None, Some(wrong.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {body}"
        );
    }
    let (status, headers, body) = setup
        .send(Method::POST, "/-/v1/login", None, Some(wrong.clone()))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry_after: u64 = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric Retry-After: {headers:?}"));
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(body["status"], 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(body["error"].is_string(), "{body}");

    // The legacy login shares the password bucket, even with the right password.
    let (status, _, body) = setup
        .send(
            Method::PUT,
            "/-/user/org.couchdb.user:alice",
            None,
            Some(json!({ "name": "alice", "password": ALICE_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Other requests, and the token listing's own bucket, are not affected.
    assert_eq!(setup.whoami(&setup.alice).await, StatusCode::OK);
    let (status, _, body) = setup
        .send(Method::GET, "/-/npm/v1/tokens", Some(&setup.alice), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // npm itself reports the 429.
    let npm = ClientEnv::new(&setup.server, Some(&setup.alice));
    npm.npm()
        .args([
            "token",
            "create",
            "--name",
            "x",
            "--password",
            ALICE_PASSWORD,
        ])
        .fails()
        .await
        .assert_mentions("429");
}
