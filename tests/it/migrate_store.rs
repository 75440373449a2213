//! `packr migrate-store`: a registry that lived on SQLite and files moves to PostgreSQL and S3
//! with every row and every tarball, can be run again, and refuses to call a damaged copy done.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::support::postgres::{TestDatabase, fresh_database};
use crate::support::publish_body::PublishBody;
use crate::support::s3::S3Server;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{TestServer, package_path, packr_binary};

/// A registry with something in every table: users and tokens, packages with tags, a
/// deprecation and a tombstone, an org with a team and a grant, a webhook with deliveries, an
/// advisory, and the audit log of it all.
async fn populated_registry() -> (TestServer, String) {
    let server = TestServer::start_with(|config| {
        config.webhook_allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        config.public_url = Some(PUBLIC_URL.to_owned());
    })
    .await;
    server.add_user("alice", "alice-password-1", "maintainer");
    server.add_user("root", "root-password-1", "admin");
    let alice = server.token("alice", "maintainer", &[]);
    let root = server.token("root", "admin", &[]);
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, token: &str, body: Value| {
        let request = http
            .request(method, format!("{}{path}", server.url))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    for (name, version) in [
        ("left-pad", "1.0.0"),
        ("left-pad", "1.1.0"),
        ("right-pad", "1.0.0"),
        ("@acme/widget", "2.0.0"),
    ] {
        let token = if name.starts_with("@acme") {
            &root
        } else {
            &alice
        };
        let body = PublishBody::new(name, version).json();
        let (status, answer) = send(reqwest::Method::PUT, &package_path(name), token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{name}@{version}: {answer}");
    }
    let (status, answer) = send(
        reqwest::Method::PUT,
        "/-/package/left-pad/dist-tags/beta",
        &alice,
        json!("1.0.0"),
    )
    .await;
    assert!(status.is_success(), "{answer}");

    // A whole-package unpublish leaves a tombstone.
    let (_, document) = send(
        reqwest::Method::GET,
        "/right-pad?write=true",
        &alice,
        Value::Null,
    )
    .await;
    let rev = document["_rev"].as_str().unwrap().to_owned();
    let (status, answer) = send(
        reqwest::Method::DELETE,
        &format!("/right-pad/-rev/{rev}"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (status, answer) = send(
        reqwest::Method::POST,
        "/api/v1/admin/orgs",
        &root,
        json!({ "slug": "acme", "display_name": "Acme" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = send(
        reqwest::Method::POST,
        "/api/v1/admin/orgs/acme/members",
        &root,
        json!({ "user": "alice", "role": "developer" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = send(
        reqwest::Method::PUT,
        "/-/org/acme/team",
        &root,
        json!({ "name": "builders" }),
    )
    .await;
    assert!(status.is_success(), "{answer}");
    let (status, answer) = send(
        reqwest::Method::PUT,
        "/-/team/acme/builders/package",
        &root,
        json!({ "package": "@acme/widget", "permissions": "read-write" }),
    )
    .await;
    assert!(status.is_success(), "{answer}");

    let hook = json!({ "url": "http://127.0.0.1:9/hook", "events": ["package.published"], "secret": "hook-secret-0123456789" });
    let (status, answer) = send(reqwest::Method::POST, "/api/v1/admin/webhooks", &root, hook).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let advisory = json!({ "package": "@acme/widget", "vulnerable_versions": "<2.0.0",
                           "severity": "high", "title": "Bad widget", "cwe": ["CWE-79"],
                           "cvss": { "score": 7.5, "vectorString": null } });
    let (status, answer) = send(
        reqwest::Method::POST,
        "/api/v1/admin/advisories",
        &root,
        advisory,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // The org's packages now have a subscriber: this publish queues a delivery.
    let body = PublishBody::new("@acme/widget", "2.1.0").json();
    let (status, answer) = send(reqwest::Method::PUT, "/@acme%2fwidget", &root, body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    (server, alice)
}

/// The address both registries are configured with, so that their packuments can be compared byte
/// for byte.
const PUBLIC_URL: &str = "http://registry.test";

/// What a registry answers to reads: each packument (full and abbreviated) with its ETag, and
/// each tarball.
async fn answers(base: &str, token: &str) -> Vec<(String, String, Vec<u8>)> {
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    for (path, accept) in [
        ("/left-pad", "application/json"),
        ("/left-pad", "application/vnd.npm.install-v1+json"),
        ("/@acme%2fwidget", "application/json"),
        ("/left-pad/-/left-pad-1.1.0.tgz", "*/*"),
        ("/@acme/widget/-/widget-2.1.0.tgz", "*/*"),
        ("/right-pad", "application/json"),
    ] {
        let response = http
            .get(format!("{base}{path}"))
            .header("accept", accept)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.bytes().await.unwrap().to_vec();
        seen.push((format!("{path} {accept} {status}"), etag, body));
    }
    seen
}

/// Runs `packr migrate-store` from `data_dir` to `database` with `extra` arguments and
/// environment; the exit status and both outputs together.
fn migrate_store(
    data_dir: &Path,
    database: &TestDatabase,
    extra: &[&str],
    env: &[(String, String)],
) -> (bool, String) {
    let output = Command::new(packr_binary())
        .args(["migrate-store", "--from-data-dir"])
        .arg(data_dir)
        .args(["--to", &database.url])
        .args(extra)
        .env_remove("PACKR_DATABASE_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("running packr migrate-store");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every table and its row count in the SQLite database of `data_dir`.
fn sqlite_counts(data_dir: &Path) -> Vec<(String, i64)> {
    let conn = Connection::open(data_dir.join("packr.db")).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let count = conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                    row.get(0)
                })
                .unwrap();
            (table, count)
        })
        .collect()
}

#[tokio::test]
async fn every_row_and_tarball_moves_and_a_second_run_copies_nothing_new() {
    let (server, alice) = populated_registry().await;
    let data_dir = server.data_dir.clone();
    let before = answers(&server.url, &alice).await;
    // Keep the data directory, stop the registry: the move runs offline.
    let _data = server.keep_data_and_stop().await;
    let counts = sqlite_counts(&data_dir);
    for table in [
        "users",
        "tokens",
        "versions",
        "dist_tags",
        "retired_packages",
        "orgs",
        "team_packages",
        "webhooks",
        "webhook_deliveries",
        "advisories",
        "audit_log",
    ] {
        let count = counts
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, n)| *n);
        assert!(
            count.unwrap_or(0) > 0,
            "the fixture left {table} empty: {counts:?}"
        );
    }

    let database = fresh_database().await;
    let s3 = S3Server::start().await;
    let (ok, output) = migrate_store(&data_dir, &database, &["--copy-blobs-to-s3"], &s3.env());
    assert!(ok, "{output}");
    assert!(output.contains("copied 4 tarballs"), "{output}");
    assert!(output.contains("4 tarballs checked"), "{output}");

    let pg = database.connect().await;
    for (table, count) in &counts {
        let copied: i64 = pg
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(copied, *count, "rows of {table}");
    }
    // Secrets and hashes arrive byte for byte.
    let sqlite = Connection::open(data_dir.join("packr.db")).unwrap();
    let hash: String = sqlite
        .query_row(
            "SELECT password_hash FROM users WHERE name = 'alice'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let copied: String = pg
        .query_one("SELECT password_hash FROM users WHERE name = 'alice'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied, hash);
    let sealed: Vec<u8> = sqlite
        .query_row("SELECT secret_ciphertext FROM webhooks", [], |row| {
            row.get(0)
        })
        .unwrap();
    let row = pg
        .query_one("SELECT secret_ciphertext, active FROM webhooks", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), sealed);
    assert!(row.get::<_, bool>(1));
    assert_eq!(s3.keys().await.len(), 4, "one object per tarball");

    // New rows get fresh ids after the copied ones.
    let next: i64 = pg
        .query_one(
            "INSERT INTO audit_log (at, action) VALUES (0, 'test.after-copy') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let highest: i64 = sqlite
        .query_row("SELECT MAX(id) FROM audit_log", [], |row| row.get(0))
        .unwrap();
    assert!(next > highest, "id {next} after copied {highest}");
    pg.execute(
        "DELETE FROM audit_log WHERE action = 'test.after-copy'",
        &[],
    )
    .await
    .unwrap();

    let (ok, again) = migrate_store(&data_dir, &database, &["--copy-blobs-to-s3"], &s3.env());
    assert!(ok, "{again}");
    assert!(
        again.contains("copied 0 tarballs (4 were there already)"),
        "{again}"
    );
    for line in again.lines().filter(|line| line.starts_with("  ")) {
        assert!(line.trim_end().ends_with(" 0 copied now"), "{line}");
    }

    // The moved registry, with the old secrets, answers as the old one did, to the old token.
    let mut env = s3.env();
    env.push(("PACKR_DATABASE_URL".into(), database.url.clone()));
    env.push(("PACKR_PUBLIC_URL".into(), PUBLIC_URL.into()));
    for (var, file) in [
        ("PACKR_JWT_SECRET", "jwt.key"),
        ("PACKR_SESSION_SECRET", "session.key"),
        ("PACKR_SECRET_KEY", "webhook.key"),
    ] {
        let secret = std::fs::read_to_string(data_dir.join("secrets").join(file)).unwrap();
        env.push((var.into(), secret));
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let fresh = tempfile::tempdir().unwrap();
    let moved = ServeProcess::start(fresh.path(), "serve.log", &env_refs).await;
    let after = answers(&moved.url, &alice).await;
    assert!(before[0].0.ends_with(" 200"), "{}", before[0].0);
    assert!(
        before[5].0.ends_with(" 404"),
        "the tombstoned name: {}",
        before[5].0
    );
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.0, new.0, "status");
        assert_eq!(old.1, new.1, "ETag of {}", old.0);
        assert!(old.2 == new.2, "bytes of {} differ", old.0);
    }
    drop(moved);
}

#[tokio::test]
async fn a_damaged_tarball_or_a_written_target_is_reported_not_called_done() {
    let (server, _) = populated_registry().await;
    let data_dir = server.data_dir.clone();
    let _data = server.keep_data_and_stop().await;

    let database = fresh_database().await;
    let pg = database.connect().await;
    let (ok, output) = migrate_store(&data_dir, &database, &[], &[]);
    assert!(ok, "{output}");
    assert!(output.contains("tarballs checked"), "{output}");

    // A row only the target has: counts no longer agree, so the run fails and says which table.
    pg.execute(
        "INSERT INTO audit_log (at, action) VALUES (0, 'written.elsewhere')",
        &[],
    )
    .await
    .unwrap();
    let (ok, output) = migrate_store(&data_dir, &database, &[], &[]);
    assert!(!ok, "{output}");
    assert!(output.contains("row counts differ"), "{output}");
    assert!(output.contains("audit_log"), "{output}");
    pg.execute(
        "DELETE FROM audit_log WHERE action = 'written.elsewhere'",
        &[],
    )
    .await
    .unwrap();

    // One flipped byte in a stored tarball.
    let blobs = data_dir.join("blobs");
    let victim = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().is_dir() && entry.file_name() != "tmp")
        .flat_map(|dir| std::fs::read_dir(dir.path()).unwrap().flatten())
        .next()
        .expect("a stored tarball")
        .path();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let (ok, output) = migrate_store(&data_dir, &database, &[], &[]);
    assert!(!ok, "{output}");
    let key = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        output.contains(&format!("{key} (checksum differs)")),
        "{output}"
    );
}
