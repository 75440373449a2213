//! The stored-renderings part of the metadata-store contract, on every store: a rendering is
//! stored only at its package's current rev, read back only while the package stays there,
//! listed as missing until both forms are stored, and gone with its package.

use packr::audit::AuditEvent;
use packr::packages::cache::Form;
use packr::store::Store;
use packr::store::packages::{Removal, UnpublishOutcome};
use packr::store::renderings::{NewRendering, StoredDocument};
use serde_json::json;

use crate::store_packages::{add_user, publish, version};
use crate::support::stores::{StoreUnderTest, on_each_store};

fn document(text: &str) -> StoredDocument {
    let plain = format!("{{\"tarball\":\"/p/-/p-1.0.0.tgz\",\"text\":\"{text}\"}}").into_bytes();
    StoredDocument {
        plain,
        cuts: vec![12],
        last_modified: "Sat, 05 Dec 2026 04:00:00 GMT".into(),
        digest: Some(*b"0123456789abcdef"),
    }
}

fn rendering(package: &str, form: Form, rev: i64, text: &str) -> NewRendering {
    NewRendering {
        package: package.to_owned(),
        form,
        rev,
        document: document(text),
    }
}

async fn stored_now(store: &Store, package: &str, form: Form) -> Option<StoredDocument> {
    store.stored_document(package, form).await.unwrap()
}

async fn rev_of(store: &Store, package: &str) -> i64 {
    store.load_package(package).await.unwrap().unwrap().rev
}

async fn a_rendering_is_served_only_at_the_rev_it_was_made_from(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    publish(
        &store,
        version("p", "1.0.0", "latest", alice, "k1"),
        "alice",
    )
    .await;
    let rev = rev_of(&store, "p").await;
    assert_eq!(stored_now(&store, "p", Form::Abbreviated).await, None);
    assert_eq!(store.unrendered("", 10).await.unwrap(), ["p"]);

    let stored = store
        .store_renderings(vec![rendering("p", Form::Abbreviated, rev, "one")])
        .await
        .unwrap();
    assert_eq!(stored, 1);
    assert_eq!(
        stored_now(&store, "p", Form::Abbreviated).await,
        Some(document("one"))
    );
    assert_eq!(stored_now(&store, "p", Form::Full).await, None);
    // One form is not enough for the sweep.
    assert_eq!(store.unrendered("", 10).await.unwrap(), ["p"]);
    store
        .store_renderings(vec![rendering("p", Form::Full, rev, "full")])
        .await
        .unwrap();
    assert!(store.unrendered("", 10).await.unwrap().is_empty());
    assert_eq!(
        stored_now(&store, "p", Form::Full).await,
        Some(document("full"))
    );

    // A write moves the rev: the stored documents are no longer served, and one made from the
    // old rev is not stored.
    store
        .set_dist_tag("p", "beta", "1.0.0", Vec::new())
        .await
        .unwrap();
    let moved = rev_of(&store, "p").await;
    assert!(moved > rev);
    assert_eq!(stored_now(&store, "p", Form::Abbreviated).await, None);
    assert_eq!(stored_now(&store, "p", Form::Full).await, None);
    assert_eq!(store.unrendered("", 10).await.unwrap(), ["p"]);
    let late = store
        .store_renderings(vec![rendering("p", Form::Abbreviated, rev, "late")])
        .await
        .unwrap();
    assert_eq!(late, 0);
    assert_eq!(stored_now(&store, "p", Form::Abbreviated).await, None);
    let current = store
        .store_renderings(vec![
            rendering("p", Form::Abbreviated, moved, "two"),
            rendering("p", Form::Full, moved, "two, full"),
            rendering("missing", Form::Full, 1, "no such package"),
        ])
        .await
        .unwrap();
    assert_eq!(current, 2);
    assert_eq!(
        stored_now(&store, "p", Form::Abbreviated).await,
        Some(document("two"))
    );
    assert_eq!(stored_now(&store, "missing", Form::Full).await, None);
}

async fn renderings_go_with_their_package_and_the_sweep_pages_by_name(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    for (name, key) in [("b", "k1"), ("a", "k2"), ("@s/c", "k3")] {
        publish(
            &store,
            version(name, "1.0.0", "latest", alice, key),
            "alice",
        )
        .await;
    }
    assert_eq!(store.unrendered("", 10).await.unwrap(), ["@s/c", "a", "b"]);
    assert_eq!(store.unrendered("", 2).await.unwrap(), ["@s/c", "a"]);
    assert_eq!(store.unrendered("a", 10).await.unwrap(), ["b"]);

    let rev = rev_of(&store, "a").await;
    store
        .store_renderings(vec![
            rendering("a", Form::Abbreviated, rev, "a"),
            rendering("a", Form::Full, rev, "a"),
        ])
        .await
        .unwrap();
    assert_eq!(store.unrendered("", 10).await.unwrap(), ["@s/c", "b"]);

    // Unpublishing the whole package removes its renderings; published again, it has none.
    let event = vec![AuditEvent::by_operator("package.unpublished", json!({}))];
    let gone = store
        .commit_unpublish("a", rev, Removal::Package, event)
        .await
        .unwrap();
    assert!(matches!(gone, UnpublishOutcome::Removed { .. }), "{gone:?}");
    assert_eq!(stored_now(&store, "a", Form::Full).await, None);
    publish(
        &store,
        version("a", "2.0.0", "latest", alice, "k4"),
        "alice",
    )
    .await;
    assert_eq!(stored_now(&store, "a", Form::Full).await, None);
    assert_eq!(store.unrendered("", 10).await.unwrap(), ["@s/c", "a", "b"]);
}

on_each_store!(a_rendering_is_served_only_at_the_rev_it_was_made_from);
on_each_store!(renderings_go_with_their_package_and_the_sweep_pages_by_name);
