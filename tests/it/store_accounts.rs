//! The accounts part of the metadata-store contract, on every store.

use packr::audit::AuditEvent;
use std::sync::Arc;

use packr::store::accounts::{NewUser, Standing, UserAudit, UserWrite};
use packr::store::audit::AuditQuery;
use packr::store::{Postgres, Store};
use serde_json::json;

use crate::support::stores::{StoreUnderTest, on_each_store};

fn new_user(name: &str, role: &str) -> NewUser {
    NewUser {
        name: name.to_owned(),
        email: format!("{name}@example.com"),
        password_hash: format!("phc-of-{name}"),
        role: role.to_owned(),
        now: 1_000,
    }
}

/// The audit event `packr user disable` records, built once the store found the user.
fn disabled_event(action: &'static str) -> UserAudit {
    Box::new(move |user| {
        AuditEvent::by_operator(action, json!({ "user": user.name, "user_id": user.id }))
    })
}

async fn count_events(store: &Store, action: &str) -> i64 {
    let query = AuditQuery {
        action: Some(action.to_owned()),
        limit: 100,
        ..AuditQuery::default()
    };
    store.query_audit_log(query).await.unwrap().1
}

/// The store for a race: on PostgreSQL a second instance on the same database whose pool already
/// holds `n` open connections, so that `n` tasks really run their transactions at once instead
/// of one after another while their connections are being made.
pub(crate) async fn racing(under: &StoreUnderTest, n: usize) -> Store {
    let Some(database) = &under.database else {
        return under.store.clone();
    };
    let instance = Postgres::open(&database.url).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(instance.pool().get().await.unwrap());
    }
    drop(held);
    Arc::new(instance)
}

async fn written(store: &Store, user: NewUser) -> i64 {
    match store.put_user(user).await.unwrap() {
        UserWrite::Written(id) => id,
        other => panic!("expected the user written, got {other:?}"),
    }
}

async fn users_are_found_by_exact_name_and_by_id(under: StoreUnderTest) {
    let store = under.store;
    let id = written(&store, new_user("alice", "maintainer")).await;

    let alice = store.find_user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(alice.id, id);
    assert_eq!(alice.email, "alice@example.com");
    assert_eq!(alice.password_hash.as_deref(), Some("phc-of-alice"));
    assert_eq!(alice.role, "maintainer");
    let by_id = store.find_user_by_id(id).await.unwrap().unwrap();
    assert_eq!(by_id.name, "alice");

    assert!(store.find_user_by_name("ALICE").await.unwrap().is_none());
    assert!(store.find_user_by_name("bob").await.unwrap().is_none());
    assert!(store.find_user_by_id(id + 1000).await.unwrap().is_none());
}

on_each_store!(users_are_found_by_exact_name_and_by_id);

async fn putting_a_user_again_resets_it_and_ends_its_sessions(under: StoreUnderTest) {
    let store = under.store;
    let id = written(&store, new_user("alice", "maintainer")).await;
    let first = store.user_standing(id).await.unwrap().unwrap();
    assert_eq!(first.disabled_at, None);
    let stamp = store.standing_stamp().await.unwrap();

    let reset = NewUser {
        email: "new@example.com".into(),
        password_hash: "phc-new".into(),
        ..new_user("alice", "reader")
    };
    assert_eq!(written(&store, reset).await, id, "the same account");
    let alice = store.find_user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (alice.email.as_str(), alice.role.as_str()),
        ("new@example.com", "reader")
    );
    assert_eq!(alice.password_hash.as_deref(), Some("phc-new"));
    let after = store.user_standing(id).await.unwrap().unwrap();
    assert_eq!(
        after.session_generation,
        first.session_generation + 1,
        "a reset ends the sessions signed in with the old password"
    );
    assert_ne!(store.standing_stamp().await.unwrap(), stamp);
    assert_eq!(store.user_standing(id + 1000).await.unwrap(), None);
}

on_each_store!(putting_a_user_again_resets_it_and_ends_its_sessions);

async fn names_are_unique_regardless_of_case(under: StoreUnderTest) {
    let store = under.store;
    written(&store, new_user("alice", "maintainer")).await;

    assert_eq!(
        store.put_user(new_user("Alice", "admin")).await.unwrap(),
        UserWrite::CaseVariant("alice".into())
    );
    assert_eq!(
        store
            .create_user(new_user("ALICE", "maintainer"))
            .await
            .unwrap(),
        UserWrite::CaseVariant("alice".into())
    );
    assert_eq!(
        store
            .create_user(new_user("alice", "maintainer"))
            .await
            .unwrap(),
        UserWrite::Exists,
        "sign-up never overwrites an account"
    );
    let alice = store.find_user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(
        alice.role, "maintainer",
        "the refused writes changed nothing"
    );
    assert!(store.find_user_by_name("Alice").await.unwrap().is_none());

    let UserWrite::Written(bob) = store.create_user(new_user("bob", "reader")).await.unwrap()
    else {
        panic!("bob is free");
    };
    let bob = store.find_user_by_id(bob).await.unwrap().unwrap();
    assert_eq!((bob.name.as_str(), bob.role.as_str()), ("bob", "reader"));
}

on_each_store!(names_are_unique_regardless_of_case);

const VARIANTS: [&str; 8] = [
    "carol", "Carol", "CAROL", "cArol", "caRol", "carOl", "caroL", "CaRoL",
];

async fn concurrent_creations_of_one_name_in_any_case_make_one_account(under: StoreUnderTest) {
    let store = racing(&under, VARIANTS.len()).await;
    let tasks: Vec<_> = VARIANTS
        .iter()
        .enumerate()
        .map(|(at, name)| {
            let store = store.clone();
            let user = new_user(name, "maintainer");
            tokio::spawn(async move {
                // Half reset-or-create (`packr user add`), half create-only (`npm adduser`).
                if at % 2 == 0 {
                    store.put_user(user).await
                } else {
                    store.create_user(user).await
                }
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().expect("no store error"));
    }
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, UserWrite::Written(_)))
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let found: Vec<_> = {
        let mut found = Vec::new();
        for name in VARIANTS {
            if let Some(user) = store.find_user_by_name(name).await.unwrap() {
                found.push(user.name);
            }
        }
        found
    };
    assert_eq!(found.len(), 1, "one account: {found:?}");
    for outcome in &outcomes {
        if let UserWrite::CaseVariant(existing) = outcome {
            assert_eq!(existing, &found[0]);
        }
    }
}

on_each_store!(concurrent_creations_of_one_name_in_any_case_make_one_account);

async fn disabling_and_enabling_are_audited_once_per_change(under: StoreUnderTest) {
    let store = under.store;
    let id = written(&store, new_user("alice", "maintainer")).await;
    let fresh = store.user_standing(id).await.unwrap().unwrap();
    let stamp = store.standing_stamp().await.unwrap();

    let changed = store
        .set_user_disabled("alice", Some(10), disabled_event("user.disabled"))
        .await
        .unwrap();
    assert_eq!(changed, Some(true));
    assert_eq!(
        store.user_standing(id).await.unwrap(),
        Some(Standing {
            disabled_at: Some(10),
            session_generation: fresh.session_generation + 1
        })
    );
    assert_ne!(store.standing_stamp().await.unwrap(), stamp);
    assert_eq!(count_events(&store, "user.disabled").await, 1);

    // A second disable keeps the first time, ends the sessions again, and audits nothing.
    let again = store
        .set_user_disabled("alice", Some(20), disabled_event("user.disabled"))
        .await
        .unwrap();
    assert_eq!(again, Some(false));
    let standing = store.user_standing(id).await.unwrap().unwrap();
    assert_eq!(standing.disabled_at, Some(10));
    assert_eq!(standing.session_generation, fresh.session_generation + 2);
    assert_eq!(count_events(&store, "user.disabled").await, 1);

    let enabled = store
        .set_user_disabled("alice", None, disabled_event("user.enabled"))
        .await
        .unwrap();
    assert_eq!(enabled, Some(true));
    assert_eq!(
        store.user_standing(id).await.unwrap().unwrap().disabled_at,
        None
    );
    let (rows, _) = store
        .query_audit_log(AuditQuery {
            action: Some("user.enabled".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].details, json!({ "user": "alice", "user_id": id }));

    let unknown = store
        .set_user_disabled("nobody", Some(1), disabled_event("user.disabled"))
        .await
        .unwrap();
    assert_eq!(unknown, None);
}

on_each_store!(disabling_and_enabling_are_audited_once_per_change);

async fn concurrent_disables_change_and_audit_once(under: StoreUnderTest) {
    let store = racing(&under, 8).await;
    written(&store, new_user("alice", "maintainer")).await;
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set_user_disabled("alice", Some(100 + n), disabled_event("user.disabled"))
                    .await
            })
        })
        .collect();
    let mut changed = 0;
    for task in tasks {
        if task.await.unwrap().expect("no store error") == Some(true) {
            changed += 1;
        }
    }
    assert_eq!(changed, 1);
    assert_eq!(count_events(&store, "user.disabled").await, 1);
}

on_each_store!(concurrent_disables_change_and_audit_once);

async fn the_standing_stamp_moves_with_every_account_change(under: StoreUnderTest) {
    let store = under.store;
    let empty = store.standing_stamp().await.unwrap();
    assert_eq!(empty, (0, 0));
    written(&store, new_user("alice", "maintainer")).await;
    let one = store.standing_stamp().await.unwrap();
    assert_ne!(one, empty);
    assert_eq!(one, store.standing_stamp().await.unwrap(), "reads leave it");
    store.create_user(new_user("bob", "reader")).await.unwrap();
    let two = store.standing_stamp().await.unwrap();
    assert_eq!(two.0, 2);
    written(&store, new_user("bob", "maintainer")).await;
    let promoted = store.standing_stamp().await.unwrap();
    assert_ne!(promoted, two, "a role change moves it");
}

on_each_store!(the_standing_stamp_moves_with_every_account_change);
