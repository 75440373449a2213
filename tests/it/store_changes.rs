//! Changes between instances sharing one PostgreSQL database: a change committed through one
//! store reaches every other store's change feed, and a listener that lost its connection makes
//! the caches start over.

use std::time::Duration;

use packr::audit::AuditEvent;
use packr::store::{AuditStore, Change, ChangeFeed, MetadataStore, Postgres};
use serde_json::json;

use crate::support::postgres::fresh_database;

/// The next change on `feed`, within a few seconds.
async fn next(feed: &mut ChangeFeed) -> Change {
    tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("a change within 10 s")
        .expect("the feed is open")
}

fn on_package(action: &'static str, package: &str) -> AuditEvent {
    AuditEvent::by_operator(action, json!({})).on_package(package)
}

#[tokio::test]
async fn a_change_committed_on_one_instance_reaches_the_others() {
    let database = fresh_database().await;
    let writer = Postgres::open(&database.url).await.unwrap();
    let reader = Postgres::open(&database.url).await.unwrap();
    let mut feed = reader
        .watch_changes()
        .expect("PostgreSQL has a change feed");
    assert_eq!(
        next(&mut feed).await,
        Change::Everything,
        "a new listener starts over"
    );

    writer
        .record_events(vec![on_package("package.published", "left-pad")])
        .await
        .unwrap();
    assert_eq!(next(&mut feed).await, Change::Package("left-pad".into()));

    let mut revoked = AuditEvent::by_operator("token.revoked", json!({}));
    revoked.token_id = Some("t1".into());
    let mut member = AuditEvent::by_operator("org.member.added", json!({}));
    member.org = Some("acme".into());
    writer.record_events(vec![revoked, member]).await.unwrap();
    assert_eq!(next(&mut feed).await, Change::Tokens);
    assert_eq!(next(&mut feed).await, Change::Everything);

    // Events that no cache depends on are not announced.
    writer
        .record_events(vec![AuditEvent::by_operator("user.login", json!({}))])
        .await
        .unwrap();
    writer
        .record_events(vec![on_package("dist-tag.added", "@acme/x")])
        .await
        .unwrap();
    assert_eq!(next(&mut feed).await, Change::Package("@acme/x".into()));
}

#[tokio::test]
async fn a_listener_that_lost_its_connection_reconnects_and_starts_over() {
    let database = fresh_database().await;
    let writer = Postgres::open(&database.url).await.unwrap();
    let reader = Postgres::open(&database.url).await.unwrap();
    let mut feed = reader.watch_changes().unwrap();
    assert_eq!(next(&mut feed).await, Change::Everything);

    // What an outage does to the listener: its session ends under it.
    let admin = database.connect().await;
    let ended = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ended.len(), 1, "one listening session");
    // Changes made while nobody listened are lost, so the listener starts the caches over.
    assert_eq!(next(&mut feed).await, Change::Everything);

    writer
        .record_events(vec![on_package("package.deprecated", "left-pad")])
        .await
        .unwrap();
    assert_eq!(next(&mut feed).await, Change::Package("left-pad".into()));
}
