//! Packument cache misses on the real server: each renders only the representation asked for
//! (form and encoding), byte for byte what any other read of the same data serves, on any Host,
//! after a restart, and never mixed with representations read before a write.

use reqwest::StatusCode;

use crate::support::packuments::{ABBREVIATED, publish, read};
use crate::support::server::TestServer;

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
            let gzip = read(&server, &token, name, "registry.test", accept, true).await;
            assert_eq!(gzip.status, StatusCode::OK);
            // `read` checks which are sent compressed: every document of `big` is.
            assert!(gzip.gzip || name == "p", "{name} {accept}");
            let plain = read(&server, &token, name, "registry.test", accept, false).await;
            assert_eq!(plain.status, StatusCode::OK);
            assert_eq!(gzip.plain, plain.plain);
            before.push((accept, plain, gzip));
        }

        server.restart().await;
        for (accept, plain, gzip) in &before {
            let again = read(&server, &token, name, "registry.test", accept, false).await;
            assert_eq!(&again, plain, "{accept}");
            let again = read(&server, &token, name, "registry.test", accept, true).await;
            assert_eq!(&again, gzip, "{accept}");

            // Another Host gets its own tarball URLs, and the ETag of exactly those bytes (which
            // `read` checks).
            let other = read(&server, &token, name, "mirror.test:8443", accept, false).await;
            assert_eq!(other.status, StatusCode::OK);
            let expected = String::from_utf8(plain.plain.clone())
                .unwrap()
                .replace("http://registry.test/", "http://mirror.test:8443/");
            assert_eq!(String::from_utf8(other.plain.clone()).unwrap(), expected);
            let other_gzip = read(&server, &token, name, "mirror.test:8443", accept, true).await;
            assert_eq!(other_gzip.plain, other.plain);
        }
    }
    let full = read(
        &server,
        &token,
        "p",
        "registry.test",
        "application/json",
        false,
    )
    .await;
    let doc: serde_json::Value = serde_json::from_slice(&full.plain).unwrap();
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
    let gzip = read(&server, &token, "q", "r.test", ABBREVIATED, true).await;
    assert_eq!(versions(&gzip.plain), ["1.0.0"]);
    let gzip = read(&server, &token, "q", "r.test", ABBREVIATED, true).await;
    assert_eq!(versions(&gzip.plain), ["1.0.0"]);
    assert_eq!(registry.cache_stats().packument_misses - misses, 1);

    // After a publish, the other form (a miss beside nothing) and the cached one (dropped by
    // the write) both show the new version.
    publish(&server, &token, "q", "1.1.0", 0).await;
    let full = read(&server, &token, "q", "r.test", "application/json", false).await;
    assert_eq!(versions(&full.plain), ["1.0.0", "1.1.0"]);
    // `read` checks the encoding and the ETag of what was sent.
    let gzip = read(&server, &token, "q", "r.test", ABBREVIATED, true).await;
    assert_eq!(versions(&gzip.plain), ["1.0.0", "1.1.0"]);
    let stats = registry.cache_stats();
    assert_eq!(stats.packument_misses - misses, 3);
    // Both representations in the package's one entry.
    assert_eq!(stats.entries, 1, "{stats:?}");
}
