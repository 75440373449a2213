//! The attestations part of the metadata-store contract, on every store: bundles are written by
//! the publish that carries them, in its transaction, and go with their version.

use packr::audit::AuditEvent;
use packr::store::Store;
use packr::store::attestations::StoredAttestation;
use packr::store::packages::{NewVersion, PublishOutcome, PublishPlan, Removal, VersionRow};
use serde_json::json;

use crate::store_packages::add_user;
use crate::support::stores::{StoreUnderTest, on_each_store};

const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

fn attestation(predicate_type: &str, bundle: &str) -> StoredAttestation {
    StoredAttestation {
        predicate_type: predicate_type.to_owned(),
        bundle: bundle.to_owned(),
    }
}

fn version(
    package: &str,
    version: &str,
    publisher_id: i64,
    attestations: Vec<StoredAttestation>,
) -> NewVersion {
    NewVersion {
        package: package.to_owned(),
        access: "public".to_owned(),
        row: VersionRow {
            version: version.to_owned(),
            manifest: json!({ "name": package, "version": version }).to_string(),
            integrity: format!("sha512-{version}"),
            shasum: format!("sha1-{version}"),
            blob_key: format!("key-{version}"),
            size: 10,
            deprecated: None,
            readme: None,
            published_at: packr::clock::now_ms(),
            signatures: Vec::new(),
        },
        tag: "latest".to_owned(),
        publisher_id,
        attestations,
    }
}

async fn publish(store: &Store, new: NewVersion) -> PublishOutcome {
    let event = AuditEvent::by_operator("package.published", json!({}));
    store
        .commit_publish(
            new,
            vec![event],
            Box::new(|_| Ok(PublishPlan { claim_scope: None })),
        )
        .await
        .unwrap()
}

async fn bundles_published_with_a_version_read_back_and_go_with_it(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    let with = vec![attestation(SLSA_V1, r#"{"mediaType":"b1"}"#)];
    assert_eq!(
        publish(&store, version("p", "1.0.0", alice, with.clone())).await,
        PublishOutcome::Committed
    );
    assert_eq!(
        publish(&store, version("p", "1.1.0", alice, Vec::new())).await,
        PublishOutcome::Committed
    );
    assert_eq!(store.attestations("p", "1.0.0").await.unwrap(), with);
    assert_eq!(store.attestations("p", "1.1.0").await.unwrap(), []);
    assert_eq!(store.attestations("p", "9.9.9").await.unwrap(), []);
    assert_eq!(store.attestations("nope", "1.0.0").await.unwrap(), []);

    // A retry of the same version with another bundle changes nothing.
    let other = vec![attestation(SLSA_V1, r#"{"mediaType":"b2"}"#)];
    assert!(matches!(
        publish(&store, version("p", "1.0.0", alice, other)).await,
        PublishOutcome::Exists { .. }
    ));
    assert_eq!(store.attestations("p", "1.0.0").await.unwrap(), with);

    let rev = store.load_package("p").await.unwrap().unwrap().rev;
    let removal = Removal::Versions {
        versions: vec!["1.0.0".to_owned()],
        new_latest: Some("1.1.0".to_owned()),
    };
    store
        .commit_unpublish("p", rev, removal, Vec::new())
        .await
        .unwrap();
    assert_eq!(store.attestations("p", "1.0.0").await.unwrap(), []);
}

on_each_store!(bundles_published_with_a_version_read_back_and_go_with_it);

async fn several_predicate_types_of_one_version_come_back_in_order(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    let both = vec![
        attestation(SLSA_V1, "{}"),
        attestation(
            "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
            "{}",
        ),
    ];
    publish(&store, version("@acme/q", "2.0.0", alice, both.clone())).await;
    let mut sorted = both;
    sorted.sort_by(|a, b| a.predicate_type.cmp(&b.predicate_type));
    assert_eq!(
        store.attestations("@acme/q", "2.0.0").await.unwrap(),
        sorted
    );
}

on_each_store!(several_predicate_types_of_one_version_come_back_in_order);
