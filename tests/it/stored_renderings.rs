//! Stored packument renderings on the real server: once the renderer has stored a package's
//! documents, a miss serves them (on any Host, in any encoding, byte for byte what rendering
//! from the rows serves), and never once the package has changed since.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::packuments::{ABBREVIATED, Read, publish, read};
use crate::support::server::TestServer;

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

/// Every representation of each package on two Hosts, with what was asked.
async fn every_representation(
    server: &TestServer,
    token: &str,
    names: &[&str],
) -> Vec<(String, Read)> {
    let mut out = Vec::new();
    for name in names {
        for host in ["registry.test", "mirror.test:8443"] {
            for accept in ["application/json", ABBREVIATED] {
                for gzip in [true, false] {
                    let read = read(server, token, name, host, accept, gzip).await;
                    out.push((format!("{name} {host} {accept} gzip={gzip}"), read));
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

    // Without stored renderings, misses render from the rows. Not restarted: a start's sweep
    // would store them again while they are read; the renderer, idle now, waits for the reads
    // to pause.
    server.execute_sql("DELETE FROM renderings;").await;
    assert_eq!(server.registry().misses_from_rows(), 0);
    let from_rows = every_representation(&server, &token, &names).await;
    assert!(server.registry().misses_from_rows() > 0);
    for (what, read) in &from_rows {
        assert_eq!(read.status, StatusCode::OK, "{what}");
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
    let full = read(&server, &token, "p", "r.test", "application/json", false).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(description(&full.plain), "p at 1.0.0");
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
        let read = read(&server, &token, "p", "other.test", accept, false).await;
        assert_eq!(read.status, StatusCode::OK);
        let doc: Value = serde_json::from_slice(&read.plain).unwrap();
        assert_eq!(doc["dist-tags"]["beta"], "1.0.0", "{accept}");
        if accept == "application/json" {
            assert_eq!(description(&read.plain), "changed in the rows");
        }
    }
    assert_eq!(server.registry().misses_from_rows(), 2);

    // And the renderer stores the new rev's documents, which a restarted server then serves.
    until_rendered(&server).await;
    server.restart().await;
    let full = read(&server, &token, "p", "r.test", "application/json", false).await;
    assert_eq!(description(&full.plain), "changed in the rows");
    assert_eq!(server.registry().misses_from_rows(), 0);
}
