//! Registry signatures (npm-protocol.md §12) checked the way npm checks them.
//!
//! `npm audit signatures` first refreshes Sigstore's TUF metadata from the internet
//! (tuf-repo-cdn.sigstore.dev) and fails before it asks the registry on a machine without it,
//! as here. So these tests verify exactly as npm does after that step: npm's own pacote
//! (`manifest(spec, { verifySignatures: true, '//host/:_keys': keys })`) with the keys from
//! `/-/npm/v1/keys` (tests/it/support/pacote-verify.js), after a real `npm install`.

use std::path::Path;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::clients::{ClientEnv, npm_dependency};
use crate::support::fixtures::{Package, assert_installed};
use crate::support::server::{TestServer, packr};

/// The DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1).
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

struct Setup {
    server: TestServer,
    token: String,
    npm: ClientEnv,
}

impl Setup {
    async fn start() -> Self {
        Self::on(TestServer::start().await)
    }

    fn on(server: TestServer) -> Self {
        server.add_user("alice", "alice-password-1", "admin");
        let token = server.token("alice", "admin", &[]);
        let npm = ClientEnv::new(&server, Some(&token));
        Self { server, token, npm }
    }

    async fn publish(&self, name: &str, version: &str) {
        let dir = self.npm.package(&Package::new(name, version));
        self.npm
            .npm()
            .arg("publish")
            .current_dir(dir)
            .succeeds()
            .await
            .assert_mentions(&format!("+ {name}@{version}"));
    }

    async fn keys(&self) -> Vec<Value> {
        let (status, body) = self.server.get_json("/-/npm/v1/keys", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["keys"].as_array().cloned().unwrap_or_default()
    }

    async fn signatures(&self, name: &str, version: &str) -> Vec<Value> {
        let packument = self.server.packument(name, &self.token).await;
        packument["versions"][version]["dist"]["signatures"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Verifies each spec as `npm audit signatures` does; `(spec, Ok(keyids) | Err(code))`.
    async fn verify(&self, specs: &[&str]) -> Vec<(String, Result<Vec<String>, String>)> {
        let cache = tempfile::tempdir().unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/pacote-verify.js");
        let output = self
            .npm
            .node(script)
            .arg(npm_dependency("pacote"))
            .arg(format!("{}/", self.server.url))
            .arg(&self.token)
            .arg(cache.path())
            .args(specs)
            .succeeds()
            .await;
        output
            .stdout
            .lines()
            .map(|line| {
                let result: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("pacote-verify printed {line:?}: {e}"));
                let spec = result["spec"].as_str().unwrap().to_owned();
                if result["ok"] == true {
                    let keyids = result["signatures"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["keyid"].as_str().unwrap().to_owned())
                        .collect();
                    (spec, Ok(keyids))
                } else {
                    let code = result["code"].as_str().unwrap_or("(none)").to_owned();
                    let message = result["message"].as_str().unwrap_or_default();
                    (spec, Err(format!("{code}: {message}")))
                }
            })
            .collect()
    }
}

fn keyid_of(key: &Value) -> String {
    key["keyid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_verify_as_npm_verifies_them_and_a_tampered_integrity_does_not() {
    let mut setup = Setup::start().await;
    setup.publish("greeting", "1.0.0").await;
    setup.publish("@acme/widget", "2.0.0").await;

    // The keys document, exactly as npm reads it.
    let keys = setup.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_eq!(key["expires"], Value::Null);
    assert_eq!(key["keytype"], "ecdsa-sha2-nistp256");
    assert_eq!(key["scheme"], "ecdsa-sha2-nistp256");
    let der = base64::engine::general_purpose::STANDARD
        .decode(key["key"].as_str().unwrap())
        .unwrap();
    assert!(
        der.starts_with(P256_SPKI_PREFIX) && der.len() == 91,
        "{der:?}"
    );
    let keyid = keyid_of(key);
    assert!(keyid.starts_with("SHA256:"), "{keyid}");

    // Every document a client reads carries the signature: full, abbreviated, version.
    let signatures = setup.signatures("greeting", "1.0.0").await;
    assert_eq!(signatures.len(), 1);
    assert_eq!(signatures[0]["keyid"], keyid.as_str());
    let abbreviated = reqwest::Client::new()
        .get(format!("{}/greeting", setup.server.url))
        .header("accept", "application/vnd.npm.install-v1+json")
        .bearer_auth(&setup.token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        abbreviated["versions"]["1.0.0"]["dist"]["signatures"],
        Value::Array(signatures.clone())
    );
    let (_, version_doc) = setup
        .server
        .get_json("/greeting/1.0.0", Some(&setup.token))
        .await;
    assert_eq!(version_doc["dist"]["signatures"], Value::Array(signatures));

    // A real install, then npm's own verification of what it installed.
    setup
        .npm
        .npm()
        .args(["install", "greeting@1.0.0", "@acme/widget@2.0.0"])
        .succeeds()
        .await;
    assert_installed(&setup.npm.project(), "greeting", "1.0.0");
    assert_installed(&setup.npm.project(), "@acme/widget", "2.0.0");
    let verified = setup
        .verify(&["greeting@1.0.0", "@acme/widget@2.0.0"])
        .await;
    assert_eq!(
        verified,
        [
            ("greeting@1.0.0".to_owned(), Ok(vec![keyid.clone()])),
            ("@acme/widget@2.0.0".to_owned(), Ok(vec![keyid.clone()]))
        ]
    );

    // `npm audit signatures` itself needs Sigstore's TUF repository on the internet first.
    let audit = setup
        .npm
        .npm()
        .args(["audit", "signatures", "--fetch-retries=0"])
        .run()
        .await;
    if audit.status.success() {
        audit.assert_mentions("2 packages have verified registry signatures");
    } else {
        // Here: `getaddrinfo ENOTFOUND tuf-repo-cdn.sigstore.dev`, before the registry is asked.
        audit.assert_mentions("tuf-repo-cdn.sigstore.dev");
    }

    // Someone with database access points greeting's integrity at other bytes.
    let widget = setup.server.packument("@acme/widget", &setup.token).await;
    let other = widget["versions"]["2.0.0"]["dist"]["integrity"]
        .as_str()
        .unwrap()
        .to_owned();
    let greeting = setup.server.packument("greeting", &setup.token).await;
    let real = greeting["versions"]["1.0.0"]["dist"]["integrity"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its stored rendering too, or misses would keep serving the real integrity.
    setup
        .server
        .execute_sql(&format!(
            "UPDATE versions SET manifest = replace(manifest, '{real}', '{other}')
             WHERE package = 'greeting' AND version = '1.0.0';
             DELETE FROM renderings WHERE package = 'greeting';"
        ))
        .await;
    setup.server.restart().await;
    setup.npm.point_at(&setup.server);
    let tampered = setup.server.packument("greeting", &setup.token).await;
    assert_eq!(
        tampered["versions"]["1.0.0"]["dist"]["integrity"],
        other.as_str()
    );
    let verified = setup
        .verify(&["greeting@1.0.0", "@acme/widget@2.0.0"])
        .await;
    match &verified[0] {
        (_, Err(error)) => assert!(
            error.starts_with(
                "EINTEGRITYSIGNATURE: greeting@1.0.0 has an invalid registry signature"
            ),
            "{error}"
        ),
        other => panic!("a tampered integrity verified: {other:?}"),
    }
    assert_eq!(
        verified[1],
        ("@acme/widget@2.0.0".to_owned(), Ok(vec![keyid]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_published_before_the_key_existed_are_signed_at_start_once() {
    let mut setup = Setup::start().await;
    setup.publish("older", "1.0.0").await;
    setup.publish("older", "1.1.0").await;
    // As if published by a Packr that did not sign yet.
    setup
        .server
        .execute_sql("DELETE FROM version_signatures; DELETE FROM signing_keys;")
        .await;
    setup.server.restart().await;
    setup.npm.point_at(&setup.server);
    let rev_before = setup.server.packument("older", &setup.token).await["_rev"].clone();

    let keys = setup.keys().await;
    assert_eq!(keys.len(), 1, "a new key on start: {keys:?}");
    let keyid = keyid_of(&keys[0]);
    for version in ["1.0.0", "1.1.0"] {
        let signatures = setup.signatures("older", version).await;
        assert_eq!(signatures.len(), 1, "{version}: {signatures:?}");
        assert_eq!(signatures[0]["keyid"], keyid.as_str());
    }
    assert_eq!(
        setup.verify(&["older@1.0.0", "older@1.1.0"]).await,
        [
            ("older@1.0.0".to_owned(), Ok(vec![keyid.clone()])),
            ("older@1.1.0".to_owned(), Ok(vec![keyid.clone()]))
        ]
    );

    // A second start finds nothing to sign: the document (and its `_rev`) stays as it is.
    setup.server.restart().await;
    setup.npm.point_at(&setup.server);
    let after = setup.server.packument("older", &setup.token).await;
    assert_eq!(after["_rev"], rev_before);
    assert_eq!(setup.keys().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_old_versions_verify_with_the_old_key_and_new_ones_with_the_new() {
    let setup = Setup::start().await;
    setup.publish("rotated", "1.0.0").await;
    let old = keyid_of(&setup.keys().await[0]);

    let printed = packr(&setup.server.data_dir, &["keys", "rotate"], None);
    assert!(printed.contains("new signing key SHA256:"), "{printed}");
    // Every instance re-reads the key list within seconds.
    let mut keys = Vec::new();
    for _ in 0..50 {
        keys = setup.keys().await;
        if keys.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keyid_of(&keys[0]), old);
    assert!(
        keys[0]["expires"].is_string(),
        "the old key expires: {keys:?}"
    );
    assert_eq!(keys[1]["expires"], Value::Null);
    let new = keyid_of(&keys[1]);
    assert_ne!(old, new);

    setup.publish("rotated", "1.1.0").await;
    assert_eq!(
        setup.signatures("rotated", "1.0.0").await[0]["keyid"],
        old.as_str()
    );
    assert_eq!(
        setup.signatures("rotated", "1.1.0").await[0]["keyid"],
        new.as_str()
    );
    assert_eq!(
        setup.verify(&["rotated@1.0.0", "rotated@1.1.0"]).await,
        [
            ("rotated@1.0.0".to_owned(), Ok(vec![old.clone()])),
            ("rotated@1.1.0".to_owned(), Ok(vec![new.clone()]))
        ]
    );

    let listed = packr(&setup.server.data_dir, &["keys", "list"], None);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(&old) && lines[0].contains("expires "),
        "{listed}"
    );
    assert!(
        lines[1].starts_with(&new) && lines[1].ends_with("active"),
        "{listed}"
    );

    let (status, log) = setup
        .server
        .get_json(
            "/api/v1/audit-log?action=signing_key.rotated",
            Some(&setup.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["total"], 1, "{log}");
    assert_eq!(log["events"][0]["details"]["keyid"], new.as_str());
    assert_eq!(log["events"][0]["details"]["expired"][0], old.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_pinned_key_signs_and_is_published() {
    use p256::pkcs8::EncodePrivateKey;

    let pem = p256::SecretKey::from_slice(&[7; 32])
        .unwrap()
        .to_pkcs8_pem(Default::default())
        .unwrap()
        .to_string();
    let expected = packr::signing::RegistryKey::parse(&pem).unwrap();
    let server = TestServer::start_with(|config| {
        let dir = config
            .secrets
            .dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("mounted-secrets"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("PACKR_SIGNING_KEY"), &pem).unwrap();
        config.secrets.dir = Some(dir);
    })
    .await;
    let setup = Setup::on(server);
    setup.publish("pinned", "1.0.0").await;
    let keys = setup.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["keyid"], expected.keyid());
    assert_eq!(keys[0]["key"], expected.public_key());
    assert_eq!(
        setup.verify(&["pinned@1.0.0"]).await,
        [(
            "pinned@1.0.0".to_owned(),
            Ok(vec![expected.keyid().to_owned()])
        )]
    );
}

#[tokio::test]
async fn the_keys_document_is_public_and_json() {
    let server = TestServer::start().await;
    let response = reqwest::get(format!("{}/-/npm/v1/keys", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
}
