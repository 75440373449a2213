//! Packument cache misses on the real server: after a restart (an empty cache) every packument
//! comes from the rendering the store keeps, byte for byte what was served before, on any Host.

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::publish_body::PublishBody;
use crate::support::server::TestServer;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// `(status, ETag, body bytes as sent)` of `GET /p` on `host`.
async fn read(
    server: &TestServer,
    token: &str,
    host: &str,
    accept: &str,
    gzip: bool,
) -> (StatusCode, String, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(format!("{}/p", server.url))
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

#[tokio::test]
async fn after_a_restart_packuments_come_back_byte_identical_on_every_host() {
    let mut server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let http = reqwest::Client::new();
    for version in ["1.0.0", "1.1.0", "10.0.0-rc.1"] {
        let mut body = PublishBody::new("p", version).json();
        body["versions"][version]["description"] = json!(format!("p at {version}"));
        let published = http
            .put(format!("{}/p", server.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(published.status(), StatusCode::CREATED);
    }

    let mut before = Vec::new();
    for accept in ["application/json", ABBREVIATED] {
        let (status, etag, plain) = read(&server, &token, "registry.test", accept, false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(etag, etag_of(&plain));
        let (_, gzip_etag, gzip) = read(&server, &token, "registry.test", accept, true).await;
        assert_eq!(gunzip(&gzip), plain);
        assert_eq!(gzip_etag, format!("{}-gz\"", etag.trim_end_matches('"')));
        before.push((accept, etag, gzip_etag, plain));
    }

    server.restart().await;
    for (accept, etag, gzip_etag, plain) in &before {
        let again = read(&server, &token, "registry.test", accept, false).await;
        assert_eq!(
            again,
            (StatusCode::OK, etag.clone(), plain.clone()),
            "{accept}"
        );
        let (_, again_gz_etag, gzip) = read(&server, &token, "registry.test", accept, true).await;
        assert_eq!(&again_gz_etag, gzip_etag);
        assert_eq!(&gunzip(&gzip), plain);

        // Another Host gets its own tarball URLs, and the ETag of exactly those bytes.
        let (status, other_etag, other) =
            read(&server, &token, "mirror.test:8443", accept, false).await;
        assert_eq!(status, StatusCode::OK);
        let expected = String::from_utf8(plain.clone())
            .unwrap()
            .replace("http://registry.test/", "http://mirror.test:8443/");
        assert_eq!(String::from_utf8(other.clone()).unwrap(), expected);
        assert_eq!(other_etag, etag_of(&other));
        let (_, _, other_gzip) = read(&server, &token, "mirror.test:8443", accept, true).await;
        assert_eq!(gunzip(&other_gzip), other);
    }
    let (_, _, full) = read(&server, &token, "registry.test", "application/json", false).await;
    let doc: serde_json::Value = serde_json::from_slice(&full).unwrap();
    assert_eq!(
        doc["versions"]["10.0.0-rc.1"]["dist"]["tarball"],
        "http://registry.test/p/-/p-10.0.0-rc.1.tgz"
    );
    assert_eq!(doc["description"], "p at 10.0.0-rc.1");
}

#[tokio::test]
async fn a_big_package_changed_since_its_last_rendering_is_served_current_to_concurrent_misses() {
    let mut server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let http = reqwest::Client::new();
    let url = server.url.clone();
    let publish = |version: String| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let body = PublishBody::new("p", &version).json();
            let published = http
                .put(format!("{url}/p"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(published.status(), StatusCode::CREATED, "{version}");
        }
    };
    // Past the size whose writes render it: its rendering is made by its first miss.
    let count = packr::store::renderings::RENDER_IN_WRITE_VERSIONS + 2;
    for n in 0..count {
        publish(format!("1.0.{n}")).await;
    }
    server.restart().await;

    let reads: Vec<_> = (0..32)
        .map(|_| {
            let (server_url, token) = (server.url.clone(), token.clone());
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .get(format!("{server_url}/p"))
                    .bearer_auth(&token)
                    .header("host", "registry.test")
                    .header("accept", ABBREVIATED)
                    .header("accept-encoding", "gzip")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let etag = response.headers()["etag"].to_str().unwrap().to_owned();
                (etag, gunzip(&response.bytes().await.unwrap()))
            })
        })
        .collect();
    let mut seen = Vec::new();
    for read in reads {
        seen.push(read.await.unwrap());
    }
    let (etag, plain) = seen[0].clone();
    assert!(seen.iter().all(|s| *s == (etag.clone(), plain.clone())));
    assert_eq!(
        etag,
        format!("{}-gz\"", etag_of(&plain).trim_end_matches('"'))
    );
    let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(doc["versions"].as_object().unwrap().len() as i64, count);

    // A publish leaves the stored rendering stale: the next miss serves the new version.
    publish("2.0.0".into()).await;
    server.restart().await;
    let (status, etag, plain) = read(&server, &token, "registry.test", ABBREVIATED, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(etag, etag_of(&plain));
    let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "2.0.0");
    assert_eq!(
        doc["versions"]["2.0.0"]["dist"]["tarball"],
        "http://registry.test/p/-/p-2.0.0.tgz"
    );
}
