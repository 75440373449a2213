//! Read replicas: servers on a PostgreSQL primary with a real streaming replica of it
//! (`pg_basebackup -R`). Package reads are served from the replica, yet a package changed while
//! the replica lags (replay paused) is read fresh from the primary, on the instance that wrote it
//! and on another; a stopped or too-late replica is skipped; `/-/health` shows the databases.
//!
//! To tell where a read was served from, a version is deprecated by SQL on the primary alone,
//! with no notification to any instance: a packument without the deprecation came from the
//! paused replica, one with it from the primary.

use std::time::{Duration, Instant};

use packr::config::ReplicaSettings;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::postgres::{ReplicaGuard, connect, replica};
use crate::support::publish_body::PublishBody;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{Metadata, Storage, TestServer, store_env};

/// The deprecation only the primary holds.
const PRIMARY_ONLY: &str = "written on the primary alone";

/// A server on a fresh database of the test cluster with `replica` as its read replica.
async fn server_with_replica(
    replica: &ReplicaGuard,
    max_lag: Duration,
    region: Option<&str>,
) -> TestServer {
    TestServer::start_with_stores(Metadata::Postgres, Storage::Fs, |config| {
        config.replicas = ReplicaSettings {
            urls: vec![replica.url(&database_name(config)).into()],
            max_lag,
        };
        config.region = region.map(str::to_owned);
    })
    .await
}

/// Another server on `first`'s database and secrets, with the same replica.
async fn second_instance(first: &TestServer, replica: &ReplicaGuard) -> TestServer {
    let url = store_env(&first.data_dir)
        .into_iter()
        .find(|(key, _)| key == "PACKR_DATABASE_URL")
        .map(|(_, value)| value)
        .expect("the first server's database");
    let secrets = first.data_dir.join("mounted-secrets");
    TestServer::start_with_stores(Metadata::Postgres, Storage::Fs, |config| {
        config.database_url = Some(url.clone().into());
        config.secrets = packr::auth::secrets::SecretSource {
            dir: Some(secrets),
            generate_in: None,
        };
        config.replicas = ReplicaSettings {
            urls: vec![replica.url(&database_name(config)).into()],
            max_lag: Duration::from_secs(60),
        };
    })
    .await
}

fn database_name(config: &packr::config::Config) -> String {
    use secrecy::ExposeSecret;
    let url = config.database_url.as_ref().expect("a PostgreSQL server");
    let url = url.expose_secret();
    url.rsplit('/').next().unwrap().to_owned()
}

fn primary_url(server: &TestServer) -> String {
    store_env(&server.data_dir)
        .into_iter()
        .find(|(key, _)| key == "PACKR_DATABASE_URL")
        .map(|(_, value)| value)
        .unwrap()
}

async fn publish(server: &TestServer, token: &str, name: &str, version: &str) {
    let body = PublishBody::new(name, version);
    let response = reqwest::Client::new()
        .put(format!("{}/{name}", server.url))
        .bearer_auth(token)
        .json(&body.json())
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "publish {name}@{version}: {}",
        response.text().await.unwrap()
    );
}

/// Deprecates every version of `name` by SQL on the primary, telling no instance; the rev
/// moves, as with a deprecation through the store (so a stored rendering is not served).
async fn deprecate_on_the_primary_alone(server: &TestServer, name: &str) {
    let primary = connect(&primary_url(server)).await;
    let changed = primary
        .execute(
            "UPDATE versions SET deprecated = $2 WHERE package = $1",
            &[&name, &PRIMARY_ONLY],
        )
        .await
        .unwrap();
    assert!(changed > 0, "no version of {name} to deprecate");
    primary
        .execute(
            "UPDATE packages SET rev = rev + 1 WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap();
}

/// Whether the packument's `version` carries the primary-only deprecation.
fn has_primary_only_mark(packument: &Value, version: &str) -> bool {
    packument["versions"][version]["deprecated"] == PRIMARY_ONLY
}

/// The health report's replica entry.
async fn replica_health(server: &TestServer) -> Value {
    let (status, health) = server.get_json("/-/health", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    health["databases"][1].clone()
}

/// Waits until `server`'s health report shows the replica as `condition` says, returning it.
async fn until_replica(
    server: &TestServer,
    what: &str,
    condition: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let replica = replica_health(server).await;
        if condition(&replica) {
            return replica;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the replica never became {what}: {replica}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the replica has replayed everything written so far and every server's poller
/// has seen that (a few polls of ~100 ms).
async fn settle(replica: &ReplicaGuard, servers: &[&TestServer]) {
    replica.catch_up().await;
    for server in servers {
        until_replica(server, "in use", |r| r["in_use"] == true).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn reads_come_from_the_replica_and_a_package_changed_while_it_lags_is_read_fresh() {
    let replica = replica().await;
    let writer = server_with_replica(&replica, Duration::from_secs(60), None).await;
    let reader = second_instance(&writer, &replica).await;
    writer.add_user("alice", "s3cret-pass", "maintainer");
    let token = writer.token("alice", "maintainer", &[]);
    publish(&writer, &token, "left", "1.0.0").await;
    publish(&writer, &token, "right", "1.0.0").await;
    settle(&replica, &[&writer, &reader]).await;

    replica.pause_replay().await;
    deprecate_on_the_primary_alone(&writer, "left").await;
    deprecate_on_the_primary_alone(&writer, "right").await;

    // Neither instance has read these packages yet: what they serve is what the replica holds.
    let left = writer.packument("left", &token).await;
    assert!(
        !has_primary_only_mark(&left, "1.0.0"),
        "the writer read `left` from the replica: {left}"
    );
    let right = reader.packument("right", &token).await;
    assert!(
        !has_primary_only_mark(&right, "1.0.0"),
        "the other instance read `right` from the replica: {right}"
    );

    // A write while the replica stands still: the writer reads its own write back at once.
    publish(&writer, &token, "left", "1.1.0").await;
    let left = writer.packument("left", &token).await;
    assert_eq!(left["dist-tags"]["latest"], "1.1.0", "{left}");
    assert!(
        has_primary_only_mark(&left, "1.0.0"),
        "read from the primary: {left}"
    );
    let (status, _) = writer
        .get_json("/left/-/left-1.1.0.tgz", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "the new tarball is found");

    // The other instance, which holds `right` as the replica had it, hears of a write to it and
    // reads it from the primary.
    publish(&writer, &token, "right", "1.1.0").await;
    let started = Instant::now();
    let right = loop {
        let right = reader.packument("right", &token).await;
        if right["dist-tags"]["latest"] == "1.1.0" || started.elapsed() > Duration::from_secs(2) {
            break right;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(right["dist-tags"]["latest"], "1.1.0", "{right}");
    assert!(
        has_primary_only_mark(&right, "1.0.0"),
        "read from the primary: {right}"
    );
    // A package first published while the replica lags is found as well.
    publish(&writer, &token, "fresh", "1.0.0").await;
    let started = Instant::now();
    loop {
        let (status, body) = reader.get_json("/fresh", Some(&token)).await;
        if status == StatusCode::OK {
            assert_eq!(body["dist-tags"]["latest"], "1.0.0");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The replica still holds the old `left` and `right`: the fresh reads did not come from it.
    let on_replica = connect(&replica.url(&database_name_of(&writer))).await;
    let versions: i64 = on_replica
        .query_one(
            "SELECT count(*) FROM versions WHERE package IN ('left', 'right')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 2, "the replica did not replay the new versions");
    replica.resume_replay().await;
}

fn database_name_of(server: &TestServer) -> String {
    primary_url(server).rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_stopped_replica_is_skipped_and_reads_keep_working() {
    let replica = replica().await;
    let server = server_with_replica(&replica, Duration::from_secs(60), None).await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    publish(&server, &token, "steady", "1.0.0").await;
    publish(&server, &token, "other", "1.0.0").await;
    settle(&replica, &[&server]).await;

    replica.stop();
    // Read at once, before a poll noticed: the failed replica read is retried on the primary.
    let steady = server.packument("steady", &token).await;
    assert_eq!(steady["dist-tags"]["latest"], "1.0.0");
    let down = until_replica(&server, "unreachable", |r| r["reachable"] == false).await;
    assert_eq!(down["in_use"], false, "{down}");
    assert!(
        down["problem"].as_str().unwrap().contains("unreachable"),
        "{down}"
    );
    let (status, ready) = server.get_json("/-/health/ready", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a replica down leaves the instance ready: {ready}"
    );
    let other = server.packument("other", &token).await;
    assert_eq!(other["dist-tags"]["latest"], "1.0.0");
    publish(&server, &token, "steady", "1.1.0").await;
    let steady = server.packument("steady", &token).await;
    assert_eq!(steady["dist-tags"]["latest"], "1.1.0");

    // Back up, it is used again.
    replica.start().expect("restarting the replica");
    let up = until_replica(&server, "in use again", |r| r["in_use"] == true).await;
    assert_eq!(up["reachable"], true, "{up}");
}

#[tokio::test]
async fn health_shows_the_region_and_databases_and_a_replica_too_far_behind_is_skipped() {
    let replica = replica().await;
    let server = server_with_replica(&replica, Duration::from_secs(1), Some("eu-test")).await;
    server.add_user("alice", "s3cret-pass", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    publish(&server, &token, "late", "1.0.0").await;
    settle(&replica, &[&server]).await;

    let (status, health) = server.get_json("/-/health", None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["region"], "eu-test");
    let primary = &health["databases"][0];
    assert_eq!(primary["role"], "primary", "{health}");
    assert_eq!(primary["kind"], "postgres", "{health}");
    assert_eq!(primary["reachable"], true, "{health}");
    let standby = &health["databases"][1];
    assert_eq!(standby["role"], "replica", "{health}");
    assert_eq!(standby["reachable"], true, "{health}");
    assert_eq!(standby["in_use"], true, "{health}");
    assert!(standby["lag_ms"].as_u64().unwrap() < 1000, "{health}");
    assert!(standby["problem"].is_null(), "{health}");
    assert!(
        !health.to_string().contains("127.0.0.1"),
        "no addresses on the public report: {health}"
    );

    // Replay paused while the primary moves on: once it is more than 1 s behind, it is skipped.
    replica.pause_replay().await;
    deprecate_on_the_primary_alone(&server, "late").await;
    let behind = until_replica(&server, "skipped", |r| r["in_use"] == false).await;
    assert_eq!(behind["reachable"], true, "{behind}");
    assert!(behind["lag_ms"].as_u64().unwrap() >= 1000, "{behind}");
    assert!(
        behind["problem"]
            .as_str()
            .unwrap()
            .contains("PACKR_REPLICA_MAX_LAG"),
        "{behind}"
    );
    let (status, _) = server.get_json("/-/health/ready", None).await;
    assert_eq!(status, StatusCode::OK);
    // The deprecation no instance was told of is seen: the read went to the primary.
    let late = server.packument("late", &token).await;
    assert!(has_primary_only_mark(&late, "1.0.0"), "{late}");

    replica.resume_replay().await;
    let back = until_replica(&server, "in use again", |r| r["in_use"] == true).await;
    assert!(back["lag_ms"].as_u64().unwrap() < 1000, "{back}");
}

#[tokio::test]
async fn packr_serve_reads_the_replica_settings_from_its_environment_and_never_logs_a_password() {
    let replica = replica().await;
    let database = crate::support::postgres::fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    // Trust authentication never asks for the password, so a made-up one is fine.
    let with_password = |url: &str| url.replacen("postgres@", "postgres:hunter2@", 1);
    let urls = format!(
        "{},{}",
        with_password(&replica.url(&database.name)),
        with_password(&format!(
            "postgres://postgres@127.0.0.1:1/{}",
            database.name
        ))
    );
    let serve = ServeProcess::start(
        data.path(),
        "serve.log",
        &[
            ("PACKR_DATABASE_URL", &with_password(&database.url)),
            ("PACKR_ALLOW_LOCAL_BLOBS", "true"),
            ("PACKR_DATABASE_REPLICA_URL", &urls),
            ("PACKR_REPLICA_MAX_LAG", "3s"),
            ("PACKR_REGION", "eu-west"),
            ("RUST_LOG", "info,packr=debug"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let health = loop {
        let health: Value = http
            .get(serve.url("/-/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["databases"][1]["in_use"] == true {
            break health;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the replica was never used: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health["region"], "eu-west", "{health}");
    assert_eq!(health["databases"].as_array().unwrap().len(), 3, "{health}");
    let down = &health["databases"][2];
    assert_eq!(down["role"], "replica", "{health}");
    assert_eq!(down["reachable"], false, "{health}");
    assert!(
        down["problem"].as_str().unwrap().contains("unreachable"),
        "{health}"
    );
    let ready = http.get(serve.url("/-/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let log = serve.log();
    assert!(log.contains("metadata on PostgreSQL"), "{log}");
    assert!(
        log.contains("replica skipped") && log.contains("127.0.0.1:1/"),
        "the unreachable replica is named in the log: {log}"
    );
    assert!(!log.contains("hunter2"), "{log}");
    assert!(!health.to_string().contains("hunter2"), "{health}");
}
