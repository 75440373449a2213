//! Staged publishing and org policy end to end, with real npm 11 (`npm stage publish|list|view|
//! download|approve|reject`, npm-protocol.md §5.5): a staged version is invisible and reserved
//! until an approver releases it (signed, installable) or rejects it (gone with its tarball);
//! org policies refuse plain publishes, unapproved approvers, and publishes without provenance
//! or trusted publishing, each naming the rule.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clients::{ClientEnv, npm_dependency};
use crate::support::fixtures::{Package, assert_installed};
use crate::support::publish_body::PublishBody;
use crate::support::server::{TestServer, packr};
use crate::support::sigstore::{TestCa, purl, statement};
use crate::trusted_publishing::TestIssuer;
use crate::webhooks::{Client as WebhookClient, LOOPBACK, Receiver};

/// A registry with an admin (`root`), maintainers `alice`, `bob` and `carol`, and the org `acme`
/// whose members are alice and bob.
struct Setup {
    server: TestServer,
    root: String,
    alice: String,
    bob: String,
    carol: String,
    http: reqwest::Client,
}

impl Setup {
    async fn start() -> Self {
        Self::on(TestServer::start().await).await
    }

    async fn on(server: TestServer) -> Self {
        server.add_user("root", "root-password-1", "admin");
        for user in ["alice", "bob", "carol"] {
            server.add_user(user, &format!("{user}-password-1"), "maintainer");
        }
        let setup = Self {
            root: server.token("root", "admin", &[]),
            alice: server.token("alice", "maintainer", &[]),
            bob: server.token("bob", "maintainer", &[]),
            carol: server.token("carol", "maintainer", &[]),
            server,
            http: reqwest::Client::new(),
        };
        let (status, body) = setup
            .send(
                "POST",
                "/api/v1/admin/orgs",
                &setup.root,
                json!({ "slug": "acme" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for user in ["alice", "bob"] {
            let (status, body) = setup
                .send(
                    "POST",
                    "/api/v1/admin/orgs/acme/members",
                    &setup.root,
                    json!({ "user": user, "role": "maintainer" }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        setup
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn npm_as(&self, token: &str) -> ClientEnv {
        ClientEnv::new(&self.server, Some(token))
    }

    async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .server
            .get_json(&format!("/api/v1/audit-log?{query}"), Some(&self.root))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut events = body["events"].as_array().unwrap().clone();
        events.reverse();
        events
    }

    /// Verifies `spec` as `npm audit signatures` does (tests/it/support/pacote-verify.js).
    async fn verify_signature(&self, npm: &ClientEnv, token: &str, spec: &str) -> Value {
        let cache = tempfile::tempdir().unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/pacote-verify.js");
        let output = npm
            .node(script)
            .arg(npm_dependency("pacote"))
            .arg(format!("{}/", self.server.url))
            .arg(token)
            .arg(cache.path())
            .arg(spec)
            .succeeds()
            .await;
        serde_json::from_str(output.stdout.lines().next().unwrap()).unwrap()
    }
}

/// The id npm prints after `npm stage publish`: `+ name@v (staged with id <uuid>)`.
fn stage_id(stdout: &str) -> String {
    let start = stdout
        .find("(staged with id ")
        .unwrap_or_else(|| panic!("no stage id in {stdout:?}"))
        + "(staged with id ".len();
    let id = &stdout[start..start + 36];
    uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?} is not a UUID: {e}"));
    id.to_owned()
}

async fn stage_publish(npm: &ClientEnv, name: &str, version: &str, extra: &[&str]) -> String {
    let dir = npm.package(&Package::new(name, version));
    let out = npm
        .npm()
        .args(["stage", "publish"])
        .args(extra)
        .current_dir(dir)
        .succeeds()
        .await;
    out.assert_mentions(&format!("+ {name}@{version} (staged with id "));
    stage_id(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_version_stays_hidden_until_an_approver_other_than_the_stager_releases_it() {
    let setup = Setup::start().await;
    let (root, alice, bob) = (
        setup.npm_as(&setup.root),
        setup.npm_as(&setup.alice),
        setup.npm_as(&setup.bob),
    );
    root.npm()
        .args(["team", "create", "acme:reviewers"])
        .succeeds()
        .await;
    root.npm()
        .args(["team", "add", "acme:reviewers", "bob"])
        .succeeds()
        .await;
    let printed = packr(
        &setup.server.data_dir,
        &[
            "org",
            "policy",
            "acme",
            "--require-approval",
            "true",
            "--approver",
            "reviewers",
        ],
        None,
    );
    assert!(printed.contains("require_approval: true"), "{printed}");
    assert!(printed.contains("approvers: reviewers"), "{printed}");
    assert!(printed.contains("require_provenance: false"), "{printed}");

    // A plain publish is refused with what to do instead.
    let dir = alice.package(&Package::new("@acme/widget", "1.0.0"));
    alice
        .npm()
        .arg("publish")
        .current_dir(&dir)
        .fails()
        .await
        .assert_mentions("403")
        .assert_mentions("@acme requires an approval for every release: run `npm stage publish`");

    let id = stage_publish(&alice, "@acme/widget", "1.0.0", &[]).await;

    // Invisible to installs: no packument, no version document, no tarball.
    for path in [
        "/@acme%2fwidget",
        "/@acme%2fwidget/1.0.0",
        "/@acme%2fwidget/-/widget-1.0.0.tgz",
    ] {
        let (status, body) = setup.server.get_json(path, Some(&setup.bob)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    bob.npm()
        .args(["install", "@acme/widget@1.0.0"])
        .fails()
        .await
        .assert_mentions("404");

    // The version is reserved: staging it again names the stage holding it.
    let again = alice
        .npm()
        .args(["stage", "publish"])
        .current_dir(&dir)
        .fails()
        .await;
    // npm hides UUIDs in its error output (as it hides tokens): the answer names the stage, and
    // the hint to list it survives.
    again
        .assert_mentions("409")
        .assert_mentions("@acme/widget@1.0.0 is staged for approval with id")
        .assert_mentions("npm stage list @acme/widget");
    let (status, body) = setup
        .send(
            "POST",
            "/-/stage/package/@acme%2fwidget",
            &setup.alice,
            PublishBody::new("@acme/widget", "1.0.0").json(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");

    // Reviewers list, view and download it.
    let listed = bob.npm().args(["stage", "list", "--json"]).succeeds().await;
    let items: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["packageName"], "@acme/widget");
    assert_eq!(items[0]["actor"], "alice");
    bob.npm()
        .args(["stage", "view", &id])
        .succeeds()
        .await
        .assert_mentions("@acme/widget")
        .assert_mentions("alice (user)");
    let (status, page) = setup
        .server
        .get_json("/-/stage?page=1&perPage=1", Some(&setup.bob))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (
            page["items"].as_array().unwrap().len(),
            page["total"].as_u64()
        ),
        (0, Some(1))
    );
    // Someone outside the package and the approvers sees nothing.
    let (status, none) = setup.server.get_json("/-/stage", Some(&setup.carol)).await;
    assert_eq!(
        (status, none["total"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{none}"
    );
    let (status, body) = setup
        .server
        .get_json(&format!("/-/stage/{id}/tarball"), Some(&setup.carol))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let downloads = bob.new_project("downloads");
    bob.npm()
        .args(["stage", "download", &id])
        .current_dir(&downloads)
        .succeeds()
        .await;
    let bytes = std::fs::read(downloads.join(format!("acme-widget-1.0.0-{id}.tgz"))).unwrap();
    assert_eq!(
        packr::packages::integrity::Digests::of(&bytes).sha512_integrity,
        items[0]["integrity"].as_str().unwrap(),
        "the downloaded tarball is the staged one"
    );

    // The stager may not approve under the policy; neither may someone not an approver.
    alice
        .npm()
        .args(["stage", "approve", &id])
        .fails()
        .await
        .assert_mentions("403")
        .assert_mentions("alice staged @acme/widget@1.0.0 and cannot approve it");
    let (status, body) = setup
        .send(
            "POST",
            &format!("/-/stage/{id}/approve"),
            &setup.root,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("root is not an approver of @acme"),
        "{body}"
    );

    bob.npm()
        .args(["stage", "approve", &id])
        .succeeds()
        .await
        .assert_mentions(&format!(
            "Staged package {id} approved and published successfully."
        ));

    let packument = setup.server.packument("@acme/widget", &setup.bob).await;
    let version = &packument["versions"]["1.0.0"];
    assert_eq!(version["_npmUser"]["name"], "alice", "{version}");
    assert_eq!(version["_approvedBy"]["name"], "bob", "{version}");
    assert_eq!(packument["dist-tags"]["latest"], "1.0.0");
    assert_eq!(version["dist"]["integrity"], items[0]["integrity"]);
    let verified = setup
        .verify_signature(&bob, &setup.bob, "@acme/widget@1.0.0")
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(
        !verified["signatures"].as_array().unwrap().is_empty(),
        "{verified}"
    );

    bob.npm()
        .args(["install", "@acme/widget@1.0.0"])
        .succeeds()
        .await;
    assert_installed(&bob.project(), "@acme/widget", "1.0.0");
    let (status, gone) = setup
        .server
        .get_json(&format!("/-/stage/{id}"), Some(&setup.bob))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");

    let events = setup.audit("package=@acme/widget").await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "package.staged",
            "package.stage_approved",
            "package.published"
        ]
    );
    let published = &events[2];
    assert_eq!(published["actor"], "alice", "{published}");
    assert_eq!(published["details"]["approved_by"], "bob", "{published}");
    let policy_events = setup.audit("action=org.policy_changed").await;
    assert_eq!(policy_events.len(), 1);
    assert_eq!(
        policy_events[0]["details"]["after"]["approvers"],
        json!(["reviewers"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_stage_is_gone_with_its_tarball_and_a_staged_version_is_reserved() {
    let setup = Setup::start().await;
    let alice = setup.npm_as(&setup.alice);
    let dir = alice.package(&Package::new("stage-lib", "1.0.0"));
    alice.npm().arg("publish").current_dir(dir).succeeds().await;
    let blobs = setup.server.stored_blobs().await.len();

    let id = stage_publish(&alice, "stage-lib", "1.1.0", &["--tag", "next"]).await;
    assert_eq!(setup.server.stored_blobs().await.len(), blobs + 1);
    let (status, item) = setup
        .server
        .get_json(&format!("/-/stage/{id}"), Some(&setup.alice))
        .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(
        (item["version"].as_str(), item["tag"].as_str()),
        (Some("1.1.0"), Some("next"))
    );
    let packument = setup.server.packument("stage-lib", &setup.alice).await;
    assert!(packument["versions"].get("1.1.0").is_none(), "{packument}");

    // A plain publish of the staged version is refused (409), naming the stage.
    let dir = alice.package(&Package::new("stage-lib", "1.1.0"));
    alice
        .npm()
        .args(["publish", "--tag", "next"])
        .current_dir(&dir)
        .fails()
        .await
        .assert_mentions("409")
        .assert_mentions("stage-lib@1.1.0 is staged for approval with id");
    let (status, body) = setup
        .send(
            "PUT",
            "/stage-lib",
            &setup.alice,
            PublishBody::new("stage-lib", "1.1.0").json(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");

    // Someone who does not maintain the package cannot approve, reject or read it.
    let (status, body) = setup
        .send("DELETE", &format!("/-/stage/{id}"), &setup.carol, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = setup
        .server
        .get_json(&format!("/-/stage/{id}"), Some(&setup.carol))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = setup
        .server
        .get_json("/-/stage/not-a-uuid", Some(&setup.alice))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Without an org policy, the package's maintainer (here the stager) rejects it.
    alice
        .npm()
        .args(["stage", "reject", &id])
        .succeeds()
        .await
        .assert_mentions(&format!("Staged package {id} has been rejected."));
    let (status, body) = setup
        .server
        .get_json(&format!("/-/stage/{id}"), Some(&setup.alice))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        setup.server.stored_blobs().await.len(),
        blobs,
        "the tarball is gone"
    );
    alice
        .npm()
        .args(["stage", "list"])
        .succeeds()
        .await
        .assert_mentions("No staged packages found.");
    let actions: Vec<String> = setup
        .audit("package=stage-lib")
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "package.published",
            "package.staged",
            "package.stage_rejected"
        ]
    );

    // The version is free again.
    alice
        .npm()
        .args(["publish", "--tag", "next"])
        .current_dir(&dir)
        .succeeds()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_publisher_allowed_only_to_stage_stages_and_never_publishes() {
    let issuer = TestIssuer::start().await;
    let url = issuer.url.clone();
    let server = TestServer::start_with(move |config| config.trust.github_issuer = url).await;
    let setup = Setup::on(server).await;
    let alice = setup.npm_as(&setup.alice);
    let dir = alice.package(&Package::new("tp-staged", "1.0.0"));
    alice.npm().arg("publish").current_dir(dir).succeeds().await;
    let (status, body) = setup
        .send(
            "POST",
            "/-/package/tp-staged/trust",
            &setup.alice,
            json!([{
                "type": "github",
                "claims": { "repository": "acme/lib", "workflow_ref": { "file": "release.yml" } },
                "permissions": ["createStagedPackage"],
            }]),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");

    let ci = ClientEnv::new(&setup.server, None);
    let dir = ci.package(&Package::new("tp-staged", "1.1.0"));
    let refused = ci
        .npm()
        .arg("publish")
        .env("GITHUB_ACTIONS", "true")
        .env("NPM_ID_TOKEN", issuer.token(json!({})))
        .current_dir(&dir)
        .fails()
        .await;
    refused
        .assert_mentions("403")
        .assert_mentions("createStagedPackage");
    let staged = ci
        .npm()
        .args(["stage", "publish"])
        .env("GITHUB_ACTIONS", "true")
        .env("NPM_ID_TOKEN", issuer.token(json!({})))
        .current_dir(&dir)
        .succeeds()
        .await;
    let id = stage_id(&staged.stdout);
    let (status, item) = setup
        .server
        .get_json(&format!("/-/stage/{id}"), Some(&setup.alice))
        .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["actorType"], "trusted-publisher", "{item}");

    // A person releases it (no org policy: the package's maintainer may).
    alice.npm().args(["stage", "approve", &id]).succeeds().await;
    let packument = setup.server.packument("tp-staged", &setup.alice).await;
    let version = &packument["versions"]["1.1.0"];
    assert_eq!(
        version["trustedPublisher"]["repository"], "acme/lib",
        "{version}"
    );
    assert_eq!(version["_approvedBy"]["name"], "alice", "{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_policy_refuses_publishes_without_provenance_or_trusted_publishing_naming_the_rule() {
    let setup = Setup::start().await;
    let alice = setup.npm_as(&setup.alice);

    // Bad bodies are 400s that say what is wrong; only registry admins set a policy.
    for (body, needle) in [
        (
            json!({ "require_approval": "yes" }),
            "`require_approval` must be true or false",
        ),
        (
            json!({ "require_approval": true }),
            "needs at least one approver",
        ),
        (
            json!({ "approvers": ["nobody-here"] }),
            "approver `nobody-here` is neither a user nor a team of acme",
        ),
        (
            json!({ "require_provenanse": true }),
            "unknown policy field `require_provenanse`",
        ),
        (json!([true]), "must be a JSON object"),
    ] {
        let (status, answer) = setup
            .send(
                "PUT",
                "/api/v1/admin/orgs/acme/policy",
                &setup.root,
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body}: {answer}"
        );
    }
    let (status, _) = setup
        .send(
            "PUT",
            "/api/v1/admin/orgs/acme/policy",
            &setup.alice,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = setup
        .send(
            "PUT",
            "/api/v1/admin/orgs/nope/policy",
            &setup.root,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, policy) = setup
        .send(
            "PUT",
            "/api/v1/admin/orgs/acme/policy",
            &setup.root,
            json!({ "require_provenance": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["require_provenance"], true);
    let (status, read) = setup
        .server
        .get_json("/api/v1/admin/orgs/acme/policy", Some(&setup.root))
        .await;
    assert_eq!((status, &read), (StatusCode::OK, &policy));

    let dir = alice.package(&Package::new("@acme/signed", "1.0.0"));
    alice
        .npm()
        .arg("publish")
        .current_dir(&dir)
        .fails()
        .await
        .assert_mentions("403")
        .assert_mentions("@acme requires provenance")
        .assert_mentions("npm publish --provenance");
    alice
        .npm()
        .args(["stage", "publish"])
        .current_dir(&dir)
        .fails()
        .await
        .assert_mentions("@acme requires provenance");
    // With a bundle about this very tarball, it goes through.
    let ca = TestCa::new("staging");
    let body = PublishBody::new("@acme/signed", "1.0.0");
    let bundle = ca.bundle(&statement(
        &purl("@acme/signed", "1.0.0"),
        &body.sha512_hex(),
    ));
    let (status, answer) = setup
        .send(
            "PUT",
            "/@acme%2fsigned",
            &setup.alice,
            body.with_sigstore(bundle).json(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let printed = packr(
        &setup.server.data_dir,
        &[
            "org",
            "policy",
            "@acme",
            "--require-trusted-publishing",
            "true",
        ],
        None,
    );
    assert!(printed.contains("require_provenance: true"), "{printed}");
    assert!(
        printed.contains("require_trusted_publishing: true"),
        "{printed}"
    );
    let dir = alice.package(&Package::new("@acme/signed", "1.1.0"));
    alice
        .npm()
        .args(["stage", "publish"])
        .current_dir(&dir)
        .fails()
        .await
        .assert_mentions("403")
        .assert_mentions("@acme requires trusted publishing")
        .assert_mentions("npm trust github");
    let changes = setup.audit("action=org.policy_changed").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        changes[1]["details"]["after"]["require_trusted_publishing"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_stage_reaches_webhooks_as_a_publish_and_a_staged_one_does_not() {
    let server = TestServer::start_with(|config| {
        config.webhook_allowed_networks = vec![LOOPBACK.parse().unwrap()];
    })
    .await;
    let setup = Setup::on(server).await;
    let receiver = Receiver::start(0).await;
    let client = WebhookClient::new(&setup.server.url);
    let (hook, secret) = client
        .create_hook(
            &setup.root,
            json!({ "url": receiver.url, "events": ["package.published"], "org": "acme" }),
        )
        .await;
    receiver.set_secret(&secret);

    let (status, staged) = setup
        .send(
            "POST",
            "/-/stage/package/@acme%2fhooked",
            &setup.alice,
            PublishBody::new("@acme/hooked", "1.0.0").json(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{staged}");
    let id = staged["stageId"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        client.deliveries(&setup.root, hook).await.is_empty(),
        "a stage is not a publish"
    );

    // No policy: an org maintainer other than the stager approves.
    let (status, approved) = setup
        .send(
            "POST",
            &format!("/-/stage/{id}/approve"),
            &setup.bob,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["version"], "1.0.0");
    client.settled(&setup.root, hook, 1, "delivered").await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].event, "package.published");
    assert_eq!(hits[0].body["package"], "@acme/hooked");
    assert!(hits[0].signature_ok);
    // Approved once: the stage is gone.
    let (status, again) = setup
        .send(
            "POST",
            &format!("/-/stage/{id}/approve"),
            &setup.bob,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_staged_by_an_account_disabled_since_cannot_be_approved() {
    let setup = Setup::start().await;
    let alice = setup.npm_as(&setup.alice);
    let dir = alice.package(&Package::new("stage-gone", "1.0.0"));
    alice.npm().arg("publish").current_dir(dir).succeeds().await;
    let id = stage_publish(&alice, "stage-gone", "1.1.0", &[]).await;

    let printed = packr(&setup.server.data_dir, &["user", "disable", "alice"], None);
    assert!(printed.contains("user alice disabled"), "{printed}");
    let root = setup.npm_as(&setup.root);
    root.npm()
        .args(["stage", "approve", &id])
        .fails()
        .await
        .assert_mentions("409")
        .assert_mentions("alice staged stage-gone@1.1.0, and that account is disabled now");
    let packument = setup.server.packument("stage-gone", &setup.root).await;
    assert!(packument["versions"].get("1.1.0").is_none(), "{packument}");
    let (status, item) = setup
        .server
        .get_json(&format!("/-/stage/{id}"), Some(&setup.root))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the stage stays for a rejection: {item}"
    );

    // Enabled again, the account's stage is approved as any other.
    packr(&setup.server.data_dir, &["user", "enable", "alice"], None);
    root.npm().args(["stage", "approve", &id]).succeeds().await;
    let packument = setup.server.packument("stage-gone", &setup.root).await;
    assert_eq!(
        packument["versions"]["1.1.0"]["_npmUser"]["name"], "alice",
        "{packument}"
    );
}
