//! The stored-renderings part of the metadata-store contract, on every store: every change of a
//! small package replaces its rendering in its own transaction, a big package's is made by its
//! first miss and stored back only while still current, a miss reads it back byte for byte, and
//! concurrent publishers leave the rendering of the rows.

use std::sync::Arc;

use packr::audit::AuditEvent;
use packr::packages::{packument, rendering};
use packr::store::Store;
use packr::store::packages::{NewVersion, PublishOutcome, PublishPlan, Removal, VersionRow};
use packr::store::renderings::{Fragment, RENDER_IN_WRITE_VERSIONS, StoredRendering};
use serde_json::json;

use crate::store_packages::add_user;
use crate::support::stores::{StoreUnderTest, on_each_store};

fn version(package: &str, version: &str, publisher_id: i64) -> NewVersion {
    NewVersion {
        package: package.to_owned(),
        access: "public".to_owned(),
        row: VersionRow {
            version: version.to_owned(),
            manifest: json!({
                "name": package, "version": version, "description": format!("v{version}"),
                "license": "MIT", "dependencies": { "left-pad": "^1.0.0" },
                "dist": { "integrity": "sha512-x", "shasum": "ab" }
            })
            .to_string(),
            integrity: "sha512-x".to_owned(),
            shasum: "ab".to_owned(),
            blob_key: format!("key-{version}"),
            size: 10,
            deprecated: None,
            readme: Some(format!("readme of {version}")),
            published_at: packr::clock::now_ms(),
            signatures: Vec::new(),
        },
        tag: "latest".to_owned(),
        publisher_id,
        attestations: Vec::new(),
    }
}

fn event() -> Vec<AuditEvent> {
    vec![AuditEvent::by_operator("package.changed", json!({}))]
}

async fn publish(store: &Store, new: NewVersion) -> PublishOutcome {
    store
        .commit_publish(new, event(), Box::new(|_| Ok(PublishPlan::default())))
        .await
        .unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The stored rendering, which must show the package's current rows exactly as the renderer
/// makes them from those rows now.
async fn stored_matches_rows(store: &Store, name: &str) -> StoredRendering {
    let stored = store
        .stored_rendering(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} has no stored rendering of its current rev"));
    let record = store.load_package(name).await.unwrap().unwrap();
    assert_eq!(stored.rev, record.rev);
    let fresh = packument::render(&record, &stored.base).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&stored.full.plain),
        String::from_utf8_lossy(&fresh.full.plain)
    );
    assert_eq!(gunzip(&stored.full.gzip), fresh.full.plain.as_ref());
    assert_eq!(stored.full.etag, fresh.full.etag);
    assert_eq!(stored.full.gzip_etag, fresh.full.gzip_etag);
    assert_eq!(
        String::from_utf8_lossy(&stored.abbreviated.plain),
        String::from_utf8_lossy(&fresh.abbreviated.plain)
    );
    assert_eq!(
        gunzip(&stored.abbreviated.gzip),
        fresh.abbreviated.plain.as_ref()
    );
    assert_eq!(stored.abbreviated.etag, fresh.abbreviated.etag);
    assert_eq!(stored.abbreviated.gzip_etag, fresh.abbreviated.gzip_etag);
    assert_eq!(stored.last_modified, fresh.last_modified);
    stored
}

/// What a miss does with a stale rendering: assemble it from the source and store it back.
/// `None` when there is no such package; the rendering is returned whether or not it was stored.
async fn render_and_store(store: &Store, name: &str, base: &str) -> Option<StoredRendering> {
    let (rendering, _) = render(store, name, base).await?;
    store
        .store_rendering(name, &rendering, fresh(store, name).await)
        .await
        .unwrap();
    Some(rendering)
}

async fn render(
    store: &Store,
    name: &str,
    base: &str,
) -> Option<(StoredRendering, Vec<(String, Fragment)>)> {
    let source = store.render_source(name).await.unwrap()?;
    let rendering = rendering::assemble(&source, base).unwrap();
    let fragments = source
        .versions
        .into_iter()
        .filter(|v| v.fresh)
        .map(|v| (v.version, v.fragment))
        .collect();
    Some((rendering, fragments))
}

/// The fragments a render would make now (not stored yet).
async fn fresh(store: &Store, name: &str) -> Vec<(String, Fragment)> {
    match store.render_source(name).await.unwrap() {
        None => Vec::new(),
        Some(source) => source
            .versions
            .into_iter()
            .filter(|v| v.fresh)
            .map(|v| (v.version, v.fragment))
            .collect(),
    }
}

async fn every_change_replaces_the_rendering_in_its_transaction(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    add_user(&under, "bob").await;
    let store = under.store.clone();
    let name = "@acme/p";
    assert!(store.stored_rendering(name).await.unwrap().is_none());

    publish(&store, version(name, "1.0.0", alice)).await;
    let first = stored_matches_rows(&store, name).await;
    assert_eq!(first.base, "", "no base is known before a read");
    publish(&store, version(name, "1.1.0", alice)).await;
    let second = stored_matches_rows(&store, name).await;
    assert!(second.rev > first.rev);
    assert!(String::from_utf8_lossy(&second.full.plain).contains("\"1.1.0\":{"));

    // A refused publish changes nothing, its rendering included.
    let refused = store
        .commit_publish(
            version(name, "9.0.0", alice),
            event(),
            Box::new(|_| Err(packr::packages::RegistryError::Conflict("no".into()))),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(store.stored_rendering(name).await.unwrap(), Some(second));

    store
        .set_dist_tag(name, "stable", "1.0.0", event())
        .await
        .unwrap();
    let tagged = stored_matches_rows(&store, name).await;
    assert!(String::from_utf8_lossy(&tagged.abbreviated.plain).contains("\"stable\":\"1.0.0\""));
    store
        .remove_dist_tag(name, "stable", event())
        .await
        .unwrap();
    stored_matches_rows(&store, name).await;

    store
        .set_deprecations(
            name,
            vec![("1.0.0".into(), Some("use 1.1".into()))],
            event(),
        )
        .await
        .unwrap();
    let deprecated = stored_matches_rows(&store, name).await;
    assert!(String::from_utf8_lossy(&deprecated.abbreviated.plain).contains("use 1.1"));
    store
        .set_deprecations(name, vec![("1.0.0".into(), None)], event())
        .await
        .unwrap();
    let cleared = stored_matches_rows(&store, name).await;
    assert!(!String::from_utf8_lossy(&cleared.full.plain).contains("use 1.1"));

    store
        .set_maintainers(name, vec!["alice".into(), "bob".into()], event())
        .await
        .unwrap();
    let owned = stored_matches_rows(&store, name).await;
    assert!(String::from_utf8_lossy(&owned.full.plain).contains("bob@example.com"));

    assert!(store.set_access(name, "restricted", event()).await.unwrap());
    stored_matches_rows(&store, name).await;

    let rev = store.load_package(name).await.unwrap().unwrap().rev;
    let removal = Removal::Versions {
        versions: vec!["1.1.0".into()],
        new_latest: Some("1.0.0".into()),
    };
    store
        .commit_unpublish(name, rev, removal, event())
        .await
        .unwrap();
    let unpublished = stored_matches_rows(&store, name).await;
    assert!(!String::from_utf8_lossy(&unpublished.full.plain).contains("1.1.0"));

    let rev = store.load_package(name).await.unwrap().unwrap().rev;
    store
        .commit_unpublish(name, rev, Removal::Package, event())
        .await
        .unwrap();
    assert!(store.stored_rendering(name).await.unwrap().is_none());
    assert!(render_and_store(&store, name, "http://r").await.is_none());
    assert!(store.render_source(name).await.unwrap().is_none());
}

on_each_store!(every_change_replaces_the_rendering_in_its_transaction);

async fn a_miss_reads_the_stored_bytes_back(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    for v in ["1.0.0", "2.0.0-beta.1", "10.0.0"] {
        publish(&store, version("p", v, alice)).await;
    }
    let stored = stored_matches_rows(&store, "p").await;

    // A read on a base adopts it once: the stored bytes are then that base's, read back whole.
    let on_base = rendering::rebase(&stored, "http://registry.test:4873").unwrap();
    assert!(
        store
            .store_rendering("p", &on_base, Vec::new())
            .await
            .unwrap()
    );
    let read = stored_matches_rows(&store, "p").await;
    assert_eq!(read, on_base);
    // Only a rendering on no base is replaced; another base then is spliced, never stored.
    let other = rendering::rebase(&read, "http://other").unwrap();
    assert!(
        !store
            .store_rendering("p", &other, Vec::new())
            .await
            .unwrap()
    );
    assert_eq!(store.stored_rendering("p").await.unwrap(), Some(on_base));
    let record = store.load_package("p").await.unwrap().unwrap();
    let fresh = packument::render(&record, "http://other").unwrap();
    assert_eq!(other.full.plain, fresh.full.plain.as_ref());
    assert_eq!(other.abbreviated.gzip_etag, fresh.abbreviated.gzip_etag);

    // The next change keeps the adopted base.
    publish(&store, version("p", "10.0.1", alice)).await;
    assert_eq!(
        stored_matches_rows(&store, "p").await.base,
        "http://registry.test:4873"
    );
}

on_each_store!(a_miss_reads_the_stored_bytes_back);

async fn packages_stored_before_renderings_get_one_on_first_read(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    publish(&store, version("old", "1.0.0", alice)).await;
    store
        .set_deprecations("old", vec![("1.0.0".into(), Some("gone".into()))], event())
        .await
        .unwrap();
    publish(&store, version("old", "1.0.1", alice)).await;
    // As a database written before renderings existed has it.
    under
        .execute("DELETE FROM packument_renderings; DELETE FROM version_renderings;")
        .await;
    assert!(store.stored_rendering("old").await.unwrap().is_none());

    let made = render_and_store(&store, "old", "http://r:1").await.unwrap();
    assert_eq!(made.base, "http://r:1");
    assert_eq!(stored_matches_rows(&store, "old").await, made);
    assert!(String::from_utf8_lossy(&made.full.plain).contains("\"deprecated\":\"gone\""));
    // Its fragments were stored too: the next publish assembles from them.
    publish(&store, version("old", "1.0.2", alice)).await;
    stored_matches_rows(&store, "old").await;
}

on_each_store!(packages_stored_before_renderings_get_one_on_first_read);

async fn a_publish_storm_leaves_the_rendering_of_the_rows(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    publish(&store, version("storm", "0.0.1", alice)).await;
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for n in 0..6 {
                    let v = format!("{writer}.{n}.0");
                    assert_eq!(
                        publish(&store, version("storm", &v, alice)).await,
                        PublishOutcome::Committed
                    );
                    if n % 3 == 2 {
                        store
                            .set_dist_tag("storm", &format!("w{writer}"), &v, event())
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored = stored_matches_rows(&store, "storm").await;
    let record = store.load_package("storm").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), 49);
    let text = String::from_utf8_lossy(&stored.abbreviated.plain).into_owned();
    for row in &record.versions {
        assert!(text.contains(&format!("\"{}\":{{", row.version)));
    }
}

on_each_store!(a_publish_storm_leaves_the_rendering_of_the_rows);

/// Publishes `count` versions `1.0.N` of `name`.
async fn publish_many(store: &Store, name: &str, count: i64, alice: i64) {
    for n in 0..count {
        publish(store, version(name, &format!("1.0.{n}"), alice)).await;
    }
}

async fn a_big_package_is_rendered_by_its_first_miss_not_by_its_writes(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    let name = "big";
    publish_many(&store, name, RENDER_IN_WRITE_VERSIONS, alice).await;
    // Up to the limit, every write renders.
    stored_matches_rows(&store, name).await;

    // Past it, a publish leaves the rendering stale: never served, and not made.
    publish(&store, version(name, "2.0.0", alice)).await;
    assert!(store.stored_rendering(name).await.unwrap().is_none());
    let source = store.render_source(name).await.unwrap().unwrap();
    let fresh: Vec<_> = source.versions.iter().filter(|v| v.fresh).collect();
    assert_eq!(
        fresh.len(),
        1,
        "only the new version has no stored fragment"
    );
    assert_eq!(fresh[0].version, "2.0.0");

    // The first miss makes it, with the missing fragment.
    let made = render_and_store(&store, name, "http://r").await.unwrap();
    assert_eq!(stored_matches_rows(&store, name).await, made);
    let source = store.render_source(name).await.unwrap().unwrap();
    assert!(source.versions.iter().all(|v| !v.fresh));
    assert_eq!(source.versions.len() as i64, RENDER_IN_WRITE_VERSIONS + 1);

    // A deprecation drops that version's fragment; the next miss renders it again.
    store
        .set_deprecations(name, vec![("1.0.3".into(), Some("no".into()))], event())
        .await
        .unwrap();
    assert!(store.stored_rendering(name).await.unwrap().is_none());
    let made = render_and_store(&store, name, "http://r").await.unwrap();
    assert!(String::from_utf8_lossy(&made.full.plain).contains("\"deprecated\":\"no\""));
    assert_eq!(stored_matches_rows(&store, name).await.base, "http://r");
}

on_each_store!(a_big_package_is_rendered_by_its_first_miss_not_by_its_writes);

async fn a_write_back_never_stores_a_rendering_a_change_overtook(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    let name = "raced";
    publish_many(&store, name, RENDER_IN_WRITE_VERSIONS + 1, alice).await;

    // Rendered at rev R; a publish commits before the write-back.
    let (old, fragments) = render(&store, name, "http://r").await.unwrap();
    publish(&store, version(name, "3.0.0", alice)).await;
    assert!(!store.store_rendering(name, &old, fragments).await.unwrap());
    assert!(store.stored_rendering(name).await.unwrap().is_none());

    // The current one is stored; the older one can never replace it.
    let (current, fragments) = render(&store, name, "http://r").await.unwrap();
    assert!(
        store
            .store_rendering(name, &current, fragments)
            .await
            .unwrap()
    );
    assert!(!store.store_rendering(name, &old, Vec::new()).await.unwrap());
    assert_eq!(stored_matches_rows(&store, name).await, current);

    // Misses writing back while writers publish: whatever is served is the rows' rendering.
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..8 {
                    if let Some((made, fragments)) = render(&store, name, "http://r").await {
                        store.store_rendering(name, &made, fragments).await.unwrap();
                    }
                    if let Some(stored) = store.stored_rendering(name).await.unwrap() {
                        let record = store.load_package(name).await.unwrap().unwrap();
                        // A write may land between the two reads; a served rendering is never
                        // newer than the rows, and is theirs when the rev matches.
                        assert!(stored.rev <= record.rev);
                    }
                }
            })
        })
        .collect();
    for n in 0..12 {
        publish(&store, version(name, &format!("4.0.{n}"), alice)).await;
    }
    for reader in readers {
        reader.await.unwrap();
    }
    render_and_store(&store, name, "http://r").await.unwrap();
    let stored = stored_matches_rows(&store, name).await;
    assert!(String::from_utf8_lossy(&stored.abbreviated.plain).contains("\"4.0.11\":{"));
}

on_each_store!(a_write_back_never_stores_a_rendering_a_change_overtook);

/// A manifest of a common size (a dozen dependencies, scripts, a description).
fn realistic(package: &str, version: &str, publisher_id: i64) -> NewVersion {
    let mut new = self::version(package, version, publisher_id);
    let dependencies: serde_json::Map<_, _> = (0..12)
        .map(|n| (format!("dependency-{n}"), json!(format!("^{n}.2.3"))))
        .collect();
    new.row.manifest = json!({
        "name": package, "version": version, "license": "Apache-2.0",
        "description": "TypeScript is a language for application scale JavaScript development",
        "main": "./lib/index.js", "types": "./lib/index.d.ts",
        "bin": { "tsc": "./bin/tsc", "tsserver": "./bin/tsserver" },
        "engines": { "node": ">=14.17" },
        "scripts": { "build": "hereby build", "test": "hereby runtests-parallel" },
        "repository": { "type": "git", "url": "https://github.com/example/example.git" },
        "dependencies": dependencies,
        "_npmUser": { "name": "alice", "email": "alice@example.com" },
        "dist": { "integrity": format!("sha512-{version}"), "shasum": "0123456789abcdef0123456789abcdef01234567",
                  "fileCount": 200, "unpackedSize": 23_000_000 }
    })
    .to_string();
    new
}

async fn time_publish(store: &Store, new: NewVersion) -> std::time::Duration {
    let started = std::time::Instant::now();
    assert_eq!(publish(store, new).await, PublishOutcome::Committed);
    started.elapsed()
}

/// Publishing into a 3,000-version package against publishing a package's second version, on
/// each store (store commit only: parsing, tarball checks and the blob write do not grow with the
/// package). Prints timings; run with
/// `cargo test --test it -- --ignored --nocapture publish_timings`.
#[tokio::test]
#[ignore = "a measurement: prints timings, asserts nothing about them"]
async fn publish_timings_small_and_3000_versions() {
    use crate::support::stores::Backend;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let under = StoreUnderTest::open(backend).await;
        let alice = add_user(&under, "alice").await;
        let store = under.store.clone();
        let mut small = Vec::new();
        for round in 0..20 {
            let name = format!("small-{round}");
            publish(&store, realistic(&name, "1.0.0", alice)).await;
            small.push(time_publish(&store, realistic(&name, "1.0.1", alice)).await);
        }
        // 2,999 versions put in as rows (as a database of before renderings has them), then
        // one read renders their fragments once.
        publish(&store, realistic("big", "0.0.0", alice)).await;
        let mut sql = String::new();
        for n in 1..3000 {
            let row = realistic("big", &format!("1.{}.{}", n / 100, n % 100), alice).row;
            sql.push_str(&format!(
                "INSERT INTO versions (package, version, manifest, integrity, shasum, blob_key, size, readme, published_at) \
                 VALUES ('big', '{}', '{}', 'sha512-x', 'ab', 'k{n}', 10, NULL, {});\n",
                row.version,
                row.manifest.replace('\'', "''"),
                row.published_at + n
            ));
        }
        under.execute(&sql).await;
        under
            .execute("UPDATE packages SET rev = rev + 1 WHERE name = 'big';")
            .await;
        let started = std::time::Instant::now();
        let first = render_and_store(&store, "big", "http://r").await.unwrap();
        let lazy = started.elapsed();
        let mut big = Vec::new();
        for n in 0..20 {
            big.push(time_publish(&store, realistic("big", &format!("2.0.{n}"), alice)).await);
        }
        // Past RENDER_IN_WRITE_VERSIONS the publishes left it stale: a miss makes it again.
        render_and_store(&store, "big", "http://r").await.unwrap();
        let stored = stored_matches_rows(&store, "big").await;
        let started = std::time::Instant::now();
        store.stored_rendering("big").await.unwrap().unwrap();
        let read = started.elapsed();
        let started = std::time::Instant::now();
        rendering::rebase(&stored, "http://elsewhere:4873").unwrap();
        let splice = started.elapsed();
        small.sort();
        big.sort();
        println!(
            "{backend:?}: publishing version 2: median {:?} (p90 {:?}); publishing into 3,000 versions: median {:?} (p90 {:?}); \
             ratio {:.2}; documents {} + {} bytes (gzip {} + {}); first render from rows {lazy:?}; \
             stored read {read:?}; splice of another base {splice:?}",
            small[10],
            small[18],
            big[10],
            big[18],
            big[10].as_secs_f64() / small[10].as_secs_f64(),
            first.full.plain.len(),
            first.abbreviated.plain.len(),
            first.full.gzip.len(),
            first.abbreviated.gzip.len(),
        );
    }
}
