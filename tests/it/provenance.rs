//! Provenance (npm-protocol.md §12.4): the Sigstore bundle `npm publish --provenance` attaches
//! is checked against the tarball, stored, served at `/-/npm/v1/attestations/<name>@<version>`
//! and announced in `dist.attestations`; with `PACKR_SIGSTORE_TRUST_ROOT` it must verify: its
//! certificate chain, its signature, its transparency-log entry (inclusion proof up to a signed
//! checkpoint, signed entry timestamp, body) and its signer's identity against the package and the
//! trusted publisher. Bundles come from a throwaway CA and log (support/sigstore.rs): real
//! `npm publish --provenance` needs a CI OIDC token and the public Fulcio and Rekor, which tests
//! cannot reach.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::publish_body::PublishBody;
use crate::support::server::TestServer;
use crate::support::sigstore::{Build, SLSA_V1, TestCa, TestLog, purl, statement, trusted_root};
use crate::trusted_publishing::TestIssuer;

struct Registry {
    server: TestServer,
    token: String,
    _trust_dir: Option<tempfile::TempDir>,
}

impl Registry {
    async fn start(trusting: Option<&TestCa>) -> Self {
        Self::start_with(trusting, |_| {}).await
    }

    async fn start_with(
        trusting: Option<&TestCa>,
        tweak: impl FnOnce(&mut packr::config::Config),
    ) -> Self {
        let trust_dir = trusting.map(|ca| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("trusted_root.json");
            std::fs::write(&path, trusted_root(&[ca]).to_string()).unwrap();
            dir
        });
        let path = trust_dir
            .as_ref()
            .map(|d| d.path().join("trusted_root.json"));
        let server = TestServer::start_with(|config| {
            config.sigstore_trust_root = path;
            tweak(config);
        })
        .await;
        server.add_user("alice", "s3cret-pass", "maintainer");
        let token = server.token("alice", "maintainer", &[]);
        Self {
            server,
            token,
            _trust_dir: trust_dir,
        }
    }

    async fn publish(&self, body: &PublishBody) -> (StatusCode, Value) {
        self.publish_as(&self.token, body).await
    }

    async fn publish_as(&self, token: &str, body: &PublishBody) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .put(format!(
                "{}/{}",
                self.server.url,
                body.name.replace('/', "%2f")
            ))
            .bearer_auth(token)
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

/// The repository the test CA's certificates name by default, as package.json writes it.
const ACME_WIDGET: &str = "git+https://github.com/acme/widget.git";

/// A publish body for `name@version` of the repository `acme/widget` with a bundle `ca` signed
/// about its tarball, from a build of that repository.
fn with_provenance(ca: &TestCa, name: &str, version: &str) -> PublishBody {
    let body = PublishBody::new(name, version).with_repository(ACME_WIDGET);
    let bundle = ca.bundle(&statement(&purl(name, version), &body.sha512_hex()));
    body.with_sigstore(bundle)
}

/// The statement a bundle for `body` carries.
fn statement_of(body: &PublishBody) -> Value {
    statement(&purl(&body.name, &body.version), &body.sha512_hex())
}

/// The identity the test CA's default certificate names, as the version records it.
fn acme_signer() -> Value {
    json!({
        "issuer": "https://token.actions.githubusercontent.com",
        "repository": "https://github.com/acme/widget",
        "workflow": ".github/workflows/release.yml",
        "ref": "refs/heads/main",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "san": "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main",
    })
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
    refused_as(registry, &registry.token, body, StatusCode::BAD_REQUEST).await
}

/// `body` published with `token` is refused with `status`; returns the error.
async fn refused_as(
    registry: &Registry,
    token: &str,
    body: &PublishBody,
    expected: StatusCode,
) -> String {
    let (status, answer) = registry.publish_as(token, body).await;
    assert_eq!(status, expected, "{answer}");
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
        packument["versions"]["1.0.0"]["dist"]["attestations"]["provenance"],
        json!({ "predicateType": SLSA_V1, "verified": true, "signer": acme_signer() })
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
        json!({ "predicateType": SLSA_V1, "verified": true, "signer": acme_signer() }),
        "{log}"
    );

    let stranger = TestCa::new("stranger");
    // Logged in a trusted log, but issued by a CA the trust root does not name.
    let body = PublishBody::new("right-pad", "1.0.0").with_repository(ACME_WIDGET);
    let bundle = stranger
        .sign(&statement_of(&body))
        .in_log(&trusted.log)
        .text();
    let message = refused(&registry, &body.with_sigstore(bundle)).await;
    assert!(
        message.starts_with(
            "the provenance signing certificate does not chain to a Fulcio CA of PACKR_SIGSTORE_TRUST_ROOT"
        ),
        "{message}"
    );

    let body = PublishBody::new("right-pad", "1.0.0").with_repository(ACME_WIDGET);
    let expired =
        trusted.expired_bundle(&statement(&purl("right-pad", "1.0.0"), &body.sha512_hex()));
    let message = refused(&registry, &body.with_sigstore(expired)).await;
    assert!(
        message.contains("was not valid when the bundle was logged"),
        "{message}"
    );

    // A signature over another statement than the one carried.
    let body = PublishBody::new("right-pad", "1.0.0").with_repository(ACME_WIDGET);
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

/// `bundle` with its first log entry changed by `change`.
fn with_entry(bundle: String, change: impl FnOnce(&mut Value)) -> String {
    let mut bundle: Value = serde_json::from_str(&bundle).unwrap();
    change(&mut bundle["verificationMaterial"]["tlogEntries"][0]);
    bundle.to_string()
}

#[tokio::test]
async fn with_a_trust_root_the_bundle_must_be_proven_logged_in_a_trusted_log_about_itself() {
    let trusted = TestCa::new("trusted");
    let registry = Registry::start(Some(&trusted)).await;
    let entry = "the provenance bundle's transparency-log entry";

    // An inclusion proof up to a checkpoint the log signed is enough (Rekor v2 gives no promise).
    let body = PublishBody::new("proven", "1.0.0").with_repository(ACME_WIDGET);
    let bundle = with_entry(trusted.bundle(&statement_of(&body)), |e| {
        e.as_object_mut().unwrap().remove("inclusionPromise");
    });
    let (status, answer) = registry.publish(&body.with_sigstore(bundle)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // So is the signed entry timestamp alone.
    let body = PublishBody::new("promised", "1.0.0").with_repository(ACME_WIDGET);
    let bundle = with_entry(trusted.bundle(&statement_of(&body)), |e| {
        e.as_object_mut().unwrap().remove("inclusionProof");
    });
    let (status, answer) = registry.publish(&body.with_sigstore(bundle)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let packument = registry.server.packument("promised", &registry.token).await;
    assert_eq!(
        packument["versions"]["1.0.0"]["dist"]["attestations"]["provenance"]["verified"],
        true
    );

    let body = || PublishBody::new("refused", "1.0.0").with_repository(ACME_WIDGET);

    // One hash of the audit path changed.
    let b = body();
    let bundle = with_entry(trusted.bundle(&statement_of(&b)), |e| {
        e["inclusionProof"]["hashes"][1] = json!(base64_of(&[9u8; 32]));
    });
    let message = refused(&registry, &b.with_sigstore(bundle)).await;
    assert_eq!(
        message,
        format!(
            "{entry} has an inclusion proof that does not lead from the entry to the checkpoint's root hash"
        )
    );

    // Signed by another key than the trusted log's, under its name and id.
    let impostor = TestLog::impostor_of(&trusted.log);
    let b = body();
    let bundle = trusted.sign(&statement_of(&b)).in_log(&impostor).text();
    let message = refused(&registry, &b.with_sigstore(bundle)).await;
    assert_eq!(
        message,
        format!(
            "{entry} has an inclusion promise (signedEntryTimestamp) that the key of https://trusted.rekor.test did not sign"
        )
    );
    let b = body();
    let bundle = with_entry(
        trusted.sign(&statement_of(&b)).in_log(&impostor).text(),
        |e| {
            e.as_object_mut().unwrap().remove("inclusionPromise");
        },
    );
    let message = refused(&registry, &b.with_sigstore(bundle)).await;
    assert_eq!(
        message,
        format!("{entry} has a checkpoint that the key of https://trusted.rekor.test did not sign")
    );

    // A log the trust root does not name.
    let elsewhere = TestLog::new("elsewhere.rekor.test");
    let b = body();
    let bundle = trusted.sign(&statement_of(&b)).in_log(&elsewhere).text();
    let message = refused(&registry, &b.with_sigstore(bundle)).await;
    assert!(
        message.starts_with(&format!("{entry} is in the log "))
            && message.ends_with(", which is not a tlog of PACKR_SIGSTORE_TRUST_ROOT"),
        "{message}"
    );

    // The log's entry is about another artifact, though with this bundle's signature.
    let b = body();
    let other = statement(&purl("refused", "1.0.0"), &"cd".repeat(64));
    let bundle = trusted
        .sign(&statement_of(&b))
        .logging_payload_of(&other)
        .text();
    let message = refused(&registry, &b.with_sigstore(bundle)).await;
    assert_eq!(
        message,
        format!(
            "{entry} is about another artifact: its hash is not the SHA-256 of the DSSE payload"
        )
    );

    // Neither proof nor promise; no entry at all.
    let b = body();
    let bundle = with_entry(trusted.bundle(&statement_of(&b)), |e| {
        let e = e.as_object_mut().unwrap();
        e.remove("inclusionPromise");
        e.remove("inclusionProof");
    });
    let message = refused(&registry, &b.with_sigstore(bundle)).await;
    assert_eq!(
        message,
        format!("{entry} has neither an inclusion proof nor an inclusion promise")
    );
    let b = body();
    let mut bundle: Value = serde_json::from_str(&trusted.bundle(&statement_of(&b))).unwrap();
    bundle["verificationMaterial"]["tlogEntries"] = json!([]);
    let message = refused(&registry, &b.with_sigstore(bundle.to_string())).await;
    assert_eq!(
        message,
        "the provenance bundle has no transparency-log entry (verificationMaterial.tlogEntries)"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn with_a_trust_root_the_package_must_name_the_repository_its_provenance_was_built_from() {
    let trusted = TestCa::new("trusted");
    let registry = Registry::start(Some(&trusted)).await;

    let body = PublishBody::new("widget", "1.0.0")
        .with_repository("git+https://github.com/evil/widget.git");
    let bundle = trusted.bundle(&statement_of(&body));
    let message = refused_as(
        &registry,
        &registry.token,
        &body.with_sigstore(bundle),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        message,
        "Failed to validate repository information: package.json: \"repository.url\" is \"git+https://github.com/evil/widget.git\", expected to match \"https://github.com/acme/widget\" from provenance"
    );

    // No repository at all: npmjs refuses that too.
    let body = PublishBody::new("widget", "1.0.0");
    let bundle = trusted.bundle(&statement_of(&body));
    let message = refused_as(
        &registry,
        &registry.token,
        &body.with_sigstore(bundle),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        message.contains(
            "\"repository.url\" is \"\", expected to match \"https://github.com/acme/widget\""
        ),
        "{message}"
    );

    // The same repository however package.json writes it; GitLab's nested groups too.
    let body =
        PublishBody::new("widget", "1.0.0").with_repository("git@github.com:Acme/widget.git");
    let bundle = trusted.bundle(&statement_of(&body));
    let (status, answer) = registry.publish(&body.with_sigstore(bundle)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let gitlab = Build {
        issuer: "https://gitlab.com".into(),
        repository: "https://gitlab.com/acme/group/widget".into(),
        workflow: "/.gitlab-ci.yml".into(),
        git_ref: "refs/heads/main".into(),
    };
    let body = PublishBody::new("gadget", "1.0.0")
        .with_repository("git+https://gitlab.com/acme/group/widget.git");
    let bundle = trusted.sign(&statement_of(&body)).built_by(gitlab).text();
    let (status, answer) = registry.publish(&body.with_sigstore(bundle)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let packument = registry.server.packument("gadget", &registry.token).await;
    let signer = &packument["versions"]["1.0.0"]["dist"]["attestations"]["provenance"]["signer"];
    assert_eq!(signer["repository"], "https://gitlab.com/acme/group/widget");
    assert_eq!(signer["workflow"], ".gitlab-ci.yml");
    assert_eq!(signer["issuer"], "https://gitlab.com");
}

#[tokio::test]
async fn a_trusted_publisher_may_only_publish_provenance_of_its_own_repository_and_workflow() {
    let trusted = TestCa::new("trusted");
    let issuer = TestIssuer::start().await;
    let issuer_url = issuer.url.clone();
    let registry = Registry::start_with(Some(&trusted), move |config| {
        config.trust.github_issuer = issuer_url;
    })
    .await;
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
    let publisher = json!({"type": "github", "claims": {"repository": "acme/lib",
        "workflow_ref": {"file": "release.yml"}}, "permissions": ["createPackage"]});
    admin_post(
        server,
        &admin,
        "/api/v1/admin/orgs/acme/trusted-publishers",
        publisher,
    )
    .await;
    // The CI job's ID token (acme/lib, release.yml) exchanged for a publish token.
    let exchanged = reqwest::Client::new()
        .post(format!(
            "{}/-/npm/v1/oidc/token/exchange/package/@acme%2flib",
            server.url
        ))
        .bearer_auth(issuer.token(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(exchanged.status(), StatusCode::CREATED);
    let ci: Value = exchanged.json().await.unwrap();
    let ci = ci["token"].as_str().unwrap();
    let built = |repository: &str, file: &str| Build {
        issuer: issuer.url.clone(),
        ..Build::github(repository, file)
    };
    let body =
        || PublishBody::new("@acme/lib", "1.0.0").with_repository("https://github.com/acme/lib");

    // Built from another repository (which package.json names too).
    let b = PublishBody::new("@acme/lib", "1.0.0").with_repository("https://github.com/acme/other");
    let bundle = trusted
        .sign(&statement_of(&b))
        .built_by(built("acme/other", "release.yml"))
        .text();
    let message = refused_as(
        &registry,
        ci,
        &b.with_sigstore(bundle),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        message,
        "the provenance was built from https://github.com/acme/other, but the trusted-publishing token that publishes it was issued to acme/lib"
    );
    // By another workflow of the repository.
    let b = body();
    let bundle = trusted
        .sign(&statement_of(&b))
        .built_by(built("acme/lib", "ci.yml"))
        .text();
    let message = refused_as(
        &registry,
        ci,
        &b.with_sigstore(bundle),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        message,
        "the provenance was built by the workflow .github/workflows/ci.yml, but the trusted-publishing token that publishes it was issued to the workflow .github/workflows/release.yml"
    );
    // Signed with an identity from another OIDC issuer.
    let b = body();
    let bundle = trusted
        .sign(&statement_of(&b))
        .built_by(Build::github("acme/lib", "release.yml"))
        .text();
    let message = refused_as(
        &registry,
        ci,
        &b.with_sigstore(bundle),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        message,
        format!(
            "the provenance certificate's OIDC issuer is https://token.actions.githubusercontent.com, but the trusted-publishing token came from {}",
            issuer.url
        )
    );

    // Its own build publishes, with both identities on the version.
    let b = body();
    let bundle = trusted
        .sign(&statement_of(&b))
        .built_by(built("acme/lib", "release.yml"))
        .text();
    let (status, answer) = registry.publish_as(ci, &b.with_sigstore(bundle)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let packument = server.packument("@acme/lib", &admin).await;
    let version = &packument["versions"]["1.0.0"];
    assert_eq!(version["trustedPublisher"]["repository"], "acme/lib");
    let signer = &version["dist"]["attestations"]["provenance"]["signer"];
    assert_eq!(signer["repository"], "https://github.com/acme/lib");
    assert_eq!(signer["workflow"], ".github/workflows/release.yml");
}
