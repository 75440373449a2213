//! The packument cache through the running server: bounded by `PACKR_CACHE_BYTES`, and keeping
//! the packages that are read often when a scan reads everything else once.

use reqwest::StatusCode;

use crate::support::publish_body::PublishBody;
use crate::support::server::TestServer;

const PACKAGES: usize = 200;
const HOT: usize = 20;
const CACHE_BYTES: usize = 256 * 1024;

async fn read(http: &reqwest::Client, server: &TestServer, token: &str, name: &str) {
    let response = http
        .get(format!("{}/{name}", server.url))
        .bearer_auth(token)
        .header("accept", "application/vnd.npm.install-v1+json")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET /{name}");
}

#[tokio::test]
async fn a_hot_set_stays_cached_through_a_scan_of_every_package() {
    let server = TestServer::start_with(|config| config.cache_bytes = CACHE_BYTES).await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..PACKAGES).map(|i| format!("cached-{i:03}")).collect();
    for name in &names {
        let body = PublishBody::new(name, "1.0.0");
        let response = http
            .put(format!("{}/{name}", server.url))
            .bearer_auth(&token)
            .json(&body.json())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "publish {name}");
    }
    let registry = server.registry();

    // Every package once (the cache fills), then the hot set, read often.
    for name in &names {
        read(&http, &server, &token, name).await;
    }
    let hot = &names[..HOT];
    for _ in 0..10 {
        for name in hot {
            read(&http, &server, &token, name).await;
        }
    }
    let before_scan = registry.cache_stats();
    assert!(
        before_scan.bytes <= CACHE_BYTES as u64,
        "the cache holds {before_scan:?}, over {CACHE_BYTES} bytes"
    );
    assert!(
        (before_scan.entries as usize) < PACKAGES,
        "the bound is too large for the test to mean anything: {before_scan:?}"
    );

    // A scan reads every other package once.
    for name in &names[HOT..] {
        read(&http, &server, &token, name).await;
    }
    let after_scan = registry.cache_stats();
    assert!(after_scan.bytes <= CACHE_BYTES as u64, "{after_scan:?}");

    // The hot set is still served from the cache: reading it renders (almost) nothing.
    for name in hot {
        read(&http, &server, &token, name).await;
    }
    let misses = registry.cache_stats().packument_misses - after_scan.packument_misses;
    assert!(
        misses <= 1,
        "{misses} of {HOT} hot packages were rendered again after the scan"
    );
}
