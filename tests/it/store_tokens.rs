//! The tokens part of the metadata-store contract, on every store.

use std::collections::BTreeMap;

use packr::audit::AuditEvent;
use packr::store::Store;
use packr::store::audit::AuditQuery;
use packr::store::tokens::{TokenAudit, TokenFilter, TokenRow, TokenUses};
use serde_json::json;

use crate::support::stores::{StoreUnderTest, maintainer as user, on_each_store};

fn token(id: &str, user_id: i64, created_at: i64) -> TokenRow {
    TokenRow {
        id: id.to_owned(),
        user_id,
        token_hash: format!("hash-of-{id}"),
        role: "ci-publish".into(),
        scopes: vec!["@acme".into()],
        name: Some(format!("label {id}")),
        created_at,
        expires_at: None,
        revoked_at: None,
        cidr: vec!["10.0.0.0/8".into()],
        display: "abcdef".into(),
        last_used_at: None,
        use_count: 0,
        issued_by: None,
    }
}

async fn issue(store: &Store, token: TokenRow) {
    let event = AuditEvent::by_operator("token.created", json!({ "token_id": token.id }));
    store.insert_token(token, vec![event]).await.unwrap();
}

/// The audit event of a revocation, naming the token and its owner.
fn revoked_event() -> TokenAudit {
    Box::new(|token, owner| {
        AuditEvent::by_operator(
            "token.revoked",
            json!({ "token_id": token.id, "owner": owner.name }),
        )
    })
}

async fn events(store: &Store, action: &str) -> Vec<serde_json::Value> {
    let query = AuditQuery {
        action: Some(action.to_owned()),
        limit: 100,
        ..AuditQuery::default()
    };
    let (rows, _) = store.query_audit_log(query).await.unwrap();
    rows.into_iter().map(|row| row.details).collect()
}

fn everything() -> TokenFilter {
    TokenFilter {
        limit: 100,
        ..TokenFilter::default()
    }
}

async fn an_issued_token_is_found_with_its_owner_and_standing(under: StoreUnderTest) {
    let store = under.store;
    let alice = user(&store, "alice").await;
    let mut row = token("aaaa0001", alice, 5);
    row.expires_at = Some(99);
    row.issued_by = Some("operator".into());
    issue(&store, row).await;
    assert_eq!(
        events(&store, "token.created").await,
        [json!({ "token_id": "aaaa0001" })],
        "the creation is audited with the token"
    );

    let found = store.find_token("aaaa0001").await.unwrap().unwrap();
    assert_eq!(found.token.user_id, alice);
    assert_eq!(found.token.token_hash, "hash-of-aaaa0001");
    assert_eq!(found.token.role, "ci-publish");
    assert_eq!(found.token.scopes, ["@acme"]);
    assert_eq!(found.token.cidr, ["10.0.0.0/8"]);
    assert_eq!(found.token.name.as_deref(), Some("label aaaa0001"));
    assert_eq!(
        (found.token.created_at, found.token.expires_at),
        (5, Some(99))
    );
    assert_eq!(found.token.issued_by.as_deref(), Some("operator"));
    assert_eq!(found.token.display, "abcdef");
    assert_eq!((found.token.use_count, found.token.last_used_at), (0, None));
    assert_eq!(found.user.name, "alice");
    assert_eq!(
        found.standing,
        store.user_standing(alice).await.unwrap().unwrap()
    );
    assert!(store.find_token("nope").await.unwrap().is_none());

    // The owner's standing comes with the token, so a disable shows at the next check.
    store
        .set_user_disabled(
            "alice",
            Some(7),
            Box::new(|_| AuditEvent::by_operator("user.disabled", json!({}))),
        )
        .await
        .unwrap();
    let found = store.find_token("aaaa0001").await.unwrap().unwrap();
    assert_eq!(found.standing.disabled_at, Some(7));

    let by_hash = store
        .find_token_by_hash("hash-of-aaaa0001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((by_hash.id.as_str(), by_hash.user_id), ("aaaa0001", alice));
    assert!(
        store
            .find_token_by_hash("hash-of-nope")
            .await
            .unwrap()
            .is_none()
    );
}

on_each_store!(an_issued_token_is_found_with_its_owner_and_standing);

async fn prefixes_find_ids_of_one_owner_or_everyone(under: StoreUnderTest) {
    let store = under.store;
    let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
    issue(&store, token("abc123ff", alice, 1)).await;
    issue(&store, token("abc123aa", alice, 2)).await;
    issue(&store, token("abc124aa", bob, 3)).await;
    issue(&store, token("ffff0000", bob, 4)).await;
    store
        .revoke_token_by_id("abc123aa", 10, revoked_event())
        .await
        .unwrap();

    assert_eq!(
        store.token_ids_with_prefix(None, "abc12").await.unwrap(),
        [
            ("abc123aa".to_owned(), false),
            ("abc123ff".to_owned(), true),
            ("abc124aa".to_owned(), true)
        ]
    );
    assert_eq!(
        store
            .token_ids_with_prefix(Some(bob), "abc12")
            .await
            .unwrap(),
        [("abc124aa".to_owned(), true)]
    );
    assert!(
        store
            .token_ids_with_prefix(Some(alice), "ffff")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .token_ids_with_prefix(None, "abc123ff")
            .await
            .unwrap()
            .len(),
        1
    );

    for n in 0..25 {
        issue(&store, token(&format!("dd{n:06}"), alice, 20 + n)).await;
    }
    let many = store.token_ids_with_prefix(None, "dd").await.unwrap();
    assert_eq!(many.len(), 20, "at most 20");
    assert_eq!(many[0].0, "dd000000");
}

on_each_store!(prefixes_find_ids_of_one_owner_or_everyone);

async fn listings_filter_by_owner_and_liveness_newest_first(under: StoreUnderTest) {
    let store = under.store;
    let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
    issue(&store, token("t1", alice, 100)).await;
    issue(&store, token("t2", bob, 200)).await;
    let mut expired = token("t3", alice, 300);
    expired.expires_at = Some(350);
    issue(&store, expired).await;
    issue(&store, token("t4", alice, 400)).await;
    store
        .revoke_token_by_hash("hash-of-t4", 450, revoked_event())
        .await
        .unwrap();

    let (all, total) = store.list_tokens(everything()).await.unwrap();
    assert_eq!(total, 4);
    let listed: Vec<_> = all
        .iter()
        .map(|(t, owner)| (t.id.as_str(), owner.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("t4", "alice"),
            ("t3", "alice"),
            ("t2", "bob"),
            ("t1", "alice")
        ]
    );
    assert_eq!(all[0].0.revoked_at, Some(450));

    let live = TokenFilter {
        live_at: Some(400),
        ..everything()
    };
    let (rows, total) = store.list_tokens(live).await.unwrap();
    let ids: Vec<_> = rows.iter().map(|(t, _)| t.id.as_str()).collect();
    assert_eq!((ids, total), (vec!["t2", "t1"], 2));
    let still_live = TokenFilter {
        live_at: Some(340),
        user_id: Some(alice),
        ..everything()
    };
    let (rows, total) = store.list_tokens(still_live).await.unwrap();
    let ids: Vec<_> = rows.iter().map(|(t, _)| t.id.as_str()).collect();
    assert_eq!((ids, total), (vec!["t3", "t1"], 2));

    let page = TokenFilter {
        user_id: Some(alice),
        limit: 1,
        offset: 1,
        ..TokenFilter::default()
    };
    let (rows, total) = store.list_tokens(page).await.unwrap();
    assert_eq!(total, 3, "the total counts every match, not the page");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.id, "t3");
}

on_each_store!(listings_filter_by_owner_and_liveness_newest_first);

async fn revoking_audits_once_with_the_owner(under: StoreUnderTest) {
    let store = under.store;
    let alice = user(&store, "alice").await;
    issue(&store, token("byhash", alice, 1)).await;
    issue(&store, token("byid", alice, 2)).await;

    let revoked = store
        .revoke_token_by_hash("hash-of-byhash", 50, revoked_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (revoked.id.as_str(), revoked.revoked_at),
        ("byhash", Some(50))
    );
    assert!(
        store
            .revoke_token_by_hash("hash-of-byhash", 60, revoked_event())
            .await
            .unwrap()
            .is_none(),
        "a revoked token is not revoked again"
    );
    assert!(
        store
            .revoke_token_by_hash("hash-of-unknown", 60, revoked_event())
            .await
            .unwrap()
            .is_none()
    );

    let revoked = store
        .revoke_token_by_id("byid", 70, revoked_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.token_hash, "hash-of-byid");
    assert!(
        store
            .revoke_token_by_id("byid", 80, revoked_event())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .revoke_token_by_id("unknown", 80, revoked_event())
            .await
            .unwrap()
            .is_none()
    );
    let found = store.find_token("byid").await.unwrap().unwrap();
    assert_eq!(found.token.revoked_at, Some(70), "the first time stays");

    let mut audited = events(&store, "token.revoked").await;
    audited.reverse();
    assert_eq!(
        audited,
        [
            json!({ "token_id": "byhash", "owner": "alice" }),
            json!({ "token_id": "byid", "owner": "alice" })
        ]
    );
}

on_each_store!(revoking_audits_once_with_the_owner);

async fn concurrent_revocations_revoke_and_audit_once(under: StoreUnderTest) {
    let store = crate::store_accounts::racing(&under, 8).await;
    let alice = user(&store, "alice").await;
    issue(&store, token("racy", alice, 1)).await;
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                if n % 2 == 0 {
                    store
                        .revoke_token_by_id("racy", 10 + n, revoked_event())
                        .await
                } else {
                    store
                        .revoke_token_by_hash("hash-of-racy", 10 + n, revoked_event())
                        .await
                }
            })
        })
        .collect();
    let mut revoked = 0;
    for task in tasks {
        if task.await.unwrap().expect("no store error").is_some() {
            revoked += 1;
        }
    }
    assert_eq!(revoked, 1);
    assert_eq!(events(&store, "token.revoked").await.len(), 1);
}

on_each_store!(concurrent_revocations_revoke_and_audit_once);

fn uses(id: &str, count: i64, last_at: i64) -> TokenUses {
    TokenUses {
        token_id: id.to_owned(),
        count,
        last_at,
    }
}

async fn usage(store: &Store) -> BTreeMap<String, (i64, Option<i64>)> {
    let (rows, _) = store.list_tokens(everything()).await.unwrap();
    rows.into_iter()
        .map(|(t, _)| (t.id, (t.use_count, t.last_used_at)))
        .collect()
}

async fn usage_flushes_add_to_the_stored_counts(under: StoreUnderTest) {
    let store = under.store;
    let alice = user(&store, "alice").await;
    issue(&store, token("u1", alice, 1)).await;
    issue(&store, token("u2", alice, 2)).await;

    store.add_token_uses(Vec::new()).await.unwrap();
    store
        .add_token_uses(vec![uses("u1", 3, 500), uses("u2", 1, 400)])
        .await
        .unwrap();
    store
        .add_token_uses(vec![uses("u1", 2, 300), uses("gone", 5, 900)])
        .await
        .unwrap();
    let counted = usage(&store).await;
    assert_eq!(
        counted["u1"],
        (5, Some(500)),
        "the latest use stays the latest"
    );
    assert_eq!(counted["u2"], (1, Some(400)));
}

on_each_store!(usage_flushes_add_to_the_stored_counts);

async fn concurrent_flushes_from_several_instances_lose_no_use(under: StoreUnderTest) {
    let store = under.store.clone();
    let alice = user(&store, "alice").await;
    let ids: Vec<String> = (0..6).map(|n| format!("c{n}")).collect();
    for (n, id) in ids.iter().enumerate() {
        issue(&store, token(id, alice, n as i64)).await;
    }
    // Two instances on the same database, where there can be two.
    let stores: Vec<Store> = vec![
        crate::store_accounts::racing(&under, 8).await,
        crate::store_accounts::racing(&under, 8).await,
    ];
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let instance = stores[n % stores.len()].clone();
            // Every flush touches every token, half in the reverse order.
            let mut batch: Vec<TokenUses> = ids
                .iter()
                .map(|id| uses(id, n as i64 + 1, 1_000 + n as i64))
                .collect();
            if n % 2 == 1 {
                batch.reverse();
            }
            tokio::spawn(async move { instance.add_token_uses(batch).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("no store error");
    }
    let expected: i64 = (1..=16).sum();
    for (id, counted) in usage(&store).await {
        assert_eq!(counted, (expected, Some(1_015)), "{id}");
    }
}

on_each_store!(concurrent_flushes_from_several_instances_lose_no_use);
