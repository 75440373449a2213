//! Raw HTTP protocol tests: what the npm clients see on the wire, and malformed requests sent
//! as no client would, each of which must get a 4xx JSON error and leave nothing behind.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::on_each_storage;
use crate::support::publish_body::{PublishBody, tarball};
use crate::support::server::{Storage, TestServer};

struct Registry {
    server: TestServer,
    http: reqwest::Client,
    token: String,
}

impl Registry {
    async fn start() -> Self {
        Self::start_on(Storage::Fs).await
    }

    async fn start_on(storage: Storage) -> Self {
        let server = TestServer::start_on(storage).await;
        server.add_user("alice", "s3cret-pass", "maintainer");
        let token = server.token("alice", "maintainer", &[]);
        Self {
            server,
            http: reqwest::Client::new(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .put(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    async fn publish(&self, body: &PublishBody) -> reqwest::Response {
        let path = format!("/{}", body.name.replace('/', "%2f"));
        self.put(&path, &body.json()).await
    }
}

/// Asserts an npm-shaped JSON error and returns its message.
async fn error_of(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["code"].is_string(), "{body}");
    body["error"]
        .as_str()
        .expect("an `error` string")
        .to_owned()
}

on_each_storage!(a_published_package_is_served_in_both_forms_with_etags);
async fn a_published_package_is_served_in_both_forms_with_etags(storage: Storage) {
    let registry = Registry::start_on(storage).await;
    let body = PublishBody::new("@acme/widget", "1.0.0");
    assert_eq!(registry.publish(&body).await.status(), StatusCode::CREATED);

    let full = registry.get("/@acme%2fwidget").await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()["cache-control"], "private, no-cache");
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    let full = full.bytes().await.unwrap();
    let doc: Value = serde_json::from_slice(&full).unwrap();
    assert_eq!(doc["name"], "@acme/widget");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert_eq!(doc["readme"], "# hello");
    assert_eq!(doc["maintainers"][0]["name"], "alice");
    assert!(doc["time"]["1.0.0"].is_string());
    assert!(doc["_rev"].as_str().unwrap().starts_with("1-"));
    let version = &doc["versions"]["1.0.0"];
    assert_eq!(version["_npmUser"]["name"], "alice");
    assert_eq!(version["dist"]["integrity"], body.integrity());
    assert_eq!(version["dist"]["fileCount"], 2);
    assert!(
        version.get("_resolved").is_none(),
        "client bookkeeping is stripped"
    );
    let tarball_url = format!("{}/@acme/widget/-/widget-1.0.0.tgz", registry.server.url);
    assert_eq!(version["dist"]["tarball"], tarball_url);

    // All three spellings of a scoped name are one resource.
    for path in ["/@acme%2Fwidget", "/@acme/widget"] {
        let again: Value = registry.get(path).await.json().await.unwrap();
        assert_eq!(again, doc, "{path}");
    }

    let corgi = registry
        .http
        .get(registry.url("/@acme%2Fwidget"))
        .bearer_auth(&registry.token)
        .header(
            "accept",
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        corgi.headers()["content-type"],
        "application/vnd.npm.install-v1+json"
    );
    assert_ne!(corgi.headers()["etag"].to_str().unwrap(), etag);
    let corgi: Value = corgi.json().await.unwrap();
    assert!(corgi.get("readme").is_none());
    assert!(corgi["versions"]["1.0.0"].get("_npmUser").is_none());
    assert_eq!(corgi["versions"]["1.0.0"]["dist"]["tarball"], tarball_url);

    let revalidated = registry
        .http
        .get(registry.url("/@acme%2fwidget"))
        .bearer_auth(&registry.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    let gz = registry
        .http
        .get(registry.url("/@acme%2fwidget"))
        .bearer_auth(&registry.token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    // Compressed, unless so small that compressing would save no packet.
    if full.len() > packr::packages::packument::SMALL_DOCUMENT_BYTES {
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        assert_eq!(
            gz.headers()["etag"].to_str().unwrap(),
            format!("{}-gz\"", etag.trim_end_matches('"'))
        );
    } else {
        assert!(gz.headers().get("content-encoding").is_none());
        assert_eq!(gz.headers()["etag"].to_str().unwrap(), etag);
    }

    let tarball = registry.get("/@acme/widget/-/widget-1.0.0.tgz").await;
    assert_eq!(tarball.status(), StatusCode::OK);
    assert_eq!(
        tarball.headers()["content-length"],
        body.tarball.len().to_string().as_str()
    );
    assert!(
        tarball.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(tarball.headers().get("content-encoding").is_none());
    let tarball_etag = tarball.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        tarball.bytes().await.unwrap().as_ref(),
        body.tarball.as_slice()
    );
    let unchanged = registry
        .http
        .get(registry.url("/@acme/widget/-/widget-1.0.0.tgz"))
        .bearer_auth(&registry.token)
        .header("if-none-match", &tarball_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert!(
        unchanged.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    // yarn 4 fetches tarballs through the encoded name too.
    let encoded = registry.get("/@acme%2fwidget/-/widget-1.0.0.tgz").await;
    assert_eq!(encoded.status(), StatusCode::OK);
    let missing = registry.get("/@acme/widget/-/widget-9.9.9.tgz").await;
    error_of(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_new_version_changes_the_etag_and_moves_latest() {
    let registry = Registry::start().await;
    registry
        .publish(&PublishBody::new("left-pad", "1.0.0"))
        .await;
    let first = registry.get("/left-pad").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    registry
        .publish(&PublishBody::new("left-pad", "1.1.0"))
        .await;
    let mut beta = PublishBody::new("left-pad", "2.0.0-rc.1");
    beta.tag = "beta".into();
    assert_eq!(registry.publish(&beta).await.status(), StatusCode::CREATED);

    let second = registry
        .http
        .get(registry.url("/left-pad"))
        .bearer_auth(&registry.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.status(),
        StatusCode::OK,
        "a stale ETag gets the new document"
    );
    let doc: Value = second.json().await.unwrap();
    assert_eq!(
        doc["dist-tags"],
        json!({ "latest": "1.1.0", "beta": "2.0.0-rc.1" })
    );
    assert_eq!(doc["versions"].as_object().unwrap().len(), 3);

    let by_tag: Value = registry.get("/left-pad/beta").await.json().await.unwrap();
    assert_eq!(by_tag["version"], "2.0.0-rc.1");
}

#[tokio::test]
async fn reads_need_a_token_unless_anonymous_reads_are_on() {
    let registry = Registry::start().await;
    registry
        .publish(&PublishBody::new("private-thing", "1.0.0"))
        .await;
    let anonymous = reqwest::get(registry.url("/private-thing")).await.unwrap();
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("Bearer")
    );
    error_of(anonymous, StatusCode::UNAUTHORIZED).await;
    let forged = registry
        .http
        .get(registry.url("/private-thing"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    error_of(forged, StatusCode::UNAUTHORIZED).await;

    let open = TestServer::start_with(|config| config.anonymous_read = true).await;
    let response = reqwest::get(format!("{}/nothing-here", open.url))
        .await
        .unwrap();
    error_of(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn publishing_an_existing_version_is_refused_but_a_retry_of_the_same_bytes_succeeds() {
    let registry = Registry::start().await;
    let body = PublishBody::new("retry-me", "1.0.0");
    assert_eq!(registry.publish(&body).await.status(), StatusCode::CREATED);
    assert_eq!(registry.publish(&body).await.status(), StatusCode::OK);

    let package_json = json!({ "name": "retry-me", "version": "1.0.0" });
    let different = PublishBody::new("retry-me", "1.0.0").with_tarball(tarball(
        "package",
        &package_json,
        &[("other.js", "changed")],
    ));
    let message = error_of(registry.publish(&different).await, StatusCode::FORBIDDEN).await;
    assert_eq!(
        message,
        "You cannot publish over the previously published versions: 1.0.0."
    );
}

on_each_storage!(malformed_publishes_get_a_4xx_json_error_and_leave_nothing_behind);
async fn malformed_publishes_get_a_4xx_json_error_and_leave_nothing_behind(storage: Storage) {
    let registry = Registry::start_on(storage).await;

    let bad_json = registry
        .http
        .put(registry.url("/broken"))
        .bearer_auth(&registry.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let message = error_of(bad_json, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("not valid JSON"), "{message}");

    for bad_name in ["..%2fx", ".x", "Upper", "%2e%2e", "node_modules", "a%20b"] {
        let body = PublishBody::new(bad_name, "1.0.0");
        let response = registry.put(&format!("/{bad_name}"), &body.json()).await;
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{bad_name}: {status}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{bad_name}: {body}");
    }

    let bad_semver = PublishBody::new("semver-victim", "1.0");
    let message = error_of(registry.publish(&bad_semver).await, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("1.0"), "{message}");

    let mut wrong_integrity = PublishBody::new("integrity-victim", "1.0.0").json();
    wrong_integrity["versions"]["1.0.0"]["dist"]["integrity"] = json!(
        "sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
    );
    let message = error_of(
        registry.put("/integrity-victim", &wrong_integrity).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(message.contains("integrity"), "{message}");

    let confused = PublishBody::new("confused", "1.0.0").with_tarball(tarball(
        "package",
        &json!({ "name": "somebody-else", "version": "1.0.0" }),
        &[],
    ));
    let message = error_of(registry.publish(&confused).await, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("somebody-else"), "{message}");

    let not_a_tarball =
        PublishBody::new("garbage", "1.0.0").with_tarball(b"not gzip at all".to_vec());
    error_of(
        registry.publish(&not_a_tarball).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let mut no_attachment = PublishBody::new("bare", "1.0.0").json();
    no_attachment["_attachments"] = json!({});
    error_of(
        registry.put("/bare", &no_attachment).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let mut wrong_length = PublishBody::new("short", "1.0.0").json();
    wrong_length["_attachments"]["short-1.0.0.tgz"]["length"] = json!(3);
    error_of(
        registry.put("/short", &wrong_length).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let mut mismatched_url = PublishBody::new("one-name", "1.0.0").json();
    mismatched_url["name"] = json!("other-name");
    error_of(
        registry.put("/one-name", &mismatched_url).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    for name in [
        "semver-victim",
        "integrity-victim",
        "confused",
        "garbage",
        "bare",
        "short",
        "one-name",
        "broken",
    ] {
        let response = registry.get(&format!("/{name}")).await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{name} must not exist"
        );
    }
    let stored = registry.server.stored_blobs().await;
    assert!(stored.is_empty(), "no tarball may be stored: {stored:?}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_json() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 64 * 1024).await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let response = reqwest::Client::new()
        .put(format!("{}/huge", server.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    let message = error_of(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(message.contains("too large"), "{message}");
}

on_each_storage!(a_megabyte_tarball_publishes_and_downloads_byte_for_byte);
async fn a_megabyte_tarball_publishes_and_downloads_byte_for_byte(storage: Storage) {
    use sha2::{Digest, Sha512};

    let registry = Registry::start_on(storage).await;
    // 2 MiB of hex from a hash chain: the tarball stays over 1 MiB, past the in-memory tarball
    // cache and over several read chunks, and the JSON body is parsed off the async threads.
    let filler: String = (0u32..16_384)
        .map(|i| hex::encode(Sha512::digest(i.to_le_bytes())))
        .collect();
    let package_json = json!({ "name": "bulky", "version": "1.0.0" });
    let bytes = tarball("package", &package_json, &[("data.txt", &filler)]);
    assert!(bytes.len() > 1024 * 1024, "{}", bytes.len());
    let body = PublishBody::new("bulky", "1.0.0").with_tarball(bytes.clone());
    assert_eq!(registry.publish(&body).await.status(), StatusCode::CREATED);

    let download = registry.get("/bulky/-/bulky-1.0.0.tgz").await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let doc = registry.server.packument("bulky", &registry.token).await;
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["integrity"],
        body.integrity()
    );
}

on_each_storage!(sixteen_concurrent_publishes_of_one_package_all_land);
async fn sixteen_concurrent_publishes_of_one_package_all_land(storage: Storage) {
    let registry = Registry::start_on(storage).await;
    let publishes = (0..16).map(|i| {
        let body = PublishBody::new("busy", &format!("1.0.{i}"));
        let registry = &registry;
        async move { registry.publish(&body).await.status() }
    });
    let statuses = futures_util::future::join_all(publishes).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    let doc: Value = registry.get("/busy").await.json().await.unwrap();
    assert_eq!(doc["versions"].as_object().unwrap().len(), 16);
    assert_eq!(doc["maintainers"].as_array().unwrap().len(), 1);
    assert_eq!(registry.server.stored_blobs().await.len(), 16);
}

#[tokio::test]
async fn a_publish_while_s3_is_down_gets_503_with_retry_after_and_leaves_no_version() {
    let mut registry = Registry::start_on(Storage::S3).await;
    let published = PublishBody::new("steady", "1.0.0");
    assert_eq!(
        registry.publish(&published).await.status(),
        StatusCode::CREATED
    );
    registry.server.s3.as_mut().unwrap().stop();

    let response = registry
        .publish(&PublishBody::new("stranded", "1.0.0"))
        .await;
    assert_eq!(response.headers()["retry-after"], "5");
    let message = error_of(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("unavailable"), "{message}");
    let next = registry.publish(&PublishBody::new("steady", "1.1.0")).await;
    error_of(next, StatusCode::SERVICE_UNAVAILABLE).await;

    error_of(registry.get("/stranded").await, StatusCode::NOT_FOUND).await;
    let doc: Value = registry.get("/steady").await.json().await.unwrap();
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1, "{doc}");
    let tarball = registry.get("/steady/-/steady-1.0.0.tgz").await;
    assert_eq!(tarball.headers()["retry-after"], "5");
    error_of(tarball, StatusCode::SERVICE_UNAVAILABLE).await;
    let ready = reqwest::get(registry.url("/-/health/ready")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["blob_store"],
        "unavailable"
    );
}

#[tokio::test]
async fn the_latest_tag_cannot_be_removed_and_tags_must_name_real_versions() {
    let registry = Registry::start().await;
    registry.publish(&PublishBody::new("tagged", "1.0.0")).await;
    let response = registry
        .http
        .delete(registry.url("/-/package/tagged/dist-tags/latest"))
        .bearer_auth(&registry.token)
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::BAD_REQUEST).await;
    let missing = registry
        .put("/-/package/tagged/dist-tags/next", &json!("9.9.9"))
        .await;
    error_of(missing, StatusCode::NOT_FOUND).await;
    let range = registry
        .put("/-/package/tagged/dist-tags/%5E1.0.0", &json!("1.0.0"))
        .await;
    error_of(range, StatusCode::BAD_REQUEST).await;
    let ok = registry
        .put("/-/package/tagged/dist-tags/stable", &json!("1.0.0"))
        .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["ok"], true);
    let tags: Value = registry
        .get("/-/package/tagged/dist-tags")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags, json!({ "latest": "1.0.0", "stable": "1.0.0" }));
}

#[tokio::test]
async fn password_login_returns_a_token_that_identifies_the_user() {
    let registry = Registry::start().await;
    let http = &registry.http;
    let response = http
        .post(registry.url("/-/v1/login"))
        .json(&json!({ "name": "alice", "password": "s3cret-pass" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    for claim in ["user_id", "permissions", "scopes", "exp", "iat", "jti"] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }
    let thirty_days = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(thirty_days, 30 * 86_400);

    let whoami: Value = http
        .get(registry.url("/-/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami, json!({ "username": "alice" }));

    let wrong = http
        .post(registry.url("/-/v1/login"))
        .json(&json!({ "name": "alice", "password": "nope" }))
        .send()
        .await
        .unwrap();
    error_of(wrong, StatusCode::UNAUTHORIZED).await;

    let logout = http
        .delete(registry.url(&format!("/-/user/token/{token}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let after = http
        .get(registry.url("/-/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    error_of(after, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_scoped_ci_token_may_only_publish_under_its_scope() {
    let registry = Registry::start().await;
    registry.server.add_user("ci", "ci-pass-123", "maintainer");
    let ci = registry.server.token("ci", "ci-publish", &["@acme"]);
    let publish = |body: PublishBody| {
        let http = registry.http.clone();
        let url = registry.url(&format!("/{}", body.name.replace('/', "%2f")));
        let ci = ci.clone();
        async move {
            http.put(url)
                .bearer_auth(ci)
                .json(&body.json())
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        publish(PublishBody::new("@acme/ok", "1.0.0"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let message = error_of(
        publish(PublishBody::new("@other/no", "1.0.0")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        message.contains("@acme") && message.contains("@other"),
        "{message}"
    );
    let message = error_of(
        publish(PublishBody::new("unscoped", "1.0.0")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(message.contains("@acme"), "{message}");
}

#[tokio::test]
async fn health_answers_when_ready() {
    let registry = Registry::start().await;
    for path in ["/-/health", "/-/health/live", "/-/health/ready"] {
        let response = reqwest::get(registry.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
    }
    let ping = registry.get("/-/ping").await;
    assert_eq!(ping.status(), StatusCode::OK);
    let unknown = registry.get("/-/no/such/route").await;
    error_of(unknown, StatusCode::NOT_FOUND).await;
}
