//! Packument cache misses on the real server: each renders only the representation asked for
//! (form and encoding), byte for byte what any other read of the same data serves, on any Host,
//! after a restart, and never mixed with representations read before a write.

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::publish_body::PublishBody;
use crate::support::server::TestServer;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// `(status, ETag, body bytes as sent)` of `GET /<name>` on `host`.
async fn read(
    server: &TestServer,
    token: &str,
    name: &str,
    host: &str,
    accept: &str,
    gzip: bool,
) -> (StatusCode, String, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(format!("{}/{name}", server.url))
        .bearer_auth(token)
        .header("host", host)
        .header("accept", accept);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, etag, response.bytes().await.unwrap().to_vec())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn etag_of(plain: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(plain)[..16]))
}

async fn publish(server: &TestServer, token: &str, name: &str, version: &str, extra: usize) {
    let mut body = PublishBody::new(name, version).json();
    body["versions"][version]["description"] = json!(format!("{name} at {version}"));
    // Padding makes a package's stored manifests as big as a test needs.
    body["versions"][version]["padding"] = json!("x".repeat(extra));
    let published = reqwest::Client::new()
        .put(format!("{}/{name}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED, "{name}@{version}");
}

#[tokio::test]
async fn packument_misses_serve_the_same_bytes_in_every_form_after_a_restart_and_on_every_host() {
    let mut server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    for version in ["1.0.0", "1.1.0", "10.0.0-rc.1"] {
        publish(&server, &token, "p", version, 0).await;
    }
    // Past the size rendered on the request's own thread: rendered on a blocking thread.
    for n in 0..12 {
        publish(&server, &token, "big", &format!("1.0.{n}"), 2_000).await;
    }

    for name in ["p", "big"] {
        let mut before = Vec::new();
        for accept in ["application/json", ABBREVIATED] {
            // Gzip first: its miss renders the gzip representation alone.
            let (status, gzip_etag, gzip) =
                read(&server, &token, name, "registry.test", accept, true).await;
            assert_eq!(status, StatusCode::OK);
            let (status, etag, plain) =
                read(&server, &token, name, "registry.test", accept, false).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(etag, etag_of(&plain));
            assert_eq!(gunzip(&gzip), plain);
            assert_eq!(gzip_etag, format!("{}-gz\"", etag.trim_end_matches('"')));
            before.push((accept, etag, gzip_etag, plain));
        }

        server.restart().await;
        for (accept, etag, gzip_etag, plain) in &before {
            let again = read(&server, &token, name, "registry.test", accept, false).await;
            assert_eq!(
                again,
                (StatusCode::OK, etag.clone(), plain.clone()),
                "{accept}"
            );
            let (_, again_gzip_etag, gzip) =
                read(&server, &token, name, "registry.test", accept, true).await;
            assert_eq!(&again_gzip_etag, gzip_etag);
            assert_eq!(&gunzip(&gzip), plain);

            // Another Host gets its own tarball URLs, and the ETag of exactly those bytes.
            let (status, other_etag, other) =
                read(&server, &token, name, "mirror.test:8443", accept, false).await;
            assert_eq!(status, StatusCode::OK);
            let expected = String::from_utf8(plain.clone())
                .unwrap()
                .replace("http://registry.test/", "http://mirror.test:8443/");
            assert_eq!(String::from_utf8(other.clone()).unwrap(), expected);
            assert_eq!(other_etag, etag_of(&other));
            let (_, _, other_gzip) =
                read(&server, &token, name, "mirror.test:8443", accept, true).await;
            assert_eq!(gunzip(&other_gzip), other);
        }
    }
    let (_, _, full) = read(
        &server,
        &token,
        "p",
        "registry.test",
        "application/json",
        false,
    )
    .await;
    let doc: serde_json::Value = serde_json::from_slice(&full).unwrap();
    assert_eq!(
        doc["versions"]["10.0.0-rc.1"]["dist"]["tarball"],
        "http://registry.test/p/-/p-10.0.0-rc.1.tgz"
    );
    assert_eq!(doc["description"], "p at 10.0.0-rc.1");
}

#[tokio::test]
async fn packument_representations_read_before_a_publish_are_not_served_after_it() {
    let server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    publish(&server, &token, "q", "1.0.0", 0).await;
    let registry = server.registry();
    let versions = |plain: &[u8]| {
        let doc: serde_json::Value = serde_json::from_slice(plain).unwrap();
        let mut found: Vec<String> = doc["versions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        found.sort();
        found
    };

    // One form cached; each miss renders one representation.
    let misses = registry.cache_stats().packument_misses;
    let (_, _, gzip) = read(&server, &token, "q", "r.test", ABBREVIATED, true).await;
    assert_eq!(versions(&gunzip(&gzip)), ["1.0.0"]);
    let (_, _, gzip) = read(&server, &token, "q", "r.test", ABBREVIATED, true).await;
    assert_eq!(versions(&gunzip(&gzip)), ["1.0.0"]);
    assert_eq!(registry.cache_stats().packument_misses - misses, 1);

    // After a publish, the other form (a miss beside nothing) and the cached one (dropped by
    // the write) both show the new version.
    publish(&server, &token, "q", "1.1.0", 0).await;
    let (_, _, full) = read(&server, &token, "q", "r.test", "application/json", false).await;
    assert_eq!(versions(&full), ["1.0.0", "1.1.0"]);
    let (_, etag, gzip) = read(&server, &token, "q", "r.test", ABBREVIATED, true).await;
    let plain = gunzip(&gzip);
    assert_eq!(versions(&plain), ["1.0.0", "1.1.0"]);
    assert_eq!(
        etag,
        format!("{}-gz\"", etag_of(&plain).trim_end_matches('"'))
    );
    let stats = registry.cache_stats();
    assert_eq!(stats.packument_misses - misses, 3);
    // Both representations in the package's one entry.
    assert_eq!(stats.entries, 1, "{stats:?}");
}
