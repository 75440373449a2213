//! Trusted publishing end to end: real npm 11 in a (simulated) GitHub Actions job, with no
//! `_authToken` anywhere, publishing with an OIDC ID token the test signs, from an issuer the
//! test serves on loopback (discovery document and JWKS, an RSA key made with `openssl`).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clients::ClientEnv;
use crate::support::fixtures::{Package, assert_installed};
use crate::support::server::TestServer;

/// A test OIDC issuer on loopback: `/.well-known/openid-configuration` and `/jwks`.
struct TestIssuer {
    url: String,
    /// The signing key and its kid.
    key: Mutex<(EncodingKey, String)>,
    /// The published keys.
    jwks: Arc<Mutex<Vec<Value>>>,
    dir: tempfile::TempDir,
}

/// A new RSA key made with `openssl` in `dir`: the signing key and its public JWK.
fn rsa_key(dir: &std::path::Path, kid: &str) -> (EncodingKey, Value) {
    let pem = dir.join(format!("{kid}.pem"));
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("running openssl");
    assert!(made.status.success(), "openssl genpkey: {made:?}");
    let modulus = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&pem)
        .output()
        .expect("running openssl");
    let text = String::from_utf8(modulus.stdout).unwrap();
    let n = hex::decode(text.trim().trim_start_matches("Modulus=")).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": b64.encode(&n), "e": "AQAB",
    });
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&pem).unwrap()).unwrap();
    (key, jwk)
}

impl TestIssuer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (key, jwk) = rsa_key(dir.path(), "key-1");
        let jwks = Arc::new(Mutex::new(vec![jwk]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let published = Arc::clone(&jwks);
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let d = discovery.clone();
                    async move { axum::Json(d) }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let keys = published.lock().unwrap().clone();
                    async move { axum::Json(json!({ "keys": keys })) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            key: Mutex::new((key, "key-1".to_owned())),
            jwks,
            dir,
        }
    }

    /// Signs with a new key from now on, published next to the old one.
    fn rotate(&self, kid: &str) {
        let (key, jwk) = rsa_key(self.dir.path(), kid);
        self.jwks.lock().unwrap().push(jwk);
        *self.key.lock().unwrap() = (key, kid.to_owned());
    }

    /// GitHub-shaped claims for `acme/lib`'s `release.yml`, valid for five minutes, for the
    /// registry on 127.0.0.1; `change` overrides or (with `null`) removes claims.
    fn claims(&self, change: Value) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut claims = json!({
            "iss": self.url,
            "aud": "npm:127.0.0.1",
            "sub": "repo:acme/lib:ref:refs/heads/main",
            "iat": now, "nbf": now - 5, "exp": now + 300,
            "jti": uuid::Uuid::new_v4().to_string(),
            "repository": "acme/lib",
            "repository_owner": "acme",
            "repository_visibility": "private",
            "workflow_ref": "acme/lib/.github/workflows/release.yml@refs/heads/main",
            "ref": "refs/heads/main",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "event_name": "push",
            "run_id": "987654",
        });
        for (key, value) in change.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    }

    fn sign(&self, claims: &Value) -> String {
        let key = self.key.lock().unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.1.clone());
        jsonwebtoken::encode(&header, claims, &key.0).unwrap()
    }

    fn token(&self, change: Value) -> String {
        self.sign(&self.claims(change))
    }
}

struct Setup {
    server: TestServer,
    issuer: TestIssuer,
    gitlab: TestIssuer,
    alice: String,
    /// Alice's npm, with her token.
    npm: ClientEnv,
    /// The CI job's npm: no token anywhere.
    ci: ClientEnv,
}

impl Setup {
    async fn start() -> Self {
        let issuer = TestIssuer::start().await;
        let gitlab = TestIssuer::start().await;
        let (github_url, gitlab_url) = (issuer.url.clone(), gitlab.url.clone());
        let server = TestServer::start_with(move |config| {
            config.trust.github_issuer = github_url;
            config.trust.gitlab_issuer = gitlab_url;
        })
        .await;
        server.add_user("alice", "alice-password-1", "maintainer");
        server.add_user("root", "root-password-1", "admin");
        let alice = server.token("alice", "maintainer", &[]);
        let npm = ClientEnv::new(&server, Some(&alice));
        let ci = ClientEnv::new(&server, None);
        Self {
            server,
            issuer,
            gitlab,
            alice,
            npm,
            ci,
        }
    }

    /// `npm publish` of `name@version` in the CI sandbox of GitHub Actions with `NPM_ID_TOKEN`.
    async fn ci_publish(&self, name: &str, version: &str, id_token: &str) -> (bool, String) {
        self.ci_publish_in("GITHUB_ACTIONS", name, version, id_token)
            .await
    }

    /// `npm publish` in the CI sandbox, with `ci_variable=true` telling npm which CI it is in.
    async fn ci_publish_in(
        &self,
        ci_variable: &str,
        name: &str,
        version: &str,
        id_token: &str,
    ) -> (bool, String) {
        let dir = self.ci.package(&Package::new(name, version));
        let out = self
            .ci
            .npm()
            .args(["publish", "--loglevel", "verbose"])
            .env(ci_variable, "true")
            .env("NPM_ID_TOKEN", id_token)
            .current_dir(dir)
            .run()
            .await;
        (
            out.status.success(),
            format!("{}\n{}", out.stdout, out.stderr),
        )
    }

    async fn exchange(&self, name: &str, id_token: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/-/npm/v1/oidc/token/exchange/package/{}",
                self.server.url,
                name.replace('/', "%2f")
            ))
            .bearer_auth(id_token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn versions(&self, name: &str) -> Vec<String> {
        let doc = self.server.packument(name, &self.alice).await;
        doc["versions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    async fn trust_ids(&self, name: &str) -> Vec<String> {
        let (status, list) = self
            .server
            .get_json(&format!("/-/package/{name}/trust"), Some(&self.alice))
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The exchange refuses `id_token` (401) with an error naming `reason`, in `error` and
/// `message`, and npm publishes nothing with it.
async fn refused(setup: &Setup, id_token: &str, reason: &str, version: &str) {
    let (published, output) = setup.ci_publish("tp-lib", version, id_token).await;
    assert!(!published, "published with a refused ID token: {output}");
    // npm keeps the exchange's refusal for its verbose log, then stops before the PUT.
    assert!(
        output.contains(reason),
        "npm's verbose log lacks {reason:?}: {output}"
    );
    assert!(output.contains("ENEEDAUTH"), "{output}");
    assert!(!setup.versions("tp-lib").await.contains(&version.to_owned()));
    let (status, body) = setup.exchange("tp-lib", id_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(reason),
        "{error:?} should mention {reason:?}"
    );
    assert_eq!(body["message"], body["error"]);
}

#[tokio::test]
async fn npm_publishes_from_a_trusted_github_workflow_with_no_stored_token() {
    let setup = Setup::start().await;
    // Alice publishes the first version herself and trusts acme/lib's release.yml.
    let dir = setup.npm.package(&Package::new("tp-lib", "1.0.0"));
    setup
        .npm
        .npm()
        .arg("publish")
        .current_dir(dir)
        .succeeds()
        .await;
    setup
        .npm
        .npm()
        .args([
            "trust",
            "github",
            "tp-lib",
            "--file",
            "release.yml",
            "--repo",
            "acme/lib",
        ])
        .args(["--allow-publish", "-y"])
        .succeeds()
        .await;
    setup
        .npm
        .npm()
        .args(["trust", "list", "tp-lib"])
        .succeeds()
        .await
        .assert_mentions("acme/lib")
        .assert_mentions("release.yml");
    let ids = setup.trust_ids("tp-lib").await;
    assert_eq!(ids.len(), 1);

    // Someone else may not change them.
    setup
        .server
        .add_user("mallory", "mallory-password-1", "maintainer");
    let mallory = setup.server.token("mallory", "maintainer", &[]);
    let response = reqwest::Client::new()
        .post(format!("{}/-/package/tp-lib/trust", setup.server.url))
        .bearer_auth(&mallory)
        .json(
            &json!([{"type": "github", "claims": {"repository": "evil/lib",
            "workflow_ref": {"file": "x.yml"}}, "permissions": ["createPackage"]}]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (status, _) = setup
        .server
        .get_json("/-/package/tp-lib/trust", Some(&mallory))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The CI job publishes with its ID token only, and the version installs.
    let good = setup.issuer.token(json!({}));
    let (published, output) = setup.ci_publish("tp-lib", "1.1.0", &good).await;
    assert!(published, "{output}");
    let doc = setup.server.packument("tp-lib", &setup.alice).await;
    let version = &doc["versions"]["1.1.0"];
    assert_eq!(version["trustedPublisher"]["repository"], "acme/lib");
    assert_eq!(
        version["trustedPublisher"]["workflow"],
        ".github/workflows/release.yml"
    );
    assert_eq!(version["trustedPublisher"]["run_id"], "987654");
    assert_eq!(version["trustedPublisher"]["ref"], "refs/heads/main");
    assert_eq!(
        version["_npmUser"]["trustedPublisher"]["repository"],
        "acme/lib"
    );
    setup
        .npm
        .npm()
        .args(["install", "tp-lib@1.1.0"])
        .succeeds()
        .await;
    assert_installed(&setup.npm.project(), "tp-lib", "1.1.0");

    // The audit log has the exchange with the identity.
    let root = setup.server.token("root", "admin", &[]);
    let (_, log) = setup
        .server
        .get_json(
            "/api/v1/audit-log?action=trusted_publishing.exchanged",
            Some(&root),
        )
        .await;
    let text = log.to_string();
    assert!(
        text.contains("acme/lib") && text.contains("987654"),
        "{text}"
    );

    // Refusals: each says why, and publishes nothing.
    refused(&setup, &good, "already exchanged", "1.2.0").await;
    let other_repo = setup.issuer.token(json!({"repository": "evil/lib",
        "workflow_ref": "evil/lib/.github/workflows/release.yml@refs/heads/main"}));
    refused(&setup, &other_repo, "evil/lib", "1.2.0").await;
    let other_workflow = setup.issuer.token(json!({
        "workflow_ref": "acme/lib/.github/workflows/ci.yml@refs/heads/main"}));
    refused(&setup, &other_workflow, "ci.yml", "1.2.0").await;
    let wrong_audience = setup.issuer.token(json!({"aud": "npm:registry.npmjs.org"}));
    refused(&setup, &wrong_audience, "audience", "1.2.0").await;
    let expired = setup
        .issuer
        .token(json!({"exp": 1_000_000_000, "nbf": 999_999_000,
        "iat": 999_999_000}));
    refused(&setup, &expired, "expired", "1.2.0").await;

    // The exchanged token publishes its package only.
    let (status, body) = setup
        .exchange("tp-lib", &setup.issuer.token(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap();
    let robot = ClientEnv::new(&setup.server, Some(token));
    let other = robot.package(&Package::new("tp-other", "1.0.0"));
    robot.npm().arg("publish").current_dir(other).fails().await;
    let (status, _) = setup.server.get_json("/tp-other", Some(&setup.alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // After `npm trust revoke` the exchange fails.
    setup
        .npm
        .npm()
        .args(["trust", "revoke", "tp-lib", "--id", &ids[0], "-y"])
        .succeeds()
        .await;
    assert!(setup.trust_ids("tp-lib").await.is_empty());
    refused(
        &setup,
        &setup.issuer.token(json!({})),
        "no trusted publisher for tp-lib",
        "1.2.0",
    )
    .await;
}

#[tokio::test]
async fn an_org_wide_trusted_publisher_covers_every_package_of_the_org() {
    let setup = Setup::start().await;
    let root = setup.server.token("root", "admin", &[]);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/admin/orgs", setup.server.url))
        .bearer_auth(&root)
        .json(&json!({"slug": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = format!(
        "{}/api/v1/admin/orgs/acme/trusted-publishers",
        setup.server.url
    );
    let added = client
        .post(&url)
        .bearer_auth(&root)
        .json(
            &json!({"type": "github", "claims": {"repository": "acme/lib",
            "workflow_ref": {"file": "release.yml"}, "environment": "production"},
            "permissions": ["createPackage"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    // Alice may not.
    let denied = client
        .get(&url)
        .bearer_auth(&setup.alice)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let listed: Value = client
        .get(&url)
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed["trusted_publishers"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Without the environment the publisher requires, refused; with it, published.
    let (status, body) = setup
        .exchange("@acme/new", &setup.issuer.token(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap().contains("production"),
        "{body}"
    );
    let good = setup.issuer.token(json!({"environment": "production"}));
    let (published, output) = setup.ci_publish("@acme/new", "1.0.0", &good).await;
    assert!(published, "{output}");
    let doc = setup.server.packument("@acme/new", &root).await;
    assert_eq!(
        doc["versions"]["1.0.0"]["trustedPublisher"]["environment"],
        "production"
    );

    // The exchanged token is a real token row: 15 minutes, one package, revocable.
    let fresh = setup.issuer.token(json!({"environment": "production"}));
    let (status, body) = setup.exchange("@acme/new", &fresh).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let exchanged = body["token"].as_str().unwrap().to_owned();
    let (_, listing) = setup
        .server
        .get_json("/api/v1/admin/tokens?user=root", Some(&root))
        .await;
    let rows: Vec<&Value> = listing["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["issued_by"] == "trusted-publishing")
        .collect();
    assert_eq!(rows.len(), 2, "{listing}");
    for row in &rows {
        assert_eq!(row["scopes"], json!(["publish:@acme/new"]));
        assert_eq!(row["role"], "ci-publish");
        let at = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(row[field].as_str().unwrap())
                .unwrap()
                .timestamp()
        };
        assert_eq!(at("expires") - at("created"), 15 * 60, "{row}");
    }
    let (status, _) = setup.server.get_json("/-/whoami", Some(&exchanged)).await;
    assert_eq!(status, StatusCode::OK);
    for row in rows {
        let revoked = client
            .delete(format!(
                "{}/api/v1/admin/tokens/{}",
                setup.server.url,
                row["id"].as_str().unwrap()
            ))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap();
        assert!(revoked.status().is_success(), "{}", revoked.status());
    }
    let (status, _) = setup.server.get_json("/-/whoami", Some(&exchanged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let removed = client
        .delete(format!("{url}/{id}"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let again = setup.issuer.token(json!({"environment": "production"}));
    let (status, body) = setup.exchange("@acme/new", &again).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// GitLab claims for `grp/sub/proj`'s `.gitlab-ci.yml`.
fn gitlab_claims() -> Value {
    json!({
        "repository": null, "workflow_ref": null, "run_id": null, "repository_visibility": null,
        "project_path": "grp/sub/proj",
        "namespace_path": "grp/sub",
        "project_visibility": "private",
        "ci_config_ref_uri": "gitlab.com/grp/sub/proj//.gitlab-ci.yml@refs/heads/main",
        "pipeline_id": "4242",
        "pipeline_source": "push",
    })
}

#[tokio::test]
async fn npm_publishes_from_gitlab_ci_a_stage_only_publisher_cannot_publish_and_rotated_keys_work()
{
    let setup = Setup::start().await;
    for name in ["gl-lib", "gl-staged"] {
        let dir = setup.npm.package(&Package::new(name, "1.0.0"));
        setup
            .npm
            .npm()
            .arg("publish")
            .current_dir(dir)
            .succeeds()
            .await;
    }
    setup
        .npm
        .npm()
        .args(["trust", "gitlab", "gl-lib", "--project", "grp/sub/proj"])
        .args(["--file", ".gitlab-ci.yml", "--allow-publish", "-y"])
        .succeeds()
        .await;
    setup
        .npm
        .npm()
        .args(["trust", "gitlab", "gl-staged", "--project", "grp/sub/proj"])
        .args(["--file", ".gitlab-ci.yml", "--allow-stage-publish", "-y"])
        .succeeds()
        .await;

    // GitLab CI (GITLAB_CI=true, NPM_ID_TOKEN as GitLab's id_tokens sets it).
    let token = setup.gitlab.token(gitlab_claims());
    let (published, output) = setup
        .ci_publish_in("GITLAB_CI", "gl-lib", "1.1.0", &token)
        .await;
    assert!(published, "{output}");
    let doc = setup.server.packument("gl-lib", &setup.alice).await;
    let identity = &doc["versions"]["1.1.0"]["trustedPublisher"];
    assert_eq!(identity["type"], "gitlab");
    assert_eq!(identity["repository"], "grp/sub/proj");
    assert_eq!(identity["workflow"], ".gitlab-ci.yml");
    assert_eq!(identity["run_id"], "4242");

    // A GitHub token is not a GitLab one, however its claims look.
    let (status, body) = setup
        .exchange("gl-lib", &setup.issuer.token(gitlab_claims()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no trusted publisher for gl-lib from github"),
        "{body}"
    );

    // createStagedPackage only: the exchange succeeds, but the token cannot publish.
    let (status, body) = setup
        .exchange("gl-staged", &setup.gitlab.token(gitlab_claims()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let robot = ClientEnv::new(&setup.server, Some(body["token"].as_str().unwrap()));
    let dir = robot.package(&Package::new("gl-staged", "1.1.0"));
    robot.npm().arg("publish").current_dir(dir).fails().await;
    assert_eq!(setup.versions("gl-staged").await, ["1.0.0"]);

    // The issuer rotates its key: once the cached key set may be refreshed, a token signed with
    // the new key is accepted.
    setup.gitlab.rotate("key-2");
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    let (published, output) = setup
        .ci_publish_in(
            "GITLAB_CI",
            "gl-lib",
            "1.2.0",
            &setup.gitlab.token(gitlab_claims()),
        )
        .await;
    assert!(published, "{output}");
}

#[tokio::test]
async fn the_audience_follows_the_public_url_and_an_unreachable_issuer_is_named() {
    let issuer = TestIssuer::start().await;
    let github_url = issuer.url.clone();
    let server = TestServer::start_with(move |config| {
        config.trust.github_issuer = github_url;
        config.trust.gitlab_issuer = "http://127.0.0.1:1".to_owned();
        config.public_url = Some("https://npm.example.test".to_owned());
    })
    .await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let alice = server.token("alice", "maintainer", &[]);
    let npm = ClientEnv::new(&server, Some(&alice));
    let dir = npm.package(&Package::new("pub-lib", "1.0.0"));
    npm.npm().arg("publish").current_dir(dir).succeeds().await;
    let client = reqwest::Client::new();
    let trust = client
        .post(format!("{}/-/package/pub-lib/trust", server.url))
        .bearer_auth(&alice)
        .json(
            &json!([{"type": "github", "claims": {"repository": "acme/lib",
            "workflow_ref": {"file": "release.yml"}}, "permissions": ["createPackage"]}]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(trust.status(), StatusCode::CREATED);
    let exchange = |token: String| {
        let client = client.clone();
        let url = format!(
            "{}/-/npm/v1/oidc/token/exchange/package/pub-lib",
            server.url
        );
        async move {
            let response = client.post(url).bearer_auth(token).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // The audience is the public URL's host, not the address the request came to.
    let (status, body) = exchange(issuer.token(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("npm:npm.example.test"),
        "{body}"
    );
    let (status, body) = exchange(issuer.token(json!({"aud": "npm:npm.example.test"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // An issuer whose documents cannot be fetched is named (502), not blamed on the token.
    let (status, body) = exchange(issuer.token(json!({"iss": "http://127.0.0.1:1"}))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("discovery document"),
        "{body}"
    );
    // No bearer at all.
    let response = client
        .post(format!(
            "{}/-/npm/v1/oidc/token/exchange/package/pub-lib",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
