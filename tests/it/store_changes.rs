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

/// A package write returns once every listening instance has had its change: the reader's feed
/// holds it the moment the write returns, without waiting. A store nobody listens on does not
/// wait at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_returns_once_every_listening_instance_has_its_change() {
    use packr::store::PackageStore;
    use packr::store::packages::{NewVersion, PublishPlan, VersionRow};

    let database = fresh_database().await;
    let writer = Postgres::open(&database.url).await.unwrap();
    let store: packr::store::Store = std::sync::Arc::new(writer.clone());
    let publisher_id = crate::support::stores::maintainer(&store, "alice").await;
    let lonely = writer.clone();
    let new = |version: &str| NewVersion {
        attestations: Vec::new(),
        package: "echoed".into(),
        access: "public".into(),
        row: VersionRow {
            version: version.into(),
            manifest: "{}".into(),
            integrity: format!("sha512-{version}"),
            shasum: version.into(),
            blob_key: version.into(),
            size: 1,
            deprecated: None,
            readme: None,
            published_at: 1,
            signatures: Vec::new(),
        },
        tag: "latest".into(),
        publisher_id,
    };
    let publish = |store: Postgres, version: &'static str| {
        let new = new(version);
        async move {
            let event = on_package("package.published", "echoed");
            store
                .commit_publish(new, vec![event], Box::new(|_| Ok(PublishPlan::default())))
                .await
                .unwrap();
        }
    };
    // A write that waited for an echo takes at least the echo wait (100 ms); the fastest of three
    // lonely writes, so that a loaded machine's one slow commit does not count as a wait.
    let mut fastest = Duration::MAX;
    for version in ["0.0.1", "0.0.2", "0.0.3"] {
        let started = std::time::Instant::now();
        publish(lonely.clone(), version).await;
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest < Duration::from_millis(100),
        "a write with no listener waited {fastest:?}"
    );

    let mut own = writer.watch_changes().unwrap();
    let readers: Vec<Postgres> = vec![
        Postgres::open(&database.url).await.unwrap(),
        Postgres::open(&database.url).await.unwrap(),
    ];
    let mut feeds: Vec<ChangeFeed> = readers.iter().map(|r| r.watch_changes().unwrap()).collect();
    assert_eq!(next(&mut own).await, Change::Everything);
    for feed in &mut feeds {
        assert_eq!(next(feed).await, Change::Everything);
    }
    for n in 1..=20 {
        let version: &'static str = Box::leak(format!("1.0.{n}").into_boxed_str());
        publish(writer.clone(), version).await;
        for (at, feed) in feeds.iter_mut().enumerate() {
            assert_eq!(
                feed.try_recv().ok(),
                Some(Change::Package("echoed".into())),
                "reader {at} did not have write {n} when it returned"
            );
        }
    }

    // The readers' listeners lose their sessions: each reconnects and starts over, and writes go
    // on being confirmed by the listeners there are (never by a session that is gone).
    let admin = database.connect().await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'packr-listener'",
            &[],
        )
        .await
        .unwrap();
    for feed in &mut feeds {
        // Whatever was in flight, then the flush of the reconnect.
        while next(feed).await != Change::Everything {}
    }
    // The writer's own listener reconnected too.
    while next(&mut own).await != Change::Everything {}
    for feed in &mut feeds {
        while feed.try_recv().is_ok() {}
    }
    publish(writer.clone(), "2.0.0").await;
    for (at, feed) in feeds.iter_mut().enumerate() {
        assert_eq!(
            feed.try_recv().ok(),
            Some(Change::Package("echoed".into())),
            "reader {at} did not have the write after reconnecting"
        );
    }
}
