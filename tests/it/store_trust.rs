//! The trusted-publishing part of the metadata-store contract, on every store.

use packr::audit::AuditEvent;
use packr::store::Store;
use packr::store::audit::AuditQuery;
use packr::store::trust::{Exchange, TrustedPublisherRow};
use serde_json::json;

use crate::support::stores::{StoreUnderTest, maintainer as user, on_each_store};

fn publisher(
    id: &str,
    package: Option<&str>,
    org: Option<&str>,
    by: i64,
    at: i64,
) -> TrustedPublisherRow {
    TrustedPublisherRow {
        id: id.to_owned(),
        package: package.map(str::to_owned),
        org: org.map(str::to_owned),
        kind: "github".into(),
        claims: json!({"repository": "acme/lib", "workflow_ref": {"file": "release.yml"}}),
        permissions: vec!["createPackage".into(), "createStagedPackage".into()],
        created_by: by,
        created_at: at,
    }
}

fn event(action: &'static str) -> AuditEvent {
    AuditEvent::by_operator(action, json!({}))
}

async fn count(store: &Store, action: &str) -> i64 {
    let query = AuditQuery {
        action: Some(action.to_owned()),
        limit: 10,
        ..AuditQuery::default()
    };
    store.query_audit_log(query).await.unwrap().1
}

async fn trusted_publishers_are_kept_per_package_and_per_org(under: StoreUnderTest) {
    let store = under.store;
    let alice = user(&store, "alice").await;
    store
        .add_trusted_publishers(
            vec![
                publisher("a", Some("lib"), None, alice, 1),
                publisher("b", Some("lib"), None, alice, 2),
                publisher("c", Some("other"), None, alice, 3),
                publisher("o", None, Some("acme"), alice, 4),
            ],
            vec![event("trusted_publisher.added")],
        )
        .await
        .unwrap();
    let lib = store.package_trusted_publishers("lib").await.unwrap();
    assert_eq!(
        lib.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(lib[0], publisher("a", Some("lib"), None, alice, 1));
    let org = store.org_trusted_publishers("acme").await.unwrap();
    assert_eq!(org, [publisher("o", None, Some("acme"), alice, 4)]);
    assert!(
        store
            .org_trusted_publishers("lib")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(count(&store, "trusted_publisher.added").await, 1);

    // Removal needs the right owner: a package's id is not removed through another package
    // or as an org's.
    let removed = |id: &'static str, package: Option<&'static str>, org: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .remove_trusted_publisher(id, package, org, event("trusted_publisher.removed"))
                .await
                .unwrap()
        }
    };
    assert!(!removed("a", Some("other"), None).await);
    assert!(!removed("a", None, Some("lib")).await);
    assert!(removed("a", Some("lib"), None).await);
    assert!(!removed("a", Some("lib"), None).await);
    assert!(removed("o", None, Some("acme")).await);
    assert_eq!(count(&store, "trusted_publisher.removed").await, 2);
    let lib = store.package_trusted_publishers("lib").await.unwrap();
    assert_eq!(lib.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b"]);
}

on_each_store!(trusted_publishers_are_kept_per_package_and_per_org);

fn exchange(jti: &str, expires_at: i64) -> Exchange {
    Exchange {
        issuer: "https://issuer.test".into(),
        jti: jti.to_owned(),
        expires_at,
        package: "lib".into(),
        identity: json!({"repository": "acme/lib", "run_id": "1"}),
    }
}

async fn an_id_token_is_exchanged_once_even_when_raced(under: StoreUnderTest) {
    let store = under.store;
    let now = 1_000_000;
    assert!(
        store
            .record_exchange(
                exchange("j1", now + 60_000),
                now,
                event("trusted_publishing.exchanged")
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_exchange(
                exchange("j1", now + 60_000),
                now,
                event("trusted_publishing.exchanged")
            )
            .await
            .unwrap(),
        "a replay is refused"
    );
    // Another issuer's identical jti is another token.
    let mut elsewhere = exchange("j1", now + 60_000);
    elsewhere.issuer = "https://other.test".into();
    assert!(
        store
            .record_exchange(elsewhere, now, event("trusted_publishing.exchanged"))
            .await
            .unwrap()
    );
    assert_eq!(count(&store, "trusted_publishing.exchanged").await, 2);

    // The identity is found through the token issued for it.
    store
        .link_exchange("https://issuer.test", "j1", "token-1")
        .await
        .unwrap();
    assert_eq!(
        store.exchange_identity("token-1").await.unwrap(),
        Some(json!({"repository": "acme/lib", "run_id": "1"}))
    );
    assert_eq!(store.exchange_identity("token-2").await.unwrap(), None);

    // Eight concurrent exchanges of one new jti: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_exchange(exchange("raced", now + 60_000), now, event("x.raced"))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(count(&store, "x.raced").await, 1);

    // Rows of expired ID tokens go once they are past.
    let later = now + 120_000;
    assert!(
        store
            .record_exchange(
                exchange("j2", later + 60_000),
                later,
                event("trusted_publishing.exchanged")
            )
            .await
            .unwrap()
    );
    assert_eq!(store.exchange_identity("token-1").await.unwrap(), None);
}

on_each_store!(an_id_token_is_exchanged_once_even_when_raced);
