//! The webhooks part of the metadata-store contract, on every store: hooks, the outbox that
//! recorded events fill, and claiming due deliveries with several workers at once.

use std::collections::HashSet;

use packr::audit::AuditEvent;
use packr::clock;
use packr::store::Store;
use packr::store::audit::AuditQuery;
use packr::store::webhooks::{
    AfterAttempt, AttemptRow, DeliveryRow, HookCreated, NewWebhook, Requeue, WebhookRow,
};
use packr::webhooks::{Owner, Sealed};
use serde_json::{Value, json};

use crate::support::stores::{StoreUnderTest, on_each_store};

/// Users alice (1) and bob (2), org acme (1), and package left-pad maintained by bob.
const PEOPLE: &str = "
    INSERT INTO users (id, name, role, created_at) VALUES
        (1, 'alice', 'admin', 0), (2, 'bob', 'maintainer', 0), (3, 'carol', 'maintainer', 0);
    INSERT INTO orgs (id, slug, display_name, created_at) VALUES (1, 'acme', 'Acme', 0);
    INSERT INTO packages (name, created_at, modified_at) VALUES ('left-pad', 0, 0);
    INSERT INTO maintainers (package, user_id) VALUES ('left-pad', 2);";

async fn with_people(under: &StoreUnderTest) {
    under.execute(PEOPLE).await;
}

fn new_hook(owner: Owner, events: &[&str]) -> NewWebhook {
    NewWebhook {
        owner,
        url: "https://hooks.example.com/packr".into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret: Sealed {
            ciphertext: vec![1, 2, 3, 255],
            nonce: vec![7; 12],
        },
        created_by: 1,
        now: 1_000,
    }
}

fn created_event(row: &WebhookRow) -> AuditEvent {
    let event = AuditEvent::by_operator("webhook.created", json!({ "webhook_id": row.id }));
    match &row.owner_org {
        Some(org) => event.on_org(org),
        None => event,
    }
}

async fn create(store: &Store, owner: Owner, events: &[&str]) -> WebhookRow {
    match store
        .create_webhook(new_hook(owner, events), Box::new(created_event))
        .await
        .unwrap()
    {
        HookCreated::Created(row) => row,
        HookCreated::NoSuchOwner => panic!("the owner exists"),
    }
}

async fn delete(store: &Store, id: i64) -> bool {
    let event = |row: &WebhookRow| {
        AuditEvent::by_operator("webhook.deleted", json!({ "webhook_id": row.id }))
    };
    store
        .delete_webhook(id, clock::now_ms(), Box::new(event))
        .await
        .unwrap()
}

async fn redeliver(store: &Store, id: &str, now: i64) -> Requeue {
    let event = |row: &DeliveryRow| {
        AuditEvent::by_operator("webhook.redelivered", json!({ "delivery_id": row.id }))
    };
    store.redeliver(id, now, Box::new(event)).await.unwrap()
}

/// Records `action` by `actor` (an id of [`PEOPLE`]) on `package`.
async fn record(store: &Store, action: &'static str, actor: i64, package: Option<&str>) {
    let mut event = AuditEvent::by_operator(action, json!({ "n": 1 }));
    event.actor_id = Some(actor);
    event.actor_name = Some(format!("user{actor}"));
    event.package = package.map(str::to_owned);
    store.record_events(vec![event]).await.unwrap();
}

async fn deliveries_of(store: &Store, hook: i64) -> Vec<DeliveryRow> {
    let (rows, total) = store
        .webhook_deliveries(hook, 100, 0, clock::now_ms())
        .await
        .unwrap()
        .expect("the hook exists");
    assert_eq!(usize::try_from(total).unwrap(), rows.len());
    rows
}

async fn audited(store: &Store, action: &str) -> Vec<Value> {
    let query = AuditQuery {
        action: Some(action.into()),
        limit: 100,
        ..AuditQuery::default()
    };
    let (rows, _) = store.query_audit_log(query).await.unwrap();
    rows.into_iter()
        .map(|row| json!({ "org": row.org, "details": row.details }))
        .collect()
}

async fn hooks_are_created_for_existing_owners_listed_and_deleted_once(under: StoreUnderTest) {
    with_people(&under).await;
    let store = &under.store;
    let mine = create(store, Owner::User("alice".into()), &["package.published"]).await;
    let acme = create(store, Owner::Org("acme".into()), &["token.created"]).await;
    assert_eq!(
        (mine.owner_user.as_deref(), mine.owner_org.as_deref()),
        (Some("alice"), None)
    );
    assert_eq!(acme.owner_org.as_deref(), Some("acme"));
    assert_eq!(mine.events, ["package.published"]);
    assert_eq!(mine.url, "https://hooks.example.com/packr");
    assert_eq!(
        (mine.created_at, mine.created_by.as_deref()),
        (1_000, Some("alice"))
    );
    assert!(mine.active && acme.active);
    for nobody in [Owner::User("mallory".into()), Owner::Org("nope".into())] {
        let outcome = store
            .create_webhook(
                new_hook(nobody, &["token.created"]),
                Box::new(created_event),
            )
            .await
            .unwrap();
        assert!(matches!(outcome, HookCreated::NoSuchOwner));
    }
    assert_eq!(
        audited(store, "webhook.created").await,
        [
            json!({ "org": "acme", "details": { "webhook_id": acme.id } }),
            json!({ "org": null, "details": { "webhook_id": mine.id } }),
        ],
        "one event per created hook, none for a refused one"
    );

    let listed: Vec<i64> = store
        .list_webhooks()
        .await
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(listed, [mine.id, acme.id]);

    assert!(delete(store, mine.id).await);
    assert!(!delete(store, mine.id).await, "already deleted");
    assert!(!delete(store, 9_999).await);
    let listed: Vec<i64> = store
        .list_webhooks()
        .await
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(listed, [acme.id]);
    assert_eq!(audited(store, "webhook.deleted").await.len(), 1);
    assert!(
        store
            .webhook_deliveries(mine.id, 10, 0, 0)
            .await
            .unwrap()
            .is_some(),
        "a deleted hook keeps its delivery log"
    );
    assert!(
        store
            .webhook_deliveries(9_999, 10, 0, 0)
            .await
            .unwrap()
            .is_none()
    );
}

on_each_store!(hooks_are_created_for_existing_owners_listed_and_deleted_once);

async fn a_recorded_event_queues_one_delivery_per_matching_active_hook(under: StoreUnderTest) {
    with_people(&under).await;
    let store = &under.store;
    let published = ["package.published"];
    let actor = create(store, Owner::User("alice".into()), &published).await;
    let maintainer = create(store, Owner::User("bob".into()), &published).await;
    let org = create(store, Owner::Org("acme".into()), &published).await;
    let bystander = create(store, Owner::User("carol".into()), &published).await;
    let unsubscribed = create(store, Owner::User("alice".into()), &["token.created"]).await;
    let deleted = create(store, Owner::User("alice".into()), &published).await;
    assert!(delete(store, deleted.id).await);

    record(store, "package.published", 1, Some("left-pad")).await;
    record(store, "package.published", 1, Some("@acme/widget")).await;
    record(store, "user.login", 1, Some("left-pad")).await;
    let mut on_org = AuditEvent::by_operator("package.published", json!({}));
    on_org.org = Some("acme".into());
    store.record_events(vec![on_org]).await.unwrap();

    let count = |rows: Vec<DeliveryRow>| rows.len();
    assert_eq!(count(deliveries_of(store, actor.id).await), 2);
    assert_eq!(count(deliveries_of(store, maintainer.id).await), 1);
    assert_eq!(count(deliveries_of(store, org.id).await), 2);
    assert_eq!(count(deliveries_of(store, bystander.id).await), 0);
    assert_eq!(count(deliveries_of(store, unsubscribed.id).await), 0);
    assert_eq!(count(deliveries_of(store, deleted.id).await), 0);
    let queued = deliveries_of(store, maintainer.id).await.remove(0);
    assert_eq!(
        (queued.action.as_str(), queued.status.as_str()),
        ("package.published", "pending")
    );
    assert!(queued.next_attempt_at.is_some() && !queued.in_flight);
    assert!(queued.attempts.is_empty());
}

on_each_store!(a_recorded_event_queues_one_delivery_per_matching_active_hook);

async fn a_delivery_is_claimed_attempted_retried_and_redelivered(under: StoreUnderTest) {
    with_people(&under).await;
    let store = &under.store;
    let hook = create(store, Owner::User("alice".into()), &["token.revoked"]).await;
    record(store, "token.revoked", 1, None).await;
    let now = clock::now_ms() + 1;
    let next = store.next_delivery_due().await.unwrap();
    assert!(next.is_some_and(|at| at < now), "due since it was queued");

    let due = store
        .claim_due_deliveries(now, now + 1_000, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    let due = &due[0];
    assert_eq!(due.url, hook.url);
    assert_eq!(
        (
            due.secret.ciphertext.as_slice(),
            due.secret.nonce.as_slice()
        ),
        ([1, 2, 3, 255].as_slice(), [7; 12].as_slice())
    );
    assert_eq!(
        (due.action.as_str(), due.attempts, due.round_start),
        ("token.revoked", 0, 0)
    );
    let payload: Value = serde_json::from_str(&due.payload).unwrap();
    assert_eq!(payload["event"], "token.revoked");
    assert_eq!(payload["id"], due.event_id);
    assert!(
        store
            .claim_due_deliveries(now, now + 1_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed until the lease lapses"
    );
    assert_eq!(store.next_delivery_due().await.unwrap(), Some(now + 1_000));
    assert!(deliveries_of(store, hook.id).await[0].in_flight);
    assert!(matches!(
        redeliver(store, &due.id, now).await,
        Requeue::InFlight
    ));

    let failed = AttemptRow {
        attempt: 1,
        at: now,
        http_status: Some(503),
        error: Some("the receiver answered 503".into()),
        duration_ms: 12,
    };
    store
        .record_delivery_attempt(
            &due.id,
            failed.clone(),
            AfterAttempt::RetryAt(now + 60_000),
            now,
        )
        .await
        .unwrap();
    let row = deliveries_of(store, hook.id).await.remove(0);
    assert_eq!(row.status, "pending");
    assert_eq!(row.next_attempt_at, Some(now + 60_000));
    assert!(!row.in_flight, "recording the attempt releases the claim");
    assert_eq!(row.attempts, std::slice::from_ref(&failed));
    assert!(
        store
            .claim_due_deliveries(now + 59_999, now + 70_000, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let again = store
        .claim_due_deliveries(now + 60_000, now + 70_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    let timeout = AttemptRow {
        attempt: 2,
        at: now + 60_000,
        http_status: None,
        error: Some("no answer within 10 ms".into()),
        duration_ms: 10,
    };
    store
        .record_delivery_attempt(&due.id, timeout.clone(), AfterAttempt::Failed, now + 60_010)
        .await
        .unwrap();
    let row = deliveries_of(store, hook.id).await.remove(0);
    assert_eq!((row.status.as_str(), row.next_attempt_at), ("failed", None));
    assert_eq!(row.updated_at, now + 60_010);
    assert_eq!(store.next_delivery_due().await.unwrap(), None);

    let Requeue::Queued(queued) = redeliver(store, &due.id, now + 70_000).await else {
        panic!("a failed delivery is queued again");
    };
    assert_eq!(
        (queued.status.as_str(), queued.next_attempt_at),
        ("pending", Some(now + 70_000))
    );
    assert_eq!(
        queued.attempts,
        [failed, timeout],
        "the attempts log goes on"
    );
    assert_eq!(audited(store, "webhook.redelivered").await.len(), 1);
    let round = store
        .claim_due_deliveries(now + 70_000, now + 80_000, 10)
        .await
        .unwrap();
    assert_eq!((round[0].attempts, round[0].round_start), (2, 2));
    let delivered = AttemptRow {
        attempt: 3,
        at: now + 70_000,
        http_status: Some(204),
        error: None,
        duration_ms: 3,
    };
    store
        .record_delivery_attempt(&due.id, delivered, AfterAttempt::Delivered, now + 70_003)
        .await
        .unwrap();
    let row = deliveries_of(store, hook.id).await.remove(0);
    assert_eq!((row.status.as_str(), row.attempts.len()), ("delivered", 3));

    assert!(matches!(
        redeliver(store, "no-such-delivery", now).await,
        Requeue::NotFound
    ));
    assert!(delete(store, hook.id).await);
    assert!(matches!(
        redeliver(store, &due.id, now + 90_000).await,
        Requeue::HookDeleted
    ));
    assert_eq!(
        audited(store, "webhook.redelivered").await.len(),
        1,
        "refusals record nothing"
    );
}

on_each_store!(a_delivery_is_claimed_attempted_retried_and_redelivered);

async fn deleting_a_hook_fails_its_pending_deliveries_and_stops_claims(under: StoreUnderTest) {
    with_people(&under).await;
    let store = &under.store;
    let hook = create(store, Owner::User("alice".into()), &["token.created"]).await;
    record(store, "token.created", 1, None).await;
    record(store, "token.created", 1, None).await;
    assert!(delete(store, hook.id).await);
    let rows = deliveries_of(store, hook.id).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.status == "failed" && r.next_attempt_at.is_none())
    );
    let later = clock::now_ms() + 1_000;
    assert!(
        store
            .claim_due_deliveries(later, later + 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

on_each_store!(deleting_a_hook_fails_its_pending_deliveries_and_stops_claims);

async fn concurrent_workers_claim_disjoint_deliveries_covering_all(under: StoreUnderTest) {
    with_people(&under).await;
    let store = &under.store;
    let hook = create(store, Owner::User("alice".into()), &["token.created"]).await;
    let events = (0..50)
        .map(|n| {
            let mut event = AuditEvent::by_operator("token.created", json!({ "n": n }));
            event.actor_id = Some(1);
            event
        })
        .collect();
    store.record_events(events).await.unwrap();
    assert_eq!(deliveries_of(store, hook.id).await.len(), 50);

    let now = clock::now_ms() + 1;
    let worker = |store: Store| async move {
        let mut claimed = Vec::new();
        loop {
            let batch = store
                .claim_due_deliveries(now, now + 60_000, 4)
                .await
                .unwrap();
            if batch.is_empty() {
                return claimed;
            }
            claimed.extend(batch.into_iter().map(|d| d.id));
            tokio::task::yield_now().await;
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(worker(store.clone())),
        tokio::spawn(worker(store.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let a_set: HashSet<_> = a.iter().collect();
    let b_set: HashSet<_> = b.iter().collect();
    assert_eq!(a_set.len(), a.len(), "a worker got one delivery twice");
    assert_eq!(b_set.len(), b.len(), "a worker got one delivery twice");
    assert!(a_set.is_disjoint(&b_set), "two workers got one delivery");
    assert_eq!(a.len() + b.len(), 50, "every due delivery is claimed");
}

on_each_store!(concurrent_workers_claim_disjoint_deliveries_covering_all);

async fn concurrent_deletes_of_one_hook_succeed_once(under: StoreUnderTest) {
    with_people(&under).await;
    let store = &under.store;
    let hook = create(store, Owner::Org("acme".into()), &["token.created"]).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { delete(&store, hook.id).await })
        })
        .collect();
    let mut deleted = 0;
    for task in tasks {
        if task.await.unwrap() {
            deleted += 1;
        }
    }
    assert_eq!(deleted, 1);
    assert_eq!(audited(store, "webhook.deleted").await.len(), 1);
}

on_each_store!(concurrent_deletes_of_one_hook_succeed_once);
