//! Blob claims across instances sharing one PostgreSQL database and one bucket: a refused publish
//! never deletes the blob of an accepted publish of the same bytes on another instance, and the
//! claims themselves (the store side, [`SharedBlobClaims`]) behave as their contract says.

use std::sync::Arc;
use std::time::Duration;

use packr::auth::{Caller, Role, UserRole};
use packr::packages::registry::{Registry, RegistrySettings};
use packr::packages::{PackageName, RegistryError};
use packr::store::blob::s3::S3BlobStore;
use packr::store::blob_claims::SharedBlobClaims;
use packr::store::{BlobKey, BlobStore, Postgres, Store};

use crate::support::postgres::fresh_database;
use crate::support::publish_body::PublishBody;
use crate::support::s3::S3Server;
use crate::support::stores::maintainer;

fn caller(user_id: i64, name: &str) -> Caller {
    Caller {
        user_id,
        name: name.to_owned(),
        email: format!("{name}@example.com"),
        token_id: format!("token-of-{name}"),
        role: Role::Maintainer,
        scopes: Vec::new(),
        user_role: UserRole::Maintainer,
        service_token: false,
        origin: Default::default(),
    }
}

/// One instance: its own connection pool and its own blob client, on the shared database and
/// bucket, with its own in-memory claims.
async fn instance(url: &str, s3: &S3Server) -> (Store, Registry, Arc<dyn BlobStore>) {
    let store: Store = Arc::new(Postgres::open(url).await.expect("opening PostgreSQL"));
    let blobs: Arc<dyn BlobStore> = Arc::new(S3BlobStore::new(&s3.config()).unwrap());
    let settings = RegistrySettings {
        unpublish_window: Duration::from_secs(72 * 3600),
        tarball_limits: Default::default(),
        packument_cache_bytes: 1 << 20,
        tarball_redirect: false,
        sigstore_trust_root: None,
    };
    let registry = Registry::new(Arc::clone(&store), Arc::clone(&blobs), settings);
    (store, registry, blobs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_on_one_instance_never_deletes_what_another_commits() {
    let database = fresh_database().await;
    let s3 = S3Server::start().await;
    let (store, refusing, _) = instance(&database.url, &s3).await;
    let (_, accepting, blobs) = instance(&database.url, &s3).await;
    let owner = caller(maintainer(&store, "owner").await, "owner");
    let outsider = caller(maintainer(&store, "outsider").await, "outsider");
    let name = PackageName::parse("raced").unwrap();
    let first = PublishBody::new("raced", "0.0.1").json();
    accepting.publish(&owner, &name, first).await.unwrap();

    let rounds = 60;
    let mut lost = Vec::new();
    for round in 0..rounds {
        let body = PublishBody::new("raced", &format!("1.0.{round}"));
        // The same bytes, sent by the owner to one instance and by an outsider to the other,
        // with the outsider's head start varied so that the windows meet.
        let head_start = Duration::from_micros(250 * (round % 8));
        let refused = {
            let (registry, name, json) = (refusing.clone(), name.clone(), body.json());
            let outsider = outsider.clone();
            tokio::spawn(async move { registry.publish(&outsider, &name, json).await })
        };
        tokio::time::sleep(head_start).await;
        let accepted = accepting.publish(&owner, &name, body.json()).await;
        let refused = refused.await.unwrap();
        assert!(accepted.is_ok(), "round {round}: {accepted:?}");
        assert!(
            matches!(refused, Err(RegistryError::NotMaintainer { .. })),
            "round {round}: {refused:?}"
        );
        let key = BlobKey::parse(&body.sha512_hex()).unwrap();
        if blobs.get(&key).await.unwrap().is_none() {
            lost.push(round);
        }
    }
    assert!(
        lost.is_empty(),
        "the tarballs of accepted publishes were deleted by refused ones in rounds {lost:?}"
    );
    // Each refused publish released its claim, and no blob of its own stays either: every
    // blob in the bucket is a version's.
    let record = store.load_package("raced").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), rounds as usize + 1);
    let mut keys = s3.keys().await;
    keys.retain(|k| !k.ends_with('/'));
    assert_eq!(keys.len(), rounds as usize + 1, "{keys:?}");
    let client = database.connect().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let claims: i64 = client
        .query_one("SELECT count(*) FROM blob_claims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(claims, 0, "every claim was released");
}

fn shared(store: &Store) -> Arc<dyn SharedBlobClaims> {
    store
        .shared_blob_claims()
        .expect("PostgreSQL shares blob claims")
}

#[tokio::test]
async fn a_claim_waits_for_a_discard_and_a_discard_yields_to_claims_and_versions() {
    let database = fresh_database().await;
    let a: Store = Arc::new(Postgres::open(&database.url).await.unwrap());
    let b: Store = Arc::new(Postgres::open(&database.url).await.unwrap());
    let (on_a, on_b) = (shared(&a), shared(&b));

    // Another instance holds the key: the discard is refused and its claim released.
    let mine = on_a.claim("k1").await.unwrap();
    let theirs = on_b.claim("k1").await.unwrap();
    assert!(!on_a.begin_discard(mine, "k1").await.unwrap());
    on_b.release(theirs).await.unwrap();

    // Nobody else holds it: the discard goes ahead, and a claim elsewhere waits until it ends.
    let mine = on_a.claim("k1").await.unwrap();
    assert!(on_a.begin_discard(mine, "k1").await.unwrap());
    let waiting = tokio::spawn({
        let on_b = Arc::clone(&on_b);
        async move { on_b.claim("k1").await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "claimed while the blob was deleted");
    let other = on_a.claim("k2").await.unwrap();
    on_a.release(other).await.unwrap();
    on_a.release(mine).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the claim is granted once the discard ends")
        .unwrap();
    on_b.release(next).await.unwrap();

    // A version references the blob: it stays.
    let client = database.connect().await;
    client
        .batch_execute(
            "INSERT INTO packages (name, access, rev, created_at, modified_at)
               VALUES ('p', 'public', 1, 0, 0);
             INSERT INTO versions (package, version, manifest, integrity, shasum, blob_key, size,
                                   published_at)
               VALUES ('p', '1.0.0', '{}', 'sha512-x', 'x', 'k3', 1, 0);",
        )
        .await
        .unwrap();
    let mine = on_a.claim("k3").await.unwrap();
    assert!(!on_a.begin_discard(mine, "k3").await.unwrap());

    // A lapsed claim (a dead instance's) neither blocks a discard nor a claim.
    client
        .batch_execute(
            "INSERT INTO blob_claims (blob_key, discarding, expires_at) VALUES ('k4', FALSE, 1);
             INSERT INTO blob_claims (blob_key, discarding, expires_at) VALUES ('k5', TRUE, 1);",
        )
        .await
        .unwrap();
    let mine = on_a.claim("k4").await.unwrap();
    assert!(on_a.begin_discard(mine, "k4").await.unwrap());
    on_a.release(mine).await.unwrap();
    let claimed = tokio::time::timeout(Duration::from_secs(1), on_b.claim("k5"))
        .await
        .expect("a lapsed discard holds nothing")
        .unwrap();
    on_b.release(claimed).await.unwrap();
    let left: i64 = client
        .query_one("SELECT count(*) FROM blob_claims WHERE expires_at > 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
