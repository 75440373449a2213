//! The signing-key part of the metadata-store contract, on every store: keys are added once
//! (first start, import) or always (rotation), never deleted; backfilled signatures are stored
//! once per version, even when two instances store them at once, and mark the package changed.

use packr::audit::AuditEvent;
use packr::store::audit::AuditQuery;
use packr::store::keys::{AddKey, StoredKey, VersionSignature};
use packr::store::packages::{NewVersion, PublishPlan, Signature, VersionRow};
use serde_json::json;

use crate::store_packages::add_user;
use crate::support::stores::{StoreUnderTest, on_each_store};

fn key(keyid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        keyid: keyid.to_owned(),
        public_key: format!("public-{keyid}"),
        sealed_private: vec![1, 2, 3],
        nonce: vec![9; 12],
        created_at,
        expires_at: None,
    }
}

fn event(keyid: &str) -> AuditEvent {
    AuditEvent::by_operator("signing_key.created", json!({ "keyid": keyid }))
}

async fn events(under: &StoreUnderTest) -> i64 {
    let query = AuditQuery {
        action: Some("signing_key.created".into()),
        limit: 10,
        ..AuditQuery::default()
    };
    under.store.query_audit_log(query).await.unwrap().1
}

async fn keys_are_added_when_allowed_and_old_ones_get_their_expiry(under: StoreUnderTest) {
    let store = &under.store;
    assert!(store.signing_keys().await.unwrap().is_empty());
    let first = store
        .add_signing_key(key("A", 1), AddKey::IfNoneActive, 100, vec![event("A")])
        .await
        .unwrap();
    assert!(first);
    // A second instance starting at once finds a key and adds none.
    let second = store
        .add_signing_key(key("B", 2), AddKey::IfNoneActive, 100, vec![event("B")])
        .await
        .unwrap();
    assert!(!second);
    assert_eq!(events(&under).await, 1);

    // A rotation adds a key and gives the active one its expiry; nothing is deleted.
    assert!(
        store
            .add_signing_key(key("C", 3), AddKey::Always, 500, vec![])
            .await
            .unwrap()
    );
    let keys = store.signing_keys().await.unwrap();
    let listed: Vec<_> = keys
        .iter()
        .map(|k| (k.keyid.as_str(), k.expires_at))
        .collect();
    assert_eq!(listed, [("A", Some(500)), ("C", None)]);
    assert_eq!(keys[0].sealed_private, vec![1, 2, 3]);
    assert_eq!(keys[0].nonce, vec![9; 12]);
    assert_eq!(keys[0].public_key, "public-A");

    // An imported key comes in once; an expired one is never brought back.
    assert!(
        !store
            .add_signing_key(key("A", 4), AddKey::IfUnknown, 900, vec![])
            .await
            .unwrap()
    );
    assert!(
        store
            .add_signing_key(key("D", 5), AddKey::IfUnknown, 900, vec![])
            .await
            .unwrap()
    );
    let listed: Vec<_> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.keyid, k.expires_at))
        .collect();
    assert_eq!(
        listed,
        [
            ("A".into(), Some(500)),
            ("C".into(), Some(900)),
            ("D".into(), None)
        ]
    );
}

on_each_store!(keys_are_added_when_allowed_and_old_ones_get_their_expiry);

fn new_version(
    package: &str,
    version: &str,
    publisher_id: i64,
    signed_by: Option<&str>,
) -> NewVersion {
    NewVersion {
        package: package.to_owned(),
        access: "public".to_owned(),
        row: VersionRow {
            version: version.to_owned(),
            manifest: json!({ "name": package, "version": version }).to_string(),
            integrity: format!("sha512-{package}-{version}"),
            shasum: "x".into(),
            blob_key: format!("{package}-{version}"),
            size: 1,
            deprecated: None,
            readme: None,
            published_at: packr::clock::now_ms(),
            signatures: signed_by
                .map(|keyid| Signature {
                    keyid: keyid.to_owned(),
                    sig: format!("sig-{version}"),
                })
                .into_iter()
                .collect(),
        },
        tag: "latest".into(),
        publisher_id,
        attestations: Vec::new(),
    }
}

fn signature(package: &str, version: &str, keyid: &str) -> VersionSignature {
    VersionSignature {
        package: package.to_owned(),
        version: version.to_owned(),
        keyid: keyid.to_owned(),
        sig: format!("{keyid}-sig"),
    }
}

async fn versions_are_signed_once_and_the_backfill_marks_packages_changed(under: StoreUnderTest) {
    let store = &under.store;
    let alice = add_user(&under, "alice").await;
    for k in ["K1", "K2"] {
        store
            .add_signing_key(key(k, 1), AddKey::Always, 10, vec![])
            .await
            .unwrap();
    }
    // Published signed: the signature is stored with the version, in the publish.
    for (package, version, signed) in [
        ("a", "1.0.0", Some("K2")),
        ("a", "1.1.0", None),
        ("b", "1.0.0", None),
    ] {
        store
            .commit_publish(
                new_version(package, version, alice, signed),
                vec![],
                Box::new(|_| Ok(PublishPlan::default())),
            )
            .await
            .unwrap();
    }
    let a = store.load_package("a").await.unwrap().unwrap();
    assert_eq!(
        a.versions[0].signatures,
        [Signature {
            keyid: "K2".into(),
            sig: "sig-1.0.0".into()
        }]
    );
    assert!(a.versions[1].signatures.is_empty());

    let unsigned: Vec<_> = store
        .unsigned_versions(10)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.package, v.version, v.integrity))
        .collect();
    assert_eq!(
        unsigned,
        [
            ("a".into(), "1.1.0".into(), "sha512-a-1.1.0".into()),
            ("b".into(), "1.0.0".into(), "sha512-b-1.0.0".into())
        ]
    );
    assert_eq!(store.unsigned_versions(1).await.unwrap().len(), 1);

    // Two instances backfill at once with different keys: each version keeps one signature.
    let (one, two) = tokio::join!(
        store.add_signatures(vec![
            signature("a", "1.1.0", "K1"),
            signature("b", "1.0.0", "K1")
        ]),
        store.add_signatures(vec![
            signature("a", "1.1.0", "K2"),
            signature("b", "1.0.0", "K2")
        ]),
    );
    let mut changed = one.unwrap();
    changed.extend(two.unwrap());
    changed.sort();
    assert_eq!(changed, ["a", "b"]);
    assert!(store.unsigned_versions(10).await.unwrap().is_empty());
    let after = store.load_package("a").await.unwrap().unwrap();
    assert_eq!(after.versions[0].signatures.len(), 1);
    assert_eq!(after.versions[1].signatures.len(), 1);
    assert_eq!(
        after.rev,
        a.rev + 1,
        "a backfilled package is marked changed"
    );

    // Nothing left to do: nothing changes, no rev moves, and a removed version is skipped.
    let again = store
        .add_signatures(vec![
            signature("a", "1.1.0", "K1"),
            signature("a", "9.9.9", "K1"),
        ])
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(
        store.load_package("a").await.unwrap().unwrap().rev,
        after.rev
    );
}

on_each_store!(versions_are_signed_once_and_the_backfill_marks_packages_changed);
