//! Orgs, teams and access through real `npm org`, `npm team` and `npm access` commands, the org
//! admin API, the org publishing rule, and the audit log that records all of it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clients::ClientEnv;
use crate::support::fixtures::Package;
use crate::support::server::TestServer;

/// A registry with an admin (`root`), two maintainers (`alice`, `bob`) and the org `acme`.
struct Org {
    server: TestServer,
    admin: String,
    alice: String,
    bob: String,
    http: reqwest::Client,
}

impl Org {
    async fn start() -> Self {
        let server = TestServer::start().await;
        server.add_user("root", "root-password-1", "admin");
        server.add_user("alice", "alice-password-1", "maintainer");
        server.add_user("bob", "bob-password-1", "maintainer");
        let org = Self {
            admin: server.token("root", "admin", &[]),
            alice: server.token("alice", "maintainer", &[]),
            bob: server.token("bob", "maintainer", &[]),
            server,
            http: reqwest::Client::new(),
        };
        let (status, body) = org
            .post(
                "/api/v1/admin/orgs",
                &org.admin,
                json!({ "slug": "acme", "display_name": "Acme Inc" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        org
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.server.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    fn npm_as(&self, token: &str) -> ClientEnv {
        ClientEnv::new(&self.server, Some(token))
    }

    async fn publish(
        &self,
        npm: &ClientEnv,
        name: &str,
        version: &str,
    ) -> crate::support::clients::ClientOutput {
        let dir = npm.package(&Package::new(name, version));
        npm.npm().arg("publish").current_dir(dir).run().await
    }

    async fn audit(&self, query: &str) -> Value {
        let (status, body) = self
            .server
            .get_json(&format!("/api/v1/audit-log?{query}"), Some(&self.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn actions(audit: &Value) -> Vec<String> {
    let mut actions: Vec<String> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    actions.reverse();
    actions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_org_maintainers_publish_under_the_org_scope() {
    let org = Org::start().await;
    let admin_npm = org.npm_as(&org.admin);
    admin_npm
        .npm()
        .args(["org", "set", "acme", "alice", "developer"])
        .succeeds()
        .await
        .assert_mentions("Added alice as developer to acme. You now have 1 member");
    // npm knows no reader role; the admin API sets it.
    let (status, _) = org
        .post(
            "/api/v1/admin/orgs/acme/members",
            &org.admin,
            json!({ "user": "bob", "role": "reader" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let roster = admin_npm
        .npm()
        .args(["org", "ls", "acme", "--json"])
        .succeeds()
        .await;
    let roster: Value = serde_json::from_str(&roster.stdout).unwrap();
    assert_eq!(roster, json!({ "alice": "developer", "bob": "reader" }));

    let alice = org.npm_as(&org.alice);
    assert!(
        org.publish(&alice, "@acme/rocket", "1.0.0")
            .await
            .status
            .success()
    );

    let bob = org.npm_as(&org.bob);
    let refused = org.publish(&bob, "@acme/rocket", "1.1.0").await;
    assert!(!refused.status.success());
    refused
        .assert_mentions("403")
        .assert_mentions("reader of org acme");

    org.server
        .add_user("carol", "carol-password-1", "maintainer");
    let carol = org.npm_as(&org.server.token("carol", "maintainer", &[]));
    let outsider = org.publish(&carol, "@acme/other", "1.0.0").await;
    assert!(!outsider.status.success());
    outsider
        .assert_mentions("403")
        .assert_mentions("not a member");

    // A CI token restricted to the org's scope publishes without membership.
    let ci = org.npm_as(&org.server.token("carol", "ci-publish", &["@acme"]));
    assert!(
        org.publish(&ci, "@acme/rocket", "1.2.0")
            .await
            .status
            .success()
    );

    // Outside org scopes the usual owner rule applies.
    assert!(
        org.publish(&carol, "@carol/thing", "1.0.0")
            .await
            .status
            .success()
    );

    let (status, packages) = org
        .server
        .get_json("/api/v1/orgs/acme/packages", Some(&org.alice))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        packages["packages"],
        json!([{ "name": "@acme/rocket", "access": "restricted" }])
    );

    let (_, mine) = org
        .server
        .get_json("/api/v1/admin/users/me/orgs", Some(&org.bob))
        .await;
    assert_eq!(
        mine["orgs"],
        json!([{ "slug": "acme", "display_name": "Acme Inc", "role": "reader" }])
    );

    admin_npm
        .npm()
        .args(["org", "rm", "acme", "alice"])
        .succeeds()
        .await;
    let removed = org.publish(&alice, "@acme/rocket", "1.3.0").await;
    assert!(
        !removed.status.success(),
        "a removed member can no longer publish"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_team_and_access_commands_manage_teams_grants_and_visibility() {
    let org = Org::start().await;
    let npm = org.npm_as(&org.admin);
    npm.npm()
        .args(["org", "set", "acme", "alice", "admin"])
        .succeeds()
        .await;
    npm.npm()
        .args(["org", "set", "acme", "bob"])
        .succeeds()
        .await;
    let alice = org.npm_as(&org.alice);
    assert!(
        org.publish(&alice, "@acme/widget", "1.0.0")
            .await
            .status
            .success()
    );

    alice
        .npm()
        .args(["team", "create", "acme:devs"])
        .succeeds()
        .await
        .assert_mentions("+@acme:devs");
    alice
        .npm()
        .args(["team", "add", "acme:devs", "bob"])
        .succeeds()
        .await
        .assert_mentions("bob added to @acme:devs");
    alice
        .npm()
        .args(["team", "ls", "acme"])
        .succeeds()
        .await
        .assert_mentions("@acme:devs");
    alice
        .npm()
        .args(["team", "ls", "acme:devs"])
        .succeeds()
        .await
        .assert_mentions("bob");

    alice
        .npm()
        .args(["access", "grant", "read-write", "acme:devs", "@acme/widget"])
        .succeeds()
        .await;
    let listed = alice
        .npm()
        .args(["access", "list", "packages", "acme:devs", "--json"])
        .succeeds()
        .await;
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed, json!({ "@acme/widget": "read-write" }));
    let collaborators = alice
        .npm()
        .args(["access", "list", "collaborators", "@acme/widget", "--json"])
        .succeeds()
        .await;
    let collaborators: Value = serde_json::from_str(&collaborators.stdout).unwrap();
    assert_eq!(
        collaborators,
        json!({ "alice": "read-write", "bob": "read-write" })
    );

    alice
        .npm()
        .args(["access", "get", "status", "@acme/widget"])
        .succeeds()
        .await
        .assert_mentions("@acme/widget: private");
    alice
        .npm()
        .args(["access", "set", "status=public", "@acme/widget"])
        .succeeds()
        .await;
    alice
        .npm()
        .args(["access", "get", "status", "@acme/widget"])
        .succeeds()
        .await
        .assert_mentions("@acme/widget: public");

    alice
        .npm()
        .args(["access", "revoke", "acme:devs", "@acme/widget"])
        .succeeds()
        .await;
    let after: Value = serde_json::from_str(
        &alice
            .npm()
            .args(["access", "list", "packages", "acme:devs", "--json"])
            .succeeds()
            .await
            .stdout,
    )
    .unwrap_or(json!({}));
    assert_eq!(after, json!({}));
    alice
        .npm()
        .args(["team", "rm", "acme:devs", "bob"])
        .succeeds()
        .await;
    alice
        .npm()
        .args(["team", "destroy", "acme:devs"])
        .succeeds()
        .await
        .assert_mentions("-@acme:devs");
    let bob = org.npm_as(&org.bob);
    let denied = bob.npm().args(["team", "create", "acme:rogue"]).run().await;
    assert!(!denied.status.success(), "a developer cannot create teams");
    denied.assert_mentions("403");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_returns_exactly_the_mutations_made() {
    let org = Org::start().await;
    let (status, _) = org
        .post(
            "/api/v1/admin/orgs/acme/members",
            &org.admin,
            json!({ "user": "alice", "role": "maintainer" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let alice = org.npm_as(&org.alice);
    assert!(
        org.publish(&alice, "@acme/logged", "1.0.0")
            .await
            .status
            .success()
    );
    assert!(
        org.publish(&alice, "@acme/logged", "1.1.0")
            .await
            .status
            .success()
    );
    alice
        .npm()
        .args(["dist-tag", "add", "@acme/logged@1.0.0", "stable"])
        .succeeds()
        .await;
    alice
        .npm()
        .args(["deprecate", "@acme/logged@1.0.0", "use 1.1"])
        .succeeds()
        .await;
    alice
        .npm()
        .args(["unpublish", "@acme/logged@1.1.0"])
        .succeeds()
        .await;

    let package_log = org.audit("package=@acme/logged").await;
    assert_eq!(
        actions(&package_log),
        [
            "package.published",
            "package.published",
            "dist-tag.changed",
            "package.deprecated",
            "package.unpublished",
        ]
    );
    let events = package_log["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e["actor"] == "alice" && e["token_id"].is_string())
    );
    assert!(
        events
            .iter()
            .all(|e| e["ip"] == "127.0.0.1" && e["request_id"].is_string())
    );
    assert_eq!(events[0]["details"]["versions"], json!(["1.1.0"]));

    let (status, per_package) = org
        .server
        .get_json(
            "/api/v1/packages/@acme%2flogged/audit-log",
            Some(&org.admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(per_package["total"], 5);

    let published = org.audit("action=package.published&per_page=1").await;
    assert_eq!(published["total"], 2);
    assert_eq!(published["events"].as_array().unwrap().len(), 1);
    let by_root = org.audit("actor=root").await;
    assert_eq!(
        actions(&by_root),
        ["token.created", "org.created", "org.member.added"]
    );
    let future = org.audit("from=2999-01-01").await;
    assert_eq!(future["total"], 0);
    let (status, _) = org
        .server
        .get_json("/api/v1/audit-log?from=yesterday", Some(&org.admin))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = org
        .server
        .get_json("/api/v1/audit-log", Some(&org.alice))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Logins and token changes are audited too.
    let login = org
        .http
        .post(format!("{}/-/v1/login", org.server.url))
        .json(&json!({ "name": "bob", "password": "bob-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let by_bob = org.audit("actor=bob").await;
    assert_eq!(
        actions(&by_bob),
        ["token.created", "user.login", "token.created"]
    );
}
