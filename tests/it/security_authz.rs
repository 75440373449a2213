//! The permission model under attack (issue 9, items 1-3): a scope on a token only narrows what its
//! user may do, org administration needs a non-CI token covering the org, restricted org packages
//! are invisible to strangers, team grants read and write, and non-org scopes have owners.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clients::{ClientEnv, ClientOutput};
use crate::support::fixtures::Package;
use crate::support::publish_body::PublishBody;
use crate::support::server::{TestServer, package_path, packr};

const ALICE_PASSWORD: &str = "alice-password-1";
const BOB_PASSWORD: &str = "bob-password-1";

/// A registry with an admin (`root`), two maintainers (`alice`, `bob`) and the org `acme`.
struct Registry {
    server: TestServer,
    admin: String,
    alice: String,
    bob: String,
    http: reqwest::Client,
}

impl Registry {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut packr::config::Config)) -> Self {
        let server = TestServer::start_with(tweak).await;
        server.add_user("root", "root-password-1", "admin");
        server.add_user("alice", ALICE_PASSWORD, "maintainer");
        server.add_user("bob", BOB_PASSWORD, "maintainer");
        let registry = Self {
            admin: server.token("root", "admin", &[]),
            alice: server.token("alice", "maintainer", &[]),
            bob: server.token("bob", "maintainer", &[]),
            server,
            http: reqwest::Client::new(),
        };
        registry.create_org("acme").await;
        registry
    }

    /// Creates an org (admin API, as the registry admin).
    async fn create_org(&self, slug: &str) {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/admin/orgs",
                Some(&self.admin),
                json!({ "slug": slug, "display_name": slug }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.server.get_json(path, token).await
    }

    /// Makes `user` a member of acme with `role` (admin API, as the registry admin).
    async fn set_member(&self, user: &str, role: &str) {
        self.set_member_of("acme", user, role).await;
    }

    /// Makes `user` a member of `org` with `role` (admin API, as the registry admin).
    async fn set_member_of(&self, org: &str, user: &str, role: &str) {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/admin/orgs/{org}/members"),
                Some(&self.admin),
                json!({ "user": user, "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    fn npm_as(&self, token: &str) -> ClientEnv {
        ClientEnv::new(&self.server, Some(token))
    }

    async fn publish(
        &self,
        token: &str,
        name: &str,
        version: &str,
        extra: &[&str],
    ) -> ClientOutput {
        let npm = self.npm_as(token);
        let dir = npm.package(&Package::new(name, version));
        npm.npm()
            .arg("publish")
            .args(extra)
            .current_dir(dir)
            .run()
            .await
    }

    /// Publishes over raw HTTP as `npm publish` would; the status and error body.
    async fn put(&self, token: &str, name: &str, version: &str) -> (StatusCode, Value) {
        let body = PublishBody::new(name, version).json();
        self.send(reqwest::Method::PUT, &package_path(name), Some(token), body)
            .await
    }

    async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/api/v1/audit-log?{query}"), Some(&self.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().unwrap().clone()
    }
}

fn created_token(output: &ClientOutput) -> String {
    output
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Created token "))
        .unwrap_or_else(|| panic!("npm printed no token\n{output}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_to_an_org_writes_only_while_its_user_may() {
    let registry = Registry::start().await;

    // alice is not in acme: npm token create --scopes @acme is refused, naming the scope.
    let alice_npm = registry.npm_as(&registry.alice);
    alice_npm
        .npm()
        .args(["token", "create", "--name", "sneaky", "--scopes", "@acme"])
        .args(["--password", ALICE_PASSWORD])
        .fails()
        .await
        .assert_mentions("cannot write under @acme");
    let (status, body) = registry
        .send(
            reqwest::Method::POST,
            "/-/npm/v1/tokens",
            Some(&registry.alice),
            json!({ "password": ALICE_PASSWORD, "scopes": ["@acme"],
                    "packages_and_scopes_permission": "read-write" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("@acme"), "{body}");

    // As a developer of acme she may mint one, and it publishes.
    registry.set_member("alice", "maintainer").await;
    let created = alice_npm
        .npm()
        .args(["token", "create", "--name", "release", "--scopes", "@acme"])
        .args(["--packages-and-scopes-permission", "read-write"])
        .args(["--password", ALICE_PASSWORD])
        .succeeds()
        .await;
    let scoped = created_token(&created);
    registry
        .publish(&scoped, "@acme/widget", "1.0.0", &[])
        .await
        .assert_mentions("+ @acme/widget@1.0.0");

    // Membership is checked at use: once she is removed, the same token no longer writes there.
    let (status, body) = registry
        .send(
            reqwest::Method::DELETE,
            "/api/v1/admin/orgs/acme/members",
            Some(&registry.admin),
            json!({ "user": "alice" }),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let refused = registry
        .publish(&scoped, "@acme/widget", "1.0.1", &[])
        .await;
    assert!(!refused.status.success(), "{refused}");
    refused.assert_mentions("not a member");
    let (status, body) = registry
        .send(
            reqwest::Method::PUT,
            "/-/package/@acme%2fwidget/dist-tags/next",
            Some(&scoped),
            json!("1.0.0"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let tags = registry
        .get("/-/package/@acme%2fwidget/dist-tags", Some(&registry.admin))
        .await
        .1;
    assert_eq!(tags, json!({ "latest": "1.0.0" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_from_the_operator_writes_its_org_scope_and_says_who_issued_it() {
    let registry = Registry::start().await;
    registry
        .server
        .add_user("release-bot", "bot-password-123", "maintainer");
    let service = registry
        .server
        .token("release-bot", "ci-publish", &["@acme"]);
    let (status, body) = registry.put(&service, "@acme/engine", "1.0.0").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The scope still narrows: the service token writes nowhere else.
    let (status, _) = registry.put(&service, "engine", "1.0.0").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let listing = packr(
        &registry.server.data_dir,
        &["token", "list", "--user", "release-bot"],
        None,
    );
    let header = listing.lines().next().unwrap();
    let row = listing
        .lines()
        .find(|line| line.contains("@acme"))
        .unwrap_or_else(|| panic!("no @acme token listed:\n{listing}"));
    let column = header.find("ISSUED BY").expect("an ISSUED BY column");
    assert!(row[column..].starts_with("operator"), "{listing}");

    let events = registry.audit("action=token.created").await;
    assert!(
        events
            .iter()
            .any(|e| e["details"]["issued_by"] == "operator"
                && e["details"]["scopes"] == json!(["@acme"])),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_refuses_a_scope_the_approving_user_cannot_write() {
    let registry = Registry::start().await;
    // The login answers with a redirect that carries the session cookie: it must not be followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |path: &str, fields: &[(&str, &str)], cookie: Option<&str>| {
        let mut request = http
            .post(format!("{}{path}", registry.server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", registry.server.url.as_str())
            .body(serde_urlencoded::to_string(fields).unwrap());
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let start: Value = form(
        "/-/v1/device/authorize",
        &[("client_id", "attacker"), ("scope", "ci-publish @acme")],
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let code = start["user_code"].as_str().unwrap();
    let page = registry
        .http
        .get(start["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let nonce = cookie_pair(&page, "packr_csrf");
    let html = page.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf");
    let login = form(
        &path_of(start["verification_uri"].as_str().unwrap(), "/login"),
        &[
            ("csrf", &csrf),
            ("code", code),
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
        ],
        Some(&nonce),
    )
    .await
    .unwrap();
    let session = cookie_pair(&login, "packr_session");
    let cookies = format!("{nonce}; {session}");
    let decided = form(
        &path_of(start["verification_uri"].as_str().unwrap(), "/decide"),
        &[("csrf", &csrf), ("code", code), ("decision", "approve")],
        Some(&cookies),
    )
    .await
    .unwrap();
    let html = decided.text().await.unwrap();
    assert!(html.contains("cannot write under @acme"), "{html}");
    assert!(!html.contains("Approved"), "{html}");

    let poll: Value = form(
        "/-/v1/device/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", start["device_code"].as_str().unwrap()),
        ],
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(poll.get("access_token").is_none(), "{poll}");
}

/// `name=value` of a cookie the response sets.
fn cookie_pair(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set: {:?}", response.headers()))
        .to_owned()
}

fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field:\n{html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The path of the page's `/login` or `/decide` form, beside the verification URI.
fn path_of(verification_uri: &str, action: &str) -> String {
    let path = verification_uri
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| format!("/{path}"))
        .unwrap();
    format!("{path}{action}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_administration_needs_a_non_ci_token_covering_the_org() {
    let registry = Registry::start().await;
    registry.set_member("alice", "admin").await;
    // A second org alice administers too, so only the token's scope can stop her there.
    registry.create_org("beta").await;
    registry.set_member_of("beta", "alice", "admin").await;

    // A leaked read-only token of the org admin cannot add members or teams, nor grant access.
    let readonly = registry.server.token("alice", "ci-readonly", &[]);
    let npm = registry.npm_as(&readonly);
    npm.npm()
        .args(["org", "set", "acme", "bob", "developer"])
        .fails()
        .await
        .assert_mentions("ci-readonly token cannot administer org acme");
    npm.npm()
        .args(["team", "create", "acme:ops"])
        .fails()
        .await
        .assert_mentions("cannot administer");
    let (_, members) = registry
        .get("/-/org/acme/user", Some(&registry.admin))
        .await;
    assert_eq!(members, json!({ "alice": "admin" }));

    // A token scoped to @acme cannot administer beta.
    let scoped = registry.server.token("alice", "maintainer", &["@acme"]);
    registry
        .npm_as(&scoped)
        .npm()
        .args(["org", "set", "beta", "bob", "developer"])
        .fails()
        .await
        .assert_mentions("limited to @acme");
    // ...but administers acme.
    registry
        .npm_as(&scoped)
        .npm()
        .args(["org", "set", "acme", "bob", "developer"])
        .succeeds()
        .await
        .assert_mentions("Added bob as developer to acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_org_package_is_invisible_to_strangers_and_team_grants_read_and_write() {
    let registry = Registry::start_with(|config| config.anonymous_read = true).await;
    registry.set_member("alice", "admin").await;
    registry
        .publish(
            &registry.alice,
            "@acme/secret",
            "1.0.0",
            &["--access", "restricted"],
        )
        .await
        .assert_mentions("+ @acme/secret@1.0.0");
    registry
        .publish(
            &registry.alice,
            "@acme/open",
            "1.0.0",
            &["--access", "public"],
        )
        .await
        .assert_mentions("+ @acme/open@1.0.0");

    let tarball = "/@acme/secret/-/secret-1.0.0.tgz";
    let reads = [
        "/@acme%2fsecret",
        "/@acme%2fsecret/1.0.0",
        "/@acme%2fsecret/latest",
        tarball,
        "/-/package/@acme%2fsecret/dist-tags",
        "/-/package/@acme%2fsecret/collaborators",
        "/-/package/@acme%2fsecret/visibility",
    ];
    let missing = registry
        .get("/@acme%2fnothing-here", Some(&registry.bob))
        .await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    for reader in [Some(registry.bob.as_str()), None] {
        for path in reads {
            let (status, body) = registry.get(path, reader).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{path} as {reader:?}: {body}"
            );
            assert!(
                !body.to_string().contains("restricted") && !body.to_string().contains("1.0.0\""),
                "{path}: {body}"
            );
        }
        let (_, org) = registry.get("/-/org/acme/package", reader).await;
        assert_eq!(org, json!({ "@acme/open": "write" }), "{reader:?}");
        let (_, alices) = registry.get("/-/user/alice/package", reader).await;
        assert!(alices.get("@acme/secret").is_none(), "{alices}");
    }
    // The packument of the missing package and the hidden one say the same.
    let hidden = registry.get("/@acme%2fsecret", Some(&registry.bob)).await.1;
    assert_eq!(
        hidden["error"].as_str().unwrap().replace("secret", "X"),
        missing.1["error"]
            .as_str()
            .unwrap()
            .replace("nothing-here", "X")
    );
    // bob cannot install it; the public one installs.
    let bob_npm = registry.npm_as(&registry.bob);
    let project = bob_npm.new_project("bob-app");
    bob_npm
        .npm()
        .args(["install", "@acme/secret"])
        .current_dir(&project)
        .fails()
        .await
        .assert_mentions("404");

    // A read-only team grant lets bob read and install, but not publish.
    let alice_npm = registry.npm_as(&registry.alice);
    registry.set_member("bob", "reader").await;
    let (_, members_only) = registry.get("/@acme%2fsecret", Some(&registry.bob)).await;
    assert_eq!(members_only["name"], "@acme/secret", "org members read it");
    let (status, _) = registry
        .send(
            reqwest::Method::DELETE,
            "/api/v1/admin/orgs/acme/members",
            Some(&registry.admin),
            json!({ "user": "bob" }),
        )
        .await;
    assert!(status.is_success());
    registry
        .server
        .add_user("carol", "carol-password-1", "maintainer");
    let carol = registry.server.token("carol", "maintainer", &[]);
    registry.set_member("carol", "reader").await;
    alice_npm
        .npm()
        .args(["team", "create", "acme:readers"])
        .succeeds()
        .await;
    alice_npm
        .npm()
        .args(["team", "add", "acme:readers", "carol"])
        .succeeds()
        .await;
    let (status, _) = registry.get(tarball, Some(&carol)).await;
    assert_eq!(status, StatusCode::OK, "org readers read it");
    alice_npm
        .npm()
        .args([
            "access",
            "grant",
            "read-only",
            "acme:readers",
            "@acme/secret",
        ])
        .succeeds()
        .await;
    let carol_npm = registry.npm_as(&carol);
    let project = carol_npm.new_project("carol-app");
    carol_npm
        .npm()
        .args(["install", "@acme/secret"])
        .current_dir(&project)
        .succeeds()
        .await;
    crate::support::fixtures::assert_installed(&project, "@acme/secret", "1.0.0");
    let (status, body) = registry.put(&carol, "@acme/secret", "1.0.1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // read-write lets the team publish and tag.
    alice_npm
        .npm()
        .args([
            "access",
            "grant",
            "read-write",
            "acme:readers",
            "@acme/secret",
        ])
        .succeeds()
        .await;
    let (status, body) = registry.put(&carol, "@acme/secret", "1.0.1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = registry
        .send(
            reqwest::Method::PUT,
            "/-/package/@acme%2fsecret/dist-tags/stable",
            Some(&carol),
            json!("1.0.0"),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_scope_belongs_to_its_first_publisher_or_to_whom_an_admin_reserves_it() {
    let registry = Registry::start().await;
    let (status, body) = registry
        .put(&registry.alice, "@alice-tools/one", "1.0.0")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = registry
        .put(&registry.bob, "@alice-tools/two", "1.0.0")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("@alice-tools belongs to alice"),
        "{body}"
    );
    let (status, _) = registry
        .put(&registry.alice, "@alice-tools/two", "1.0.0")
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // bob cannot even mint a token for alice's scope.
    let (status, body) = registry
        .send(
            reqwest::Method::POST,
            "/-/npm/v1/tokens",
            Some(&registry.bob),
            json!({ "password": BOB_PASSWORD, "scopes": ["@alice-tools"] }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The operator reserves a fresh scope for bob before anyone publishes there.
    let said = packr(
        &registry.server.data_dir,
        &["scope", "reserve", "@bobcorp", "--owner", "bob"],
        None,
    );
    assert!(said.contains("@bobcorp reserved for bob"), "{said}");
    let (status, _) = registry.put(&registry.alice, "@bobcorp/x", "1.0.0").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = registry.put(&registry.bob, "@bobcorp/x", "1.0.0").await;
    assert_eq!(status, StatusCode::CREATED);
    let events = registry.audit("action=scope.reserved").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["owner"], "bob");
}
