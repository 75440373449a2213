//! Provenance (npm-protocol.md §12.4): the Sigstore bundle `npm publish --provenance` attaches
//! is checked against the tarball, stored, served at `/-/npm/v1/attestations/<name>@<version>`
//! and announced in `dist.attestations`; with `PACKR_SIGSTORE_TRUST_ROOT` it must verify.
//! Bundles come from a throwaway CA (support/sigstore.rs): real `npm publish --provenance`
//! needs a CI OIDC token and the public Fulcio and Rekor, which tests cannot reach.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::publish_body::PublishBody;
use crate::support::server::TestServer;
use crate::support::sigstore::{SLSA_V1, TestCa, purl, statement, trusted_root};

struct Registry {
    server: TestServer,
    token: String,
    _trust_dir: Option<tempfile::TempDir>,
}

impl Registry {
    async fn start(trusting: Option<&TestCa>) -> Self {
        let trust_dir = trusting.map(|ca| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("trusted_root.json");
            std::fs::write(&path, trusted_root(&[ca]).to_string()).unwrap();
            dir
        });
        let path = trust_dir
            .as_ref()
            .map(|d| d.path().join("trusted_root.json"));
        let server = TestServer::start_with(|config| config.sigstore_trust_root = path).await;
        server.add_user("alice", "s3cret-pass", "maintainer");
        let token = server.token("alice", "maintainer", &[]);
        Self {
            server,
            token,
            _trust_dir: trust_dir,
        }
    }

    async fn publish(&self, body: &PublishBody) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .put(format!(
                "{}/{}",
                self.server.url,
                body.name.replace('/', "%2f")
            ))
            .bearer_auth(&self.token)
            .json(&body.json())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.server.get_json(path, Some(&self.token)).await
    }
}

/// A publish body for `name@version` with a bundle `ca` signed about its tarball.
fn with_provenance(ca: &TestCa, name: &str, version: &str) -> PublishBody {
    let body = PublishBody::new(name, version);
    let bundle = ca.bundle(&statement(&purl(name, version), &body.sha512_hex()));
    body.with_sigstore(bundle)
}

fn path_of(url: &Value) -> String {
    let url = url.as_str().expect("dist.attestations.url is a string");
    let after_scheme = url.split_once("://").unwrap().1;
    after_scheme[after_scheme.find('/').unwrap()..].to_owned()
}

#[tokio::test]
async fn a_matching_bundle_is_stored_served_and_announced_as_unverified_without_a_trust_root() {
    let registry = Registry::start(None).await;
    let ca = TestCa::new("ci");
    let body = with_provenance(&ca, "@acme/widget", "1.0.0");
    let (status, answer) = registry.publish(&body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let packument = registry
        .server
        .packument("@acme/widget", &registry.token)
        .await;
    let attestations = &packument["versions"]["1.0.0"]["dist"]["attestations"];
    assert_eq!(
        attestations["url"],
        format!(
            "{}/-/npm/v1/attestations/@acme%2fwidget@1.0.0",
            registry.server.url
        )
    );
    assert_eq!(attestations["provenance"]["predicateType"], SLSA_V1);
    assert_eq!(attestations["provenance"]["verified"], false);
    let (_, version) = registry.get("/@acme%2fwidget/1.0.0").await;
    assert_eq!(&version["dist"]["attestations"], attestations);

    // npm fetches the URL's path on the registry it uses.
    let (status, served) = registry.get(&path_of(&attestations["url"])).await;
    assert_eq!(status, StatusCode::OK, "{served}");
    let sent: Value = serde_json::from_str(body.sigstore.as_ref().unwrap()).unwrap();
    assert_eq!(served["attestations"].as_array().unwrap().len(), 1);
    assert_eq!(served["attestations"][0]["predicateType"], SLSA_V1);
    assert_eq!(served["attestations"][0]["bundle"], sent);
    // The scope's slash may also come unencoded.
    let (status, again) = registry
        .get("/-/npm/v1/attestations/@acme/widget@1.0.0")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, served);
}

#[tokio::test]
async fn a_version_without_a_bundle_has_no_attestations() {
    let registry = Registry::start(None).await;
    let (status, _) = registry.publish(&PublishBody::new("plain", "1.0.0")).await;
    assert_eq!(status, StatusCode::CREATED);
    let packument = registry.server.packument("plain", &registry.token).await;
    assert!(packument["versions"]["1.0.0"]["dist"]["attestations"].is_null());
    let (status, body) = registry.get("/-/npm/v1/attestations/plain@1.0.0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no attestations found for plain@1.0.0");
}

async fn refused(registry: &Registry, body: &PublishBody) -> String {
    let (status, answer) = registry.publish(body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = registry
        .get(&format!("/{}", body.name.replace('/', "%2f")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was published");
    answer["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_bundle_about_another_package_version_or_tarball_is_refused_saying_what_differed() {
    let registry = Registry::start(None).await;
    let ca = TestCa::new("ci");
    let body = PublishBody::new("@acme/widget", "1.0.0");
    let digest = body.sha512_hex();

    let other_name = ca.bundle(&statement(&purl("@acme/gadget", "1.0.0"), &digest));
    let message = refused(
        &registry,
        &PublishBody::new("@acme/widget", "1.0.0").with_sigstore(other_name),
    )
    .await;
    assert_eq!(
        message,
        "the provenance statement's subject \"pkg:npm/%40acme/gadget@1.0.0\" names the package @acme/gadget, but this publish is pkg:npm/%40acme/widget@1.0.0"
    );

    let other_version = ca.bundle(&statement(&purl("@acme/widget", "0.9.0"), &digest));
    let message = refused(
        &registry,
        &PublishBody::new("@acme/widget", "1.0.0").with_sigstore(other_version),
    )
    .await;
    assert!(message.contains("names the version 0.9.0"), "{message}");

    let other_digest = ca.bundle(&statement(&purl("@acme/widget", "1.0.0"), &"ab".repeat(64)));
    let message = refused(
        &registry,
        &PublishBody::new("@acme/widget", "1.0.0").with_sigstore(other_digest),
    )
    .await;
    assert_eq!(
        message,
        format!(
            "the provenance statement's subject digest sha512 is \"{}\", but the tarball's sha512 is {digest}",
            "ab".repeat(64)
        )
    );

    let not_a_bundle = r#"{"mediaType":"application/json"}"#.to_owned();
    let message = refused(
        &registry,
        &PublishBody::new("@acme/widget", "1.0.0").with_sigstore(not_a_bundle),
    )
    .await;
    assert!(message.contains("not a Sigstore bundle"), "{message}");
}

#[tokio::test]
async fn with_a_trust_root_a_bundle_from_its_ca_is_verified_and_others_are_refused() {
    let trusted = TestCa::new("trusted");
    let registry = Registry::start(Some(&trusted)).await;

    let (status, answer) = registry
        .publish(&with_provenance(&trusted, "left-pad", "1.0.0"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let packument = registry.server.packument("left-pad", &registry.token).await;
    assert_eq!(
        packument["versions"]["1.0.0"]["dist"]["attestations"]["provenance"]["verified"],
        true
    );
    registry.server.add_user("root", "root-password-1", "admin");
    let admin = registry.server.token("root", "admin", &[]);
    let (status, log) = registry
        .server
        .get_json("/api/v1/packages/left-pad/audit-log", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(
        log["events"][0]["details"]["provenance"],
        json!({ "predicateType": SLSA_V1, "verified": true }),
        "{log}"
    );

    let stranger = TestCa::new("stranger");
    let message = refused(&registry, &with_provenance(&stranger, "right-pad", "1.0.0")).await;
    assert!(
        message.starts_with(
            "the provenance signing certificate does not chain to a Fulcio CA of PACKR_SIGSTORE_TRUST_ROOT"
        ),
        "{message}"
    );

    let body = PublishBody::new("right-pad", "1.0.0");
    let expired =
        trusted.expired_bundle(&statement(&purl("right-pad", "1.0.0"), &body.sha512_hex()));
    let message = refused(&registry, &body.with_sigstore(expired)).await;
    assert!(
        message.contains("was not valid when the bundle was logged"),
        "{message}"
    );

    // A signature over another statement than the one carried.
    let body = PublishBody::new("right-pad", "1.0.0");
    let carried = statement(&purl("right-pad", "1.0.0"), &body.sha512_hex());
    let signed = statement(&purl("right-pad", "1.0.0"), &"00".repeat(64));
    let forged = body.with_sigstore(trusted.bundle_signing(&carried, &signed));
    let message = refused(&registry, &forged).await;
    assert!(
        message.starts_with("the provenance bundle's DSSE signature does not verify"),
        "{message}"
    );
}

/// `POST path` with `token`, asserting 201.
async fn admin_post(server: &TestServer, token: &str, path: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "POST {path}");
}

#[tokio::test]
async fn attestations_of_a_restricted_org_package_are_hidden_like_its_packument() {
    let registry = Registry::start(None).await;
    let server = &registry.server;
    server.add_user("root", "root-password-1", "admin");
    let admin = server.token("root", "admin", &[]);
    admin_post(
        server,
        &admin,
        "/api/v1/admin/orgs",
        json!({ "slug": "acme" }),
    )
    .await;
    let member = json!({ "user": "alice", "role": "admin" });
    admin_post(server, &admin, "/api/v1/admin/orgs/acme/members", member).await;
    let ca = TestCa::new("ci");
    let (status, answer) = registry
        .publish(&with_provenance(&ca, "@acme/secret", "1.0.0"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let path = "/-/npm/v1/attestations/@acme%2fsecret@1.0.0";
    let (status, _) = registry.get(path).await;
    assert_eq!(status, StatusCode::OK, "a member reads them");

    server.add_user("bob", "s3cret-pass", "maintainer");
    let bob = server.token("bob", "maintainer", &[]);
    let (status, _) = server.get_json("/@acme%2fsecret", Some(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server.get_json(path, Some(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["error"],
        "no attestations found for @acme/secret@1.0.0"
    );
}
