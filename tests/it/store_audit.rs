//! The audit part of the metadata-store contract, on every store.

use packr::audit::AuditEvent;
use packr::store::audit::AuditQuery;
use serde_json::json;

use crate::support::stores::{StoreUnderTest, on_each_store};

fn event(action: &'static str, actor: &str, package: Option<&str>) -> AuditEvent {
    let mut event = AuditEvent::by_operator(action, json!({ "n": actor }));
    event.actor_name = Some(actor.to_owned());
    event.package = package.map(str::to_owned);
    event
}

fn everything() -> AuditQuery {
    AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    }
}

async fn recorded_events_come_back_newest_first_with_their_details(under: StoreUnderTest) {
    let store = under.store;
    store
        .record_events(vec![
            event("user.created", "alice", None),
            event("package.published", "alice", Some("left-pad")),
        ])
        .await
        .unwrap();
    store
        .record_events(vec![event("package.published", "bob", Some("@acme/x"))])
        .await
        .unwrap();

    let (rows, total) = store.query_audit_log(everything()).await.unwrap();
    assert_eq!(total, 3);
    let actions: Vec<_> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_deref().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("package.published", "bob"),
            ("package.published", "alice"),
            ("user.created", "alice")
        ]
    );
    assert_eq!(rows[0].package.as_deref(), Some("@acme/x"));
    assert_eq!(rows[0].details, json!({ "n": "bob" }));
    assert!(rows[0].id > rows[1].id);
}

on_each_store!(recorded_events_come_back_newest_first_with_their_details);

async fn filters_combine_and_pages_count_every_match(under: StoreUnderTest) {
    let store = under.store;
    let mut events = Vec::new();
    for n in 0..5 {
        events.push(event("package.published", "alice", Some("left-pad")));
        events.push(event(
            "dist-tag.added",
            if n % 2 == 0 { "alice" } else { "bob" },
            Some("left-pad"),
        ));
    }
    events.push(event("package.published", "alice", Some("other")));
    store.record_events(events).await.unwrap();

    let query = AuditQuery {
        action: Some("package.published".into()),
        package: Some("left-pad".into()),
        limit: 2,
        offset: 1,
        ..AuditQuery::default()
    };
    let (rows, total) = store.query_audit_log(query).await.unwrap();
    assert_eq!(total, 5, "the total counts every match, not the page");
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.action == "package.published" && r.package.as_deref() == Some("left-pad"))
    );

    let by_bob = AuditQuery {
        actor: Some("bob".into()),
        ..everything()
    };
    assert_eq!(store.query_audit_log(by_bob).await.unwrap().1, 2);

    let (_, all) = store.query_audit_log(everything()).await.unwrap();
    let within = AuditQuery {
        from: Some(0),
        to: Some(i64::MAX),
        ..everything()
    };
    assert_eq!(store.query_audit_log(within).await.unwrap().1, all);
    let later = AuditQuery {
        from: Some(i64::MAX - 1),
        ..everything()
    };
    assert_eq!(store.query_audit_log(later).await.unwrap().1, 0);
    let earlier = AuditQuery {
        to: Some(0),
        ..everything()
    };
    assert_eq!(store.query_audit_log(earlier).await.unwrap().1, 0);
}

on_each_store!(filters_combine_and_pages_count_every_match);
