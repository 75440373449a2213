//! Stored packument renderings on the real server: once the renderer has stored a package's
//! documents, a miss serves them (on any Host, in any encoding, byte for byte what rendering
//! from the rows serves), and never once the package has changed since.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::publish_body::PublishBody;
use crate::support::server::TestServer;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// `(status, ETag, body bytes as sent)` of `GET /<name>`.
async fn read(
    server: &TestServer,
    token: &str,
    name: &str,
    host: &str,
    accept: &str,
    gzip: bool,
) -> (StatusCode, String, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(format!("{}/{}", server.url, name.replace('/', "%2f")))
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

async fn publish(server: &TestServer, token: &str, name: &str, version: &str, padding: usize) {
    let mut body = PublishBody::new(name, version).json();
    body["versions"][version]["description"] = json!(format!("{name} at {version}"));
    body["versions"][version]["padding"] = json!("x".repeat(padding));
    let published = reqwest::Client::new()
        .put(format!("{}/{}", server.url, name.replace('/', "%2f")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED, "{name}@{version}");
}

/// Waits until every package has both documents stored at its current rev.
async fn until_rendered(server: &TestServer) {
    let started = Instant::now();
    loop {
        let left = server.registry().unrendered(10).await.unwrap();
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still unrendered after 20 s: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every representation of each package on two Hosts: `(what, status, ETag, bytes)`.
async fn every_representation(
    server: &TestServer,
    token: &str,
    names: &[&str],
) -> Vec<(String, StatusCode, String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in names {
        for host in ["registry.test", "mirror.test:8443"] {
            for accept in ["application/json", ABBREVIATED] {
                for gzip in [true, false] {
                    let (status, etag, body) = read(server, token, name, host, accept, gzip).await;
                    out.push((
                        format!("{name} {host} {accept} gzip={gzip}"),
                        status,
                        etag,
                        body,
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn misses_serve_stored_renderings_byte_for_byte_as_rendering_from_rows_would() {
    let mut server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    for version in ["1.0.0", "1.1.0", "10.0.0-rc.1"] {
        publish(&server, &token, "p", version, 0).await;
    }
    publish(&server, &token, "@acme/q", "1.0.0", 0).await;
    // Documents past the size read and spliced on the request's own thread.
    for n in 0..40 {
        publish(&server, &token, "big", &format!("1.0.{n}"), 2_000).await;
    }
    let names = ["p", "@acme/q", "big"];
    until_rendered(&server).await;

    // Without stored renderings, every miss renders from the rows.
    server.execute_sql("DELETE FROM renderings;").await;
    server.restart().await;
    let from_rows = every_representation(&server, &token, &names).await;
    assert!(server.registry().misses_from_rows() > 0);
    for (what, status, _, _) in &from_rows {
        assert_eq!(*status, StatusCode::OK, "{what}");
    }

    // Those misses queued their packages: once stored, a restarted server serves every miss
    // from them, the same bytes and ETags.
    until_rendered(&server).await;
    server.restart().await;
    let stored = every_representation(&server, &token, &names).await;
    assert_eq!(server.registry().misses_from_rows(), 0);
    assert_eq!(stored.len(), from_rows.len());
    for (stored, rows) in stored.iter().zip(&from_rows) {
        assert_eq!(stored, rows, "{}", stored.0);
    }
}

#[tokio::test]
async fn a_stored_rendering_is_not_served_once_its_package_has_changed() {
    let mut server = TestServer::start().await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    publish(&server, &token, "p", "1.0.0", 0).await;
    until_rendered(&server).await;
    let description = |body: &[u8]| -> Value {
        let doc: Value = serde_json::from_slice(body).unwrap();
        doc["versions"]["1.0.0"]["description"].clone()
    };

    // The rows change behind the registry's back, the rev does not: the stored rendering is
    // what a miss serves.
    server
        .execute_sql(
            "UPDATE versions SET manifest = replace(manifest, 'p at 1.0.0', 'changed in the rows')
             WHERE package = 'p';",
        )
        .await;
    server.restart().await;
    let (status, _, body) = read(&server, &token, "p", "r.test", "application/json", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(description(&body), "p at 1.0.0");
    assert_eq!(server.registry().misses_from_rows(), 0);

    // A write moves the rev: the next miss of either form reads the rows, never the stored
    // documents of the rev before.
    let tagged = reqwest::Client::new()
        .put(format!("{}/-/package/p/dist-tags/beta", server.url))
        .bearer_auth(&token)
        .json(&json!("1.0.0"))
        .send()
        .await
        .unwrap();
    assert!(tagged.status().is_success(), "{}", tagged.status());
    for accept in ["application/json", ABBREVIATED] {
        let (status, _, body) = read(&server, &token, "p", "other.test", accept, false).await;
        assert_eq!(status, StatusCode::OK);
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["dist-tags"]["beta"], "1.0.0", "{accept}");
        if accept == "application/json" {
            assert_eq!(description(&body), "changed in the rows");
        }
    }
    assert_eq!(server.registry().misses_from_rows(), 2);

    // And the renderer stores the new rev's documents, which a restarted server then serves.
    until_rendered(&server).await;
    server.restart().await;
    let (_, _, body) = read(&server, &token, "p", "r.test", "application/json", false).await;
    assert_eq!(description(&body), "changed in the rows");
    assert_eq!(server.registry().misses_from_rows(), 0);
}
