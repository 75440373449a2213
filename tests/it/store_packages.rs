//! The packages part of the metadata-store contract, on every store: publish and its decision
//! inside the commit, reads, dist-tags, deprecation, owners, access, unpublish and tombstones,
//! and concurrent publishers.

use std::collections::BTreeMap;
use std::sync::Arc;

use packr::audit::AuditEvent;
use packr::packages::RegistryError;
use packr::store::Store;
use packr::store::audit::AuditQuery;
use packr::store::orgs::ScopeStanding;
use packr::store::packages::{
    Decide, NewVersion, PublishOutcome, PublishPlan, Removal, TarballRow, UnpublishOutcome,
    VersionRow, Visibility,
};
use serde_json::json;

use crate::support::stores::{StoreUnderTest, on_each_store};

/// Adds a user with raw SQL (the accounts operations are another part of the contract).
pub async fn add_user(under: &StoreUnderTest, name: &str) -> i64 {
    let email = format!("{name}@example.com");
    if let Some(dir) = under.sqlite_dir() {
        let conn = rusqlite::Connection::open(dir.join("packr.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute(
            "INSERT INTO users (name, email, role, created_at) VALUES (?1, ?2, 'maintainer', 0)",
            [name, email.as_str()],
        )
        .unwrap();
        return conn.last_insert_rowid();
    }
    let client = under.database.as_ref().unwrap().connect().await;
    client
        .query_one(
            "INSERT INTO users (name, email, role, created_at) VALUES ($1, $2, 'maintainer', 0)
             RETURNING id",
            &[&name, &email],
        )
        .await
        .unwrap()
        .get(0)
}

pub fn version(
    package: &str,
    version: &str,
    tag: &str,
    publisher_id: i64,
    key: &str,
) -> NewVersion {
    NewVersion {
        attestations: Vec::new(),
        package: package.to_owned(),
        access: "public".to_owned(),
        row: VersionRow {
            version: version.to_owned(),
            manifest: json!({ "name": package, "version": version }).to_string(),
            integrity: format!("sha512-{key}"),
            shasum: format!("sha1-{key}"),
            blob_key: key.to_owned(),
            size: 10,
            deprecated: None,
            readme: Some(format!("readme of {version}")),
            published_at: packr::clock::now_ms(),
            signatures: Vec::new(),
        },
        tag: tag.to_owned(),
        publisher_id,
    }
}

fn published(package: &str, version: &str) -> AuditEvent {
    let mut event = AuditEvent::by_operator("package.published", json!({ "version": version }));
    event.package = Some(package.to_owned());
    event
}

/// The core's rule in miniature: only the maintainers of an existing package publish to it.
fn maintainers_only(publisher: &str, claim: Option<&str>) -> Decide<PublishPlan> {
    let (publisher, claim) = (publisher.to_owned(), claim.map(str::to_owned));
    Box::new(move |facts| {
        if facts.exists && !facts.is_maintainer {
            return Err(RegistryError::NotMaintainer {
                user: publisher,
                package: "the package".into(),
            });
        }
        Ok(PublishPlan {
            claim_scope: claim.filter(|_| !facts.exists),
        })
    })
}

pub async fn publish(store: &Store, new: NewVersion, user: &str) -> PublishOutcome {
    let event = published(&new.package, &new.row.version);
    store
        .commit_publish(new, vec![event], maintainers_only(user, None))
        .await
        .unwrap()
}

async fn count(store: &Store, action: &str) -> i64 {
    let query = AuditQuery {
        action: Some(action.to_owned()),
        limit: 1,
        ..AuditQuery::default()
    };
    store.query_audit_log(query).await.unwrap().1
}

async fn published_versions_read_back_in_order_with_tags_maintainers_and_events(
    under: StoreUnderTest,
) {
    let alice = add_user(&under, "alice").await;
    let bob = add_user(&under, "bob").await;
    let store = under.store.clone();
    assert!(store.load_package("left-pad").await.unwrap().is_none());
    assert_eq!(store.dist_tags("left-pad").await.unwrap(), None);
    let first = publish(
        &store,
        version("left-pad", "1.0.0", "latest", alice, "k1"),
        "alice",
    );
    assert_eq!(first.await, PublishOutcome::Committed);
    let next = version("left-pad", "1.1.0-beta.1", "next", alice, "k2");
    assert_eq!(
        publish(&store, next, "alice").await,
        PublishOutcome::Committed
    );

    let record = store.load_package("left-pad").await.unwrap().unwrap();
    let versions: Vec<_> = record.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["1.0.0", "1.1.0-beta.1"]);
    assert_eq!(record.access, "public");
    assert_eq!(record.rev, 2, "each publish bumps the rev once");
    assert_eq!(
        record.versions[1].readme.as_deref(),
        Some("readme of 1.1.0-beta.1")
    );
    assert_eq!(record.versions[0].deprecated, None);
    let tags = BTreeMap::from([
        ("latest".to_owned(), "1.0.0".to_owned()),
        ("next".to_owned(), "1.1.0-beta.1".to_owned()),
    ]);
    assert_eq!(record.dist_tags, tags);
    assert_eq!(store.dist_tags("left-pad").await.unwrap(), Some(tags));
    assert_eq!(
        record.maintainers,
        [("alice".to_owned(), "alice@example.com".to_owned())]
    );
    assert_eq!(
        store.find_tarball("left-pad", "1.0.0").await.unwrap(),
        Some(TarballRow {
            blob_key: "k1".into(),
            size: 10,
            shasum: "sha1-k1".into()
        })
    );
    assert_eq!(store.find_tarball("left-pad", "9.9.9").await.unwrap(), None);
    assert_eq!(count(&store, "package.published").await, 2);

    let facts = store.write_facts("left-pad", alice).await.unwrap();
    assert!(facts.exists && facts.is_maintainer && facts.org.is_none() && facts.new_name.is_none());
    let facts = store.write_facts("left-pad", bob).await.unwrap();
    assert!(facts.exists && !facts.is_maintainer);
}

on_each_store!(published_versions_read_back_in_order_with_tags_maintainers_and_events);

async fn a_refused_or_repeated_publish_changes_nothing(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let bob = add_user(&under, "bob").await;
    let store = under.store.clone();
    publish(
        &store,
        version("p", "1.0.0", "latest", alice, "k1"),
        "alice",
    )
    .await;

    let again = publish(
        &store,
        version("p", "1.0.0", "latest", alice, "k1"),
        "alice",
    )
    .await;
    assert_eq!(
        again,
        PublishOutcome::Exists {
            integrity: "sha512-k1".into()
        }
    );
    let by_bob = version("p", "2.0.0", "latest", bob, "k2");
    let event = published("p", "2.0.0");
    let refused = store
        .commit_publish(by_bob, vec![event], maintainers_only("bob", None))
        .await;
    assert!(
        matches!(refused, Err(RegistryError::NotMaintainer { .. })),
        "{refused:?}"
    );
    let record = store.load_package("p").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), 1);
    assert_eq!(record.rev, 1);
    assert_eq!(count(&store, "package.published").await, 1);
}

on_each_store!(a_refused_or_repeated_publish_changes_nothing);

async fn dist_tags_deprecations_owners_and_access_change_and_bump_the_rev(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    add_user(&under, "bob").await;
    let store = under.store.clone();
    publish(
        &store,
        version("@x/p", "1.0.0", "latest", alice, "k1"),
        "alice",
    )
    .await;
    publish(
        &store,
        version("@x/p", "2.0.0", "latest", alice, "k2"),
        "alice",
    )
    .await;
    let event = || vec![AuditEvent::by_operator("dist-tag.changed", json!({}))];

    let tags = store
        .set_dist_tag("@x/p", "stable", "1.0.0", event())
        .await
        .unwrap();
    assert_eq!(tags.get("stable").map(String::as_str), Some("1.0.0"));
    assert_eq!(tags.get("latest").map(String::as_str), Some("2.0.0"));
    let tags = store.remove_dist_tag("@x/p", "stable", event()).await;
    assert_eq!(tags.unwrap().unwrap().len(), 1);
    assert_eq!(
        store
            .remove_dist_tag("@x/p", "stable", event())
            .await
            .unwrap(),
        None
    );
    assert_eq!(count(&store, "dist-tag.changed").await, 2);

    let changes = vec![("1.0.0".to_owned(), Some("use 2".to_owned()))];
    store
        .set_deprecations("@x/p", changes, event())
        .await
        .unwrap();
    let record = store.load_package("@x/p").await.unwrap().unwrap();
    assert_eq!(record.versions[0].deprecated.as_deref(), Some("use 2"));
    assert_eq!(record.rev, 5);

    let missing = store
        .set_maintainers("@x/p", vec!["bob".into(), "carol".into()], event())
        .await
        .unwrap();
    assert_eq!(missing.as_deref(), Some("carol"));
    let missing = store
        .set_maintainers("@x/p", vec!["alice".into(), "bob".into()], event())
        .await
        .unwrap();
    assert_eq!(missing, None);
    let record = store.load_package("@x/p").await.unwrap().unwrap();
    let names: Vec<_> = record.maintainers.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(record.rev, 6, "a refused owner change bumps nothing");

    assert_eq!(
        store.package_access("@x/p").await.unwrap().as_deref(),
        Some("public")
    );
    assert!(
        store
            .set_access("@x/p", "restricted", event())
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_access("@x/none", "restricted", vec![])
            .await
            .unwrap()
    );
    assert_eq!(
        store.visibility("@x/p", "x").await.unwrap(),
        Some(Visibility {
            access: "restricted".into(),
            org_scope: false
        })
    );
    assert_eq!(store.visibility("@x/none", "x").await.unwrap(), None);
    let collaborators = store.collaborators("@x/p").await.unwrap();
    assert_eq!(
        collaborators,
        BTreeMap::from([
            ("alice".to_owned(), "write".to_owned()),
            ("bob".to_owned(), "write".to_owned())
        ])
    );
}

on_each_store!(dist_tags_deprecations_owners_and_access_change_and_bump_the_rev);

async fn unpublished_versions_and_names_are_retired_and_free_their_blobs(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let bob = add_user(&under, "bob").await;
    let store = under.store.clone();
    publish(
        &store,
        version("p", "1.0.0", "latest", alice, "k1"),
        "alice",
    )
    .await;
    publish(
        &store,
        version("p", "1.1.0", "latest", alice, "shared"),
        "alice",
    )
    .await;
    publish(
        &store,
        version("q", "1.0.0", "latest", alice, "shared"),
        "alice",
    )
    .await;
    let event = || vec![AuditEvent::by_operator("package.unpublished", json!({}))];
    let one = |v: &str, latest: Option<&str>| Removal::Versions {
        versions: vec![v.to_owned()],
        new_latest: latest.map(str::to_owned),
    };

    let stale = store
        .commit_unpublish("p", 1, one("1.1.0", Some("1.0.0")), event())
        .await
        .unwrap();
    assert_eq!(stale, UnpublishOutcome::Changed);
    assert_eq!(count(&store, "package.unpublished").await, 0);

    let removed = store
        .commit_unpublish("p", 2, one("1.1.0", Some("1.0.0")), event())
        .await
        .unwrap();
    assert_eq!(
        removed,
        UnpublishOutcome::Removed {
            freed_blobs: vec![],
        },
        "q still uses the blob"
    );
    let record = store.load_package("p").await.unwrap().unwrap();
    assert_eq!(
        record.dist_tags.get("latest").map(String::as_str),
        Some("1.0.0")
    );
    let back = publish(
        &store,
        version("p", "1.1.0", "latest", alice, "k9"),
        "alice",
    )
    .await;
    assert_eq!(back, PublishOutcome::Retired);
    assert_eq!(
        count(&store, "package.published").await,
        3,
        "a version that does not land records no event"
    );

    let rev = store.load_package("p").await.unwrap().unwrap().rev;
    let gone = store
        .commit_unpublish("p", rev, Removal::Package, event())
        .await
        .unwrap();
    assert_eq!(
        gone,
        UnpublishOutcome::Removed {
            freed_blobs: vec!["k1".into()]
        }
    );
    assert!(store.load_package("p").await.unwrap().is_none());
    assert_eq!(
        store
            .unreferenced_blobs(vec!["k1".into(), "shared".into()])
            .await
            .unwrap(),
        ["k1"]
    );
    let facts = store.write_facts("p", bob).await.unwrap();
    assert!(!facts.exists);
    assert_eq!(facts.new_name.unwrap().retired, Some(false));
    let facts = store.write_facts("p", alice).await.unwrap();
    assert_eq!(facts.new_name.unwrap().retired, Some(true));
    let again = publish(
        &store,
        version("p", "2.0.0", "latest", alice, "k3"),
        "alice",
    )
    .await;
    assert_eq!(again, PublishOutcome::Committed);
    let record = store.load_package("p").await.unwrap().unwrap();
    assert!(record.rev > rev, "a name published again continues its rev");
    assert_eq!(store.write_facts("p", bob).await.unwrap().new_name, None);
}

on_each_store!(unpublished_versions_and_names_are_retired_and_free_their_blobs);

async fn a_first_publish_claims_its_scope(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let bob = add_user(&under, "bob").await;
    let store = under.store.clone();
    let facts = store.write_facts("@me/a", alice).await.unwrap();
    let new_name = facts.new_name.unwrap();
    assert_eq!(new_name.scope_owner, None);
    assert!(!new_name.scope_has_packages);

    let new = version("@me/a", "1.0.0", "latest", alice, "k1");
    let outcome = store
        .commit_publish(new, vec![], maintainers_only("alice", Some("me")))
        .await
        .unwrap();
    assert_eq!(outcome, PublishOutcome::Committed);
    assert_eq!(
        store.scope_standing("me", bob).await.unwrap(),
        ScopeStanding::Owned {
            owner_id: alice,
            owner: "alice".into()
        }
    );
    let facts = store.write_facts("@me/b", bob).await.unwrap();
    let new_name = facts.new_name.unwrap();
    assert_eq!(new_name.scope_owner, Some((alice, "alice".to_owned())));
    assert!(new_name.scope_has_packages);
    let other = store
        .write_facts("@mex/b", bob)
        .await
        .unwrap()
        .new_name
        .unwrap();
    assert!(!other.scope_has_packages, "@me/ is not a prefix of @mex/");
}

on_each_store!(a_first_publish_claims_its_scope);

async fn concurrent_first_publishes_of_one_name_have_one_winner(under: StoreUnderTest) {
    let mut users = Vec::new();
    for n in 0..8 {
        let name = format!("user{n}");
        users.push((add_user(&under, &name).await, name));
    }
    let store = under.store.clone();
    let tasks: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(n, (id, name))| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let new = version("@race/pkg", &format!("1.0.{n}"), "latest", id, "k");
                let event = published("@race/pkg", "1.0.0");
                store
                    .commit_publish(new, vec![event], maintainers_only(&name, Some("race")))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(PublishOutcome::Committed) => won += 1,
            Err(RegistryError::NotMaintainer { .. }) => {}
            other => panic!("a losing first publish must be refused, not {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let record = store.load_package("@race/pkg").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), 1);
    assert_eq!(record.maintainers.len(), 1);
    assert_eq!(count(&store, "package.published").await, 1);
    let winner = &record.maintainers[0].0;
    let standing = store.scope_standing("race", 0).await.unwrap();
    assert!(
        matches!(&standing, ScopeStanding::Owned { owner, .. } if owner == winner),
        "{standing:?}"
    );
}

on_each_store!(concurrent_first_publishes_of_one_name_have_one_winner);

async fn concurrent_versions_of_one_package_all_land(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    publish(
        &store,
        version("busy", "0.0.1", "latest", alice, "k0"),
        "alice",
    )
    .await;
    let tasks: Vec<_> = (1..=8)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let new = version(
                    "busy",
                    &format!("1.0.{n}"),
                    "latest",
                    alice,
                    &format!("k{n}"),
                );
                publish(&store, new, "alice").await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), PublishOutcome::Committed);
    }
    let record = store.load_package("busy").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), 9);
    assert_eq!(record.rev, 9, "every publish bumped the rev exactly once");
    let latest = record.dist_tags.get("latest").unwrap();
    assert!(record.versions.iter().any(|v| &v.version == latest));
    assert_eq!(record.dist_tags.len(), 1);
    assert_eq!(count(&store, "package.published").await, 9);
}

on_each_store!(concurrent_versions_of_one_package_all_land);

async fn versions_of_one_millisecond_are_listed_by_version_in_byte_order(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    // Published out of byte order, all in one millisecond, and one a millisecond earlier.
    let at = packr::clock::now_ms();
    for (n, (number, published_at)) in [
        ("1.9.0", at),
        ("1.10.0", at),
        ("0.1.0", at + 1),
        ("1.2.0", at),
        ("2.0.0-beta.1", at - 1),
    ]
    .into_iter()
    .enumerate()
    {
        let mut new = version("tied", number, "latest", alice, &format!("k{n}"));
        new.row.published_at = published_at;
        assert_eq!(
            publish(&store, new, "alice").await,
            PublishOutcome::Committed
        );
    }
    let record = store.load_package("tied").await.unwrap().unwrap();
    let versions: Vec<_> = record.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(
        versions,
        ["2.0.0-beta.1", "1.10.0", "1.2.0", "1.9.0", "0.1.0"],
        "by publish time, then by version in byte order"
    );
}

on_each_store!(versions_of_one_millisecond_are_listed_by_version_in_byte_order);
