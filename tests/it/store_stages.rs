//! The staged-publishing part of the metadata-store contract, on every store: stages reserve
//! their version against publishes and other stages, approval publishes exactly once, rejection
//! removes, org policies round-trip, and the races between them have one winner.

use std::sync::Arc;

use packr::audit::AuditEvent;
use packr::store::Store;
use packr::store::attestations::StoredAttestation;
use packr::store::audit::AuditQuery;
use packr::store::packages::{NewVersion, PublishOutcome, PublishPlan, VersionRow};
use packr::store::stages::{ApproveOutcome, OrgPolicy, StageOutcome, StageRow};
use serde_json::json;

use crate::store_packages::add_user;
use crate::support::stores::{StoreUnderTest, on_each_store};

fn stage(id: &str, package: &str, version: &str, actor_id: i64, key: &str) -> StageRow {
    StageRow {
        id: id.to_owned(),
        package: package.to_owned(),
        version: version.to_owned(),
        tag: "next".to_owned(),
        access: "public".to_owned(),
        manifest: json!({ "name": package, "version": version }).to_string(),
        integrity: format!("sha512-{key}"),
        shasum: format!("sha1-{key}"),
        blob_key: key.to_owned(),
        size: 10,
        readme: Some("readme".into()),
        attestations: vec![StoredAttestation {
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            bundle: "{\"bundle\":1}".into(),
        }],
        details: json!({ "version": version }),
        actor_id,
        actor_name: "alice".to_owned(),
        actor_type: "user".to_owned(),
        created_at: packr::clock::now_ms(),
    }
}

/// The version an approval of `stage` publishes.
fn release(stage: &StageRow) -> NewVersion {
    NewVersion {
        package: stage.package.clone(),
        access: stage.access.clone(),
        row: VersionRow {
            version: stage.version.clone(),
            manifest: stage.manifest.clone(),
            integrity: stage.integrity.clone(),
            shasum: stage.shasum.clone(),
            blob_key: stage.blob_key.clone(),
            size: stage.size,
            deprecated: None,
            readme: stage.readme.clone(),
            published_at: packr::clock::now_ms(),
            signatures: Vec::new(),
        },
        tag: stage.tag.clone(),
        publisher_id: stage.actor_id,
        attestations: stage.attestations.clone(),
    }
}

fn event(action: &'static str, package: &str) -> AuditEvent {
    let mut event = AuditEvent::by_operator(action, json!({}));
    event.package = Some(package.to_owned());
    event
}

fn allow() -> packr::store::packages::Decide<()> {
    Box::new(|_| Ok(()))
}

async fn actions(store: &Store, package: &str) -> Vec<String> {
    let query = AuditQuery {
        package: Some(package.to_owned()),
        limit: 100,
        ..AuditQuery::default()
    };
    let (rows, _) = store.query_audit_log(query).await.unwrap();
    rows.into_iter().rev().map(|r| r.action).collect()
}

async fn a_stage_is_stored_listed_and_reserves_its_version(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store;
    let staged = stage(
        "11111111-1111-4111-8111-111111111111",
        "lib",
        "1.0.0",
        alice,
        "k1",
    );
    let outcome = store
        .create_stage(
            staged.clone(),
            vec![event("package.staged", "lib")],
            allow(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, StageOutcome::Staged);
    assert_eq!(store.stage(&staged.id).await.unwrap(), Some(staged.clone()));
    assert_eq!(
        store.list_stages(Some("lib")).await.unwrap(),
        std::slice::from_ref(&staged)
    );
    assert!(store.list_stages(Some("other")).await.unwrap().is_empty());
    assert!(
        store.load_package("lib").await.unwrap().is_none(),
        "a staged version is not a package"
    );

    // Another stage of the version, and a publish of it, are refused naming the stage.
    let again = stage(
        "22222222-2222-4222-8222-222222222222",
        "lib",
        "1.0.0",
        alice,
        "k2",
    );
    let outcome = store.create_stage(again, vec![], allow()).await.unwrap();
    assert_eq!(
        outcome,
        StageOutcome::AlreadyStaged {
            id: staged.id.clone()
        }
    );
    let plan = Box::new(|_: &_| Ok(PublishPlan::default()));
    let outcome = store
        .commit_publish(
            release(&staged),
            vec![event("package.published", "lib")],
            plan,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PublishOutcome::Staged {
            id: staged.id.clone()
        }
    );
    // The staged blob stays referenced.
    assert!(
        store
            .unreferenced_blobs(vec!["k1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(actions(&store, "lib").await, ["package.staged"]);
}

on_each_store!(a_stage_is_stored_listed_and_reserves_its_version);

async fn a_refused_stage_stores_nothing(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store;
    let staged = stage(
        "33333333-3333-4333-8333-333333333333",
        "lib",
        "1.0.0",
        alice,
        "k1",
    );
    let refuse: packr::store::packages::Decide<()> = Box::new(|_| {
        Err(packr::packages::RegistryError::OrgDenied(
            "not yours".into(),
        ))
    });
    let err = store
        .create_stage(staged.clone(), vec![event("package.staged", "lib")], refuse)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not yours"), "{err}");
    assert!(store.stage(&staged.id).await.unwrap().is_none());
    assert!(actions(&store, "lib").await.is_empty());

    // A published version cannot be staged.
    let plan = Box::new(|_: &_| Ok(PublishPlan::default()));
    let outcome = store
        .commit_publish(release(&staged), vec![], plan)
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Committed);
    let outcome = store.create_stage(staged, vec![], allow()).await.unwrap();
    assert_eq!(
        outcome,
        StageOutcome::Exists {
            integrity: "sha512-k1".into()
        }
    );
}

on_each_store!(a_refused_stage_stores_nothing);

async fn approval_publishes_the_stage_once_and_rejection_removes_it(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store;
    let first = stage(
        "44444444-4444-4444-8444-444444444444",
        "lib",
        "1.0.0",
        alice,
        "k1",
    );
    let second = stage(
        "55555555-5555-4555-8555-555555555555",
        "lib",
        "1.1.0",
        alice,
        "k2",
    );
    for s in [&first, &second] {
        store
            .create_stage(s.clone(), vec![], allow())
            .await
            .unwrap();
    }
    let outcome = store
        .approve_stage(
            &first.id,
            release(&first),
            None,
            vec![event("package.published", "lib")],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ApproveOutcome::Published(PublishOutcome::Committed)
    );
    let record = store.load_package("lib").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), 1);
    assert_eq!(
        record.dist_tags.get("next").map(String::as_str),
        Some("1.0.0")
    );
    assert_eq!(
        store.attestations("lib", "1.0.0").await.unwrap(),
        first.attestations
    );
    assert!(store.stage(&first.id).await.unwrap().is_none());
    // Approved once: a second approval finds nothing.
    let again = store
        .approve_stage(&first.id, release(&first), None, vec![event("x", "lib")])
        .await
        .unwrap();
    assert_eq!(again, ApproveOutcome::Gone);

    let removed = store
        .reject_stage(&second.id, vec![event("package.stage_rejected", "lib")])
        .await
        .unwrap();
    assert_eq!(removed.map(|s| s.blob_key), Some("k2".to_owned()));
    assert!(
        store
            .reject_stage(&second.id, vec![])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.unreferenced_blobs(vec!["k2".into()]).await.unwrap(),
        ["k2"]
    );
    assert!(store.list_stages(None).await.unwrap().is_empty());
    assert_eq!(
        actions(&store, "lib").await,
        ["package.published", "package.stage_rejected"]
    );
}

on_each_store!(approval_publishes_the_stage_once_and_rejection_removes_it);

async fn two_approvals_of_one_stage_publish_it_once(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store: Arc<_> = under.store;
    for n in 0..4 {
        let staged = stage(
            &format!("66666666-6666-4666-8666-00000000000{n}"),
            "race",
            &format!("1.0.{n}"),
            alice,
            &format!("k{n}"),
        );
        store
            .create_stage(staged.clone(), vec![], allow())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (store, staged) = (Arc::clone(&store), staged.clone());
                tokio::spawn(async move {
                    store
                        .approve_stage(
                            &staged.id,
                            release(&staged),
                            None,
                            vec![event("package.published", "race")],
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let published = outcomes
            .iter()
            .filter(|o| **o == ApproveOutcome::Published(PublishOutcome::Committed))
            .count();
        let gone = outcomes
            .iter()
            .filter(|o| **o == ApproveOutcome::Gone)
            .count();
        assert_eq!((published, gone), (1, 1), "{outcomes:?}");
    }
    let record = store.load_package("race").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), 4);
    let published = actions(&store, "race").await;
    assert_eq!(published.len(), 4, "one event per version: {published:?}");
}

on_each_store!(two_approvals_of_one_stage_publish_it_once);

async fn a_stage_and_a_publish_of_one_version_have_one_winner(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store: Arc<_> = under.store;
    for n in 0..6 {
        let version = format!("2.0.{n}");
        let staged = stage(
            &format!("77777777-7777-4777-8777-00000000000{n}"),
            "duel",
            &version,
            alice,
            &format!("s{n}"),
        );
        let mut publish = release(&staged);
        publish.row.blob_key = format!("p{n}");
        publish.row.integrity = format!("sha512-p{n}");
        let staging = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.create_stage(staged, vec![], allow()).await.unwrap() }
        });
        let publishing = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                let plan = Box::new(|_: &_| Ok(PublishPlan::default()));
                store.commit_publish(publish, vec![], plan).await.unwrap()
            }
        });
        let (staged, published) = (staging.await.unwrap(), publishing.await.unwrap());
        let stage_won = staged == StageOutcome::Staged;
        let publish_won = published == PublishOutcome::Committed;
        assert!(
            stage_won != publish_won,
            "exactly one wins: {staged:?} / {published:?}"
        );
        if stage_won {
            assert!(
                matches!(published, PublishOutcome::Staged { .. }),
                "{published:?}"
            );
        } else {
            assert!(matches!(staged, StageOutcome::Exists { .. }), "{staged:?}");
        }
    }
}

on_each_store!(a_stage_and_a_publish_of_one_version_have_one_winner);

async fn org_policies_default_to_nothing_and_round_trip(under: StoreUnderTest) {
    let store = under.store;
    assert_eq!(store.org_policy("acme").await.unwrap(), None, "no such org");
    assert!(
        !store
            .set_org_policy("acme", OrgPolicy::default(), vec![])
            .await
            .unwrap()
    );
    store
        .create_org("acme", "Acme", vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.org_policy("acme").await.unwrap(),
        Some(OrgPolicy::default())
    );
    let policy = OrgPolicy {
        require_approval: true,
        approvers: vec!["bob".into(), "release".into()],
        require_provenance: true,
        require_trusted_publishing: false,
    };
    let mut changed = AuditEvent::by_operator("org.policy_changed", json!({}));
    changed.org = Some("acme".into());
    assert!(
        store
            .set_org_policy("acme", policy.clone(), vec![changed])
            .await
            .unwrap()
    );
    assert_eq!(store.org_policy("acme").await.unwrap(), Some(policy));
    let relaxed = OrgPolicy {
        require_trusted_publishing: true,
        ..OrgPolicy::default()
    };
    store
        .set_org_policy("acme", relaxed.clone(), vec![])
        .await
        .unwrap();
    assert_eq!(store.org_policy("acme").await.unwrap(), Some(relaxed));
    let query = AuditQuery {
        action: Some("org.policy_changed".into()),
        limit: 10,
        ..AuditQuery::default()
    };
    let (rows, total) = store.query_audit_log(query).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(rows[0].org.as_deref(), Some("acme"));
}

on_each_store!(org_policies_default_to_nothing_and_round_trip);
