//! PostgreSQL side of [`crate::store::PackageStore`].
//!
//! Writers run concurrently here, so every change to a package first takes a transaction-scoped
//! advisory lock on `package:<name>`, and a publish of a scoped name then also `scope:<slug>`
//! (exclusively for a first publish, which may claim the scope; shared for a new version). Org
//! creation and scope reservations take `scope:<slug>` exclusively, so an org cannot appear
//! between a publish's look at the scope and its commit: the facts a change is decided on cannot
//! move until it commits. Statements go through the connection's statement cache. Reads are one
//! statement each, so a packument is one round trip whatever its number of versions. Versions
//! are listed by publish time, those of the same millisecond by version in byte order, as on
//! SQLite.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::audit::AuditEvent;
use crate::clock;
use crate::orgs::scope_slug;
use crate::packages::RegistryError;
use crate::store::StoreError;
use crate::store::packages::parse_signatures;
use crate::store::packages::{
    Decide, NewNameFacts, NewVersion, PackageRecord, PublishOutcome, PublishPlan, Removal,
    TarballRow, UnpublishOutcome, VersionRow, Visibility, WriteFacts,
};

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs a package read (`$body`, a `Result<Option<_>, StoreError>` using the connection
/// `$client`) on a replica that has replayed every known change of `$package` (see
/// [`super::replicas`]), else on the primary. What the replica does not find (it may not have
/// replayed a publish this instance has not heard of yet), fails on, or does not answer within
/// [`super::replicas::READ_TIMEOUT`] is asked of the primary.
macro_rules! read_package {
    ($store:expr, $package:expr, |$client:ident| $body:expr) => {{
        let store: &super::Postgres = $store;
        let replica = store.replicas().and_then(|r| r.for_package($package));
        let mut found = None;
        if let Some(replica) = replica {
            let read = async {
                let $client = replica.pool().get().await?;
                $body
            };
            let on_replica: Result<Result<_, StoreError>, _> =
                tokio::time::timeout(super::replicas::READ_TIMEOUT, read).await;
            match on_replica {
                Ok(Ok(Some(row))) => found = Some(row),
                Ok(Ok(None)) => {}
                Ok(Err(err)) => replica.failed(&err),
                Err(_) => replica.failed(&"no answer within the read timeout"),
            }
        }
        match found {
            Some(row) => Ok(Some(row)),
            None => {
                let $client = store.pool().get().await?;
                $body
            }
        }
    }};
}
pub(super) use read_package;

/// Runs `sql` (prepared once per connection) and returns its rows.
pub(super) async fn rows<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// Runs `sql` and returns its one row.
pub(super) async fn one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_one(&statement, params).await?)
}

/// Runs `sql` and returns its row, if any.
pub(super) async fn opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

/// Runs `sql` and returns how many rows it changed.
pub(super) async fn exec<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// Waits for, then holds until the transaction ends, the advisory lock named `key`.
pub(super) async fn lock<C: GenericClient>(client: &C, key: &str) -> Result<(), StoreError> {
    exec(client, LOCK, &[&key]).await?;
    Ok(())
}

const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/// As [`lock`], shared with other holders of the shared lock, exclusive of [`lock`]'s holders.
async fn lock_shared<C: GenericClient>(client: &C, key: &str) -> Result<(), StoreError> {
    exec(
        client,
        "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))",
        &[&key],
    )
    .await?;
    Ok(())
}

pub(super) fn package_lock(name: &str) -> String {
    format!("package:{name}")
}

/// The lock on a scope: who may publish under it (its org, its owner) stays as it is while held.
pub(super) fn scope_lock(slug: &str) -> String {
    format!("scope:{slug}")
}

/// Loads everything about one package in one statement (one snapshot), or `None`.
async fn load<C: GenericClient>(
    client: &C,
    name: &str,
) -> Result<Option<PackageRecord>, StoreError> {
    let Some(row) = opt(
        client,
        "SELECT p.access, p.rev, p.created_at, p.modified_at,
                v.versions, v.manifests, v.integrities, v.shasums, v.blob_keys, v.sizes,
                v.deprecations, v.readmes, v.published, v.signatures, t.tags, t.targets, m.names, m.emails
         FROM packages p
         CROSS JOIN LATERAL (
             SELECT array_agg(version ORDER BY published_at, version COLLATE \"C\") AS versions,
                    array_agg(manifest ORDER BY published_at, version COLLATE \"C\") AS manifests,
                    array_agg(integrity ORDER BY published_at, version COLLATE \"C\") AS integrities,
                    array_agg(shasum ORDER BY published_at, version COLLATE \"C\") AS shasums,
                    array_agg(blob_key ORDER BY published_at, version COLLATE \"C\") AS blob_keys,
                    array_agg(size ORDER BY published_at, version COLLATE \"C\") AS sizes,
                    array_agg(deprecated ORDER BY published_at, version COLLATE \"C\") AS deprecations,
                    array_agg(readme ORDER BY published_at, version COLLATE \"C\") AS readmes,
                    array_agg(published_at ORDER BY published_at, version COLLATE \"C\") AS published,
                    array_agg((SELECT json_agg(json_build_object('keyid', s.keyid, 'sig', s.sig))::text
                               FROM version_signatures s
                               WHERE s.package = versions.package AND s.version = versions.version)
                              ORDER BY published_at, version COLLATE \"C\") AS signatures
             FROM versions WHERE package = p.name) v
         CROSS JOIN LATERAL (
             SELECT array_agg(tag) AS tags, array_agg(version) AS targets
             FROM dist_tags WHERE package = p.name) t
         CROSS JOIN LATERAL (
             SELECT array_agg(u.name ORDER BY u.name COLLATE \"C\") AS names,
                    array_agg(u.email ORDER BY u.name COLLATE \"C\") AS emails
             FROM maintainers mt JOIN users u ON u.id = mt.user_id WHERE mt.package = p.name) m
         WHERE p.name = $1",
        &[&name],
    )
    .await?
    else {
        return Ok(None);
    };
    fn list<T: for<'a> tokio_postgres::types::FromSql<'a>>(row: &Row, at: usize) -> Vec<T> {
        row.get::<_, Option<Vec<T>>>(at).unwrap_or_default()
    }
    let versions: Vec<String> = list(&row, 4);
    let mut manifests = list::<String>(&row, 5).into_iter();
    let mut integrities = list::<String>(&row, 6).into_iter();
    let mut shasums = list::<String>(&row, 7).into_iter();
    let mut blob_keys = list::<String>(&row, 8).into_iter();
    let mut sizes = list::<i64>(&row, 9).into_iter();
    let mut deprecations = list::<Option<String>>(&row, 10).into_iter();
    let mut readmes = list::<Option<String>>(&row, 11).into_iter();
    let mut published = list::<i64>(&row, 12).into_iter();
    let mut signatures = list::<Option<String>>(&row, 13).into_iter();
    let versions = versions
        .into_iter()
        .map(|version| {
            Ok(VersionRow {
                version,
                manifest: manifests.next().unwrap_or_default(),
                integrity: integrities.next().unwrap_or_default(),
                shasum: shasums.next().unwrap_or_default(),
                blob_key: blob_keys.next().unwrap_or_default(),
                size: sizes.next().unwrap_or_default(),
                deprecated: deprecations.next().flatten(),
                readme: readmes.next().flatten(),
                published_at: published.next().unwrap_or_default(),
                signatures: parse_signatures(signatures.next().flatten().as_deref())?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let dist_tags = list::<String>(&row, 14)
        .into_iter()
        .zip(list::<String>(&row, 15))
        .collect();
    let maintainers = list::<String>(&row, 16)
        .into_iter()
        .zip(list::<String>(&row, 17))
        .collect();
    Ok(Some(PackageRecord {
        name: name.to_owned(),
        access: row.get(0),
        rev: row.get(1),
        created_at: row.get(2),
        modified_at: row.get(3),
        versions,
        dist_tags,
        maintainers,
    }))
}

/// A package's dist-tags, or `None` when there is no such package.
async fn tags_of<C: GenericClient>(
    client: &C,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, StoreError> {
    let row = one(
        client,
        "SELECT EXISTS (SELECT 1 FROM packages WHERE name = $1),
                array_agg(tag), array_agg(version)
         FROM dist_tags WHERE package = $1",
        &[&name],
    )
    .await?;
    if !row.get::<_, bool>(0) {
        return Ok(None);
    }
    let tags: Option<Vec<String>> = row.get(1);
    let targets: Option<Vec<String>> = row.get(2);
    Ok(Some(
        tags.unwrap_or_default()
            .into_iter()
            .zip(targets.unwrap_or_default())
            .collect(),
    ))
}

async fn dist_tags<C: GenericClient>(
    client: &C,
    name: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    Ok(rows(
        client,
        "SELECT tag, version FROM dist_tags WHERE package = $1",
        &[&name],
    )
    .await?
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect())
}

/// The facts deciding whether `user_id` may change (or create) `name`. With `locking`, inside a
/// write's transaction, the package's lock is taken first (in the same round trip as the first
/// look), then the name's scope is locked before its org and owner are looked at: exclusively
/// when the publish may claim the scope (a new name in a scope nobody holds yet), else shared, so
/// that first publishes into an existing org or owned scope run side by side.
pub(super) async fn write_facts<C: GenericClient>(
    client: &C,
    name: &str,
    user_id: i64,
    locking: bool,
) -> Result<WriteFacts, StoreError> {
    let slug = scope_slug(name);
    let look = first_look(client, name, user_id, locking).await?;
    if let (Some(slug), true) = (slug, locking) {
        // `exists` holds while the package's lock is held. A scope once held stays held (an org
        // or owner goes only with its account, rarely), and a lapse is caught below.
        if look.exists || look.held {
            lock_shared(client, &scope_lock(slug)).await?;
        } else {
            lock(client, &scope_lock(slug)).await?;
        }
    }
    let facts = scope_facts(client, name, user_id, &look).await?;
    let lapsed = facts.org.is_none()
        && facts
            .new_name
            .as_ref()
            .is_some_and(|new| new.scope_owner.is_none());
    if let (Some(slug), true, true) = (slug, locking && look.held, lapsed) {
        // The scope's holder went between the look and the shared lock: this publish may claim
        // it, which takes the lock exclusively (and a fresh look).
        lock(client, &scope_lock(slug)).await?;
        return scope_facts(client, name, user_id, &look).await;
    }
    Ok(facts)
}

/// What [`write_facts`] reads of a name before its scope's lock.
struct FirstLook {
    exists: bool,
    is_maintainer: bool,
    /// Whether the name's scope has an owner or an org.
    held: bool,
    /// As [`NewNameFacts::retired`].
    retired: Option<bool>,
}

/// Reads [`FirstLook`] in one statement; with `lock_package`, behind the package's lock, in the
/// same round trip.
async fn first_look<C: GenericClient>(
    client: &C,
    name: &str,
    user_id: i64,
    lock_package: bool,
) -> Result<FirstLook, StoreError> {
    const LOOK: &str = "SELECT EXISTS (SELECT 1 FROM packages WHERE name = $1),
            EXISTS (SELECT 1 FROM maintainers WHERE package = $1 AND user_id = $2),
            $3::text IS NOT NULL AND (EXISTS (SELECT 1 FROM scope_owners WHERE scope = $3)
                                      OR EXISTS (SELECT 1 FROM orgs WHERE slug = $3)),
            EXISTS (SELECT 1 FROM retired_packages WHERE name = $1),
            EXISTS (SELECT 1 FROM retired_package_maintainers WHERE package = $1 AND user_id = $2)";
    let slug = scope_slug(name);
    let params: [&(dyn ToSql + Sync); 3] = [&name, &user_id, &slug];
    let row = if lock_package {
        // Both are prepared first, then sent together: tokio-postgres runs requests in the order
        // their futures are first polled, and `try_join!` polls the lock's first. The look (its
        // own snapshot, read committed) then sees every write committed before the lock was
        // granted.
        let (lock_statement, look) =
            futures_util::try_join!(client.prepare_cached(LOCK), client.prepare_cached(LOOK))?;
        let key = package_lock(name);
        let key: [&(dyn ToSql + Sync); 1] = [&key];
        futures_util::try_join!(
            client.execute(&lock_statement, &key),
            client.query_one(&look, &params)
        )?
        .1
    } else {
        one(client, LOOK, &params).await?
    };
    let (retired, former): (bool, bool) = (row.get(3), row.get(4));
    Ok(FirstLook {
        exists: row.get(0),
        is_maintainer: row.get(1),
        held: row.get(2),
        retired: retired.then_some(former),
    })
}

/// The org and new-name facts of [`write_facts`], read once the scope's lock is held.
async fn scope_facts<C: GenericClient>(
    client: &C,
    name: &str,
    user_id: i64,
    look: &FirstLook,
) -> Result<WriteFacts, StoreError> {
    let slug = scope_slug(name);
    let org = match slug {
        Some(slug) => super::orgs::org_facts(client, slug, name, user_id).await?,
        None => None,
    };
    let new_name = if look.exists {
        None
    } else {
        // Who holds a scope matters only to a new name in a scope that is no org's.
        let (scope_owner, scope_has_packages) = match slug.filter(|_| org.is_none()) {
            Some(slug) => scope_holder(client, slug).await?,
            None => (None, false),
        };
        Some(NewNameFacts {
            retired: look.retired,
            scope_owner,
            scope_has_packages,
        })
    };
    Ok(WriteFacts {
        exists: look.exists,
        is_maintainer: look.is_maintainer,
        org,
        new_name,
    })
}

/// The owner `(id, name)` of a scope that is no org's, and whether any package is under it.
async fn scope_holder<C: GenericClient>(
    client: &C,
    slug: &str,
) -> Result<(Option<(i64, String)>, bool), StoreError> {
    // '0' follows '/' in byte order: the range holds exactly the names under `@scope/`.
    let (from, to) = (format!("@{slug}/"), format!("@{slug}0"));
    let row = one(
        client,
        "SELECT s.user_id, u.name,
                EXISTS (SELECT 1 FROM packages
                        WHERE name COLLATE \"C\" >= $2 AND name COLLATE \"C\" < $3)
         FROM (SELECT 1) one
         LEFT JOIN scope_owners s ON s.scope = $1
         LEFT JOIN users u ON u.id = s.user_id",
        &[&slug, &from, &to],
    )
    .await?;
    let owner: Option<i64> = row.get(0);
    Ok((owner.map(|id| (id, row.get(1))), row.get(2)))
}

async fn bump<C: GenericClient>(client: &C, name: &str, now: i64) -> Result<(), StoreError> {
    exec(
        client,
        "UPDATE packages SET rev = rev + 1, modified_at = $2 WHERE name = $1",
        &[&name, &now],
    )
    .await?;
    Ok(())
}

async fn put_tag<C: GenericClient>(
    client: &C,
    name: &str,
    tag: &str,
    version: &str,
) -> Result<(), StoreError> {
    exec(
        client,
        "INSERT INTO dist_tags (package, tag, version) VALUES ($1, $2, $3)
         ON CONFLICT (package, tag) DO UPDATE SET version = excluded.version",
        &[&name, &tag, &version],
    )
    .await?;
    Ok(())
}

/// Inserts a version (see the SQLite twin, `store::sqlite::packages::commit_publish`) with
/// everything that hangs on it, in one statement: one round trip, however many rows.
pub(super) async fn insert_version<C: GenericClient>(
    client: &C,
    new: &NewVersion,
) -> Result<PublishOutcome, StoreError> {
    let row = &new.row;
    let (keyids, sigs): (Vec<&str>, Vec<&str>) = row
        .signatures
        .iter()
        .map(|s| (s.keyid.as_str(), s.sig.as_str()))
        .unzip();
    let (kinds, bundles): (Vec<&str>, Vec<&str>) = new
        .attestations
        .iter()
        .map(|a| (a.predicate_type.as_str(), a.bundle.as_str()))
        .unzip();
    // Unless the version was retired or a stage reserves it (a staged version is reserved until
    // its stage is approved, which deletes it first, or rejected; both take the package's lock,
    // as this publish does), a new name gets its row (its rev already counting this version),
    // first maintainer and loses its retired record; the version gets its row, signatures and
    // attestations, moves its tag (and `latest`, when the package has none) and bumps the
    // package's rev. The sibling statements share one snapshot: the bump finds no row for a
    // package created here. References to rows inserted here are checked at the end of the
    // statement. When the version exists already, the last column is its stored integrity.
    let written = one(
        client,
        "WITH blocked AS (
             SELECT EXISTS (SELECT 1 FROM retired_versions WHERE package = $1 AND version = $2)
                        AS retired,
                    (SELECT id FROM stages WHERE package = $1 AND version = $2) AS stage),
         created AS (
             INSERT INTO packages (name, access, rev, created_at, modified_at)
             SELECT $1, $3,
                    COALESCE((SELECT last_rev FROM retired_packages WHERE name = $1), 0) + 1,
                    $11, $11
             FROM blocked WHERE NOT retired AND stage IS NULL
             ON CONFLICT (name) DO NOTHING
             RETURNING name),
         maintainer AS (
             INSERT INTO maintainers (package, user_id) SELECT name, $10 FROM created),
         unretired AS (
             DELETE FROM retired_packages WHERE name IN (SELECT name FROM created)),
         inserted AS (
             INSERT INTO versions (package, version, manifest, integrity, shasum, blob_key, size,
                                   deprecated, readme, publisher_id, published_at)
             SELECT $1, $2, $4, $5, $6, $7, $8, NULL, $9, $10, $11
             FROM blocked WHERE NOT retired AND stage IS NULL
             ON CONFLICT (package, version) DO NOTHING
             RETURNING 1),
         signed AS (
             INSERT INTO version_signatures (package, version, keyid, sig)
             SELECT $1, $2, keyid, sig FROM inserted, unnest($13::text[], $14::text[]) s(keyid, sig)),
         attested AS (
             INSERT INTO version_attestations (package, version, predicate_type, bundle)
             SELECT $1, $2, kind, bundle
             FROM inserted, unnest($15::text[], $16::text[]) a(kind, bundle)),
         tagged AS (
             INSERT INTO dist_tags (package, tag, version) SELECT $1, $12, $2 FROM inserted
             ON CONFLICT (package, tag) DO UPDATE SET version = excluded.version),
         latest AS (
             INSERT INTO dist_tags (package, tag, version)
             SELECT $1, 'latest', $2 FROM inserted WHERE $12 <> 'latest'
             ON CONFLICT (package, tag) DO NOTHING),
         bumped AS (
             UPDATE packages SET rev = rev + 1, modified_at = $11
             WHERE name = $1 AND EXISTS (SELECT 1 FROM inserted))
         SELECT retired, stage, EXISTS (SELECT 1 FROM inserted),
                (SELECT integrity FROM versions WHERE package = $1 AND version = $2)
         FROM blocked",
        &[
            &new.package,
            &row.version,
            &new.access,
            &row.manifest,
            &row.integrity,
            &row.shasum,
            &row.blob_key,
            &row.size,
            &row.readme,
            &new.publisher_id,
            &row.published_at,
            &new.tag,
            &keyids,
            &sigs,
            &kinds,
            &bundles,
        ],
    )
    .await?;
    Ok(if written.get::<_, bool>(0) {
        PublishOutcome::Retired
    } else if let Some(id) = written.get::<_, Option<String>>(1) {
        PublishOutcome::Staged { id }
    } else if written.get::<_, bool>(2) {
        PublishOutcome::Committed
    } else {
        PublishOutcome::Exists {
            integrity: written.get(3),
        }
    })
}

/// Writes what a version that lands brings besides its own rows: the claim on its scope, if the
/// core allowed one, and the change's events.
pub(super) async fn record_landing<C: GenericClient>(
    tx: &C,
    new: &NewVersion,
    claim_scope: Option<&str>,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let claim = async {
        let Some(slug) = claim_scope else {
            return Ok(());
        };
        exec(
            tx,
            "INSERT INTO scope_owners (scope, user_id, reserved_by, created_at)
             VALUES ($1, $2, NULL, $3) ON CONFLICT (scope) DO NOTHING",
            &[&slug, &new.publisher_id, &clock::now_ms()],
        )
        .await
        .map(drop)
    };
    futures_util::try_join!(claim, super::events::record_all(tx, events))?;
    Ok(())
}

/// The keys among `keys` that no version references (duplicates kept).
async fn unreferenced<C: GenericClient>(
    client: &C,
    keys: Vec<String>,
) -> Result<Vec<String>, StoreError> {
    if keys.is_empty() {
        return Ok(keys);
    }
    Ok(rows(
        client,
        "SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS keys(k, n)
         WHERE NOT EXISTS (SELECT 1 FROM versions WHERE blob_key = k)
           AND NOT EXISTS (SELECT 1 FROM stages WHERE blob_key = k) ORDER BY n",
        &[&keys],
    )
    .await?
    .into_iter()
    .map(|row| row.get(0))
    .collect())
}

async fn remove_versions<C: GenericClient>(
    client: &C,
    name: &str,
    versions: &[String],
    new_latest: Option<&str>,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    exec(
        client,
        "INSERT INTO retired_versions (package, version, retired_at)
         SELECT $1, v, $3 FROM unnest($2::text[]) v ON CONFLICT DO NOTHING",
        &[&name, &versions, &now],
    )
    .await?;
    let keys = rows(
        client,
        "DELETE FROM versions WHERE package = $1 AND version = ANY($2) RETURNING blob_key",
        &[&name, &versions],
    )
    .await?
    .into_iter()
    .map(|row| row.get(0))
    .collect();
    if let Some(latest) = new_latest {
        exec(
            client,
            "INSERT INTO dist_tags (package, tag, version) VALUES ($1, 'latest', $2)
             ON CONFLICT (package, tag) DO NOTHING",
            &[&name, &latest],
        )
        .await?;
    }
    bump(client, name, now).await?;
    unreferenced(client, keys).await
}

async fn delete_package<C: GenericClient>(
    client: &C,
    name: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    exec(
        client,
        "INSERT INTO retired_versions (package, version, retired_at)
         SELECT package, version, $2 FROM versions WHERE package = $1 ON CONFLICT DO NOTHING",
        &[&name, &now],
    )
    .await?;
    exec(
        client,
        "INSERT INTO retired_packages (name, retired_at, last_rev)
         SELECT name, $2, rev FROM packages WHERE name = $1
         ON CONFLICT (name) DO UPDATE SET retired_at = excluded.retired_at,
                                          last_rev = excluded.last_rev",
        &[&name, &now],
    )
    .await?;
    exec(
        client,
        "INSERT INTO retired_package_maintainers (package, user_id)
         SELECT package, user_id FROM maintainers WHERE package = $1 ON CONFLICT DO NOTHING",
        &[&name],
    )
    .await?;
    let keys = rows(
        client,
        "DELETE FROM versions WHERE package = $1 RETURNING blob_key",
        &[&name],
    )
    .await?
    .into_iter()
    .map(|row| row.get(0))
    .collect();
    exec(client, "DELETE FROM packages WHERE name = $1", &[&name]).await?;
    unreferenced(client, keys).await
}

#[async_trait::async_trait]
impl crate::store::PackageStore for super::Postgres {
    async fn load_package(&self, name: &str) -> Result<Option<PackageRecord>, StoreError> {
        read_package!(self, name, |client| load(&client, name).await)
    }

    async fn dist_tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        read_package!(self, name, |client| tags_of(&client, name).await)
    }

    async fn find_tarball(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<TarballRow>, StoreError> {
        read_package!(self, name, |client| Ok(opt(
            &client,
            "SELECT blob_key, size, shasum FROM versions WHERE package = $1 AND version = $2",
            &[&name, &version],
        )
        .await?
        .map(|row| TarballRow {
            blob_key: row.get(0),
            size: row.get(1),
            shasum: row.get(2),
        })))
    }

    async fn write_facts(&self, name: &str, user_id: i64) -> Result<WriteFacts, StoreError> {
        let client = self.pool().get().await?;
        write_facts(&client, name, user_id, false).await
    }

    async fn commit_publish(
        &self,
        new: NewVersion,
        events: Vec<AuditEvent>,
        decide: Decide<PublishPlan>,
    ) -> Result<PublishOutcome, RegistryError> {
        let mut client = self.pool().get().await.map_err(StoreError::from)?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let facts = write_facts(&tx, &new.package, new.publisher_id, true).await?;
        // A refusal drops the transaction, which rolls back (nothing was written).
        let plan = decide(&facts)?;
        // What the version brings goes out with it, before its answer: one round trip for both.
        // It needs none of the version's rows (a new package's one maintainer is its publisher,
        // the events' actor, whose hooks they find as the actor's). It stands only if the version
        // lands, for the transaction commits only then.
        let (outcome, landed) = futures_util::join!(
            insert_version(&tx, &new),
            record_landing(&tx, &new, plan.claim_scope.as_deref(), &events)
        );
        let outcome = outcome?;
        if outcome != PublishOutcome::Committed {
            return Ok(outcome);
        }
        landed?;
        tx.commit().await.map_err(StoreError::from)?;
        drop(client);
        self.wrote_package(&new.package).await;
        Ok(outcome)
    }

    async fn set_dist_tag(
        &self,
        name: &str,
        tag: &str,
        version: &str,
        events: Vec<AuditEvent>,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        put_tag(&tx, name, tag, version).await?;
        bump(&tx, name, clock::now_ms()).await?;
        super::events::record_all(&tx, &events).await?;
        let tags = dist_tags(&tx, name).await?;
        tx.commit().await?;
        drop(client);
        self.wrote_package(name).await;
        Ok(tags)
    }

    async fn remove_dist_tag(
        &self,
        name: &str,
        tag: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        let removed = exec(
            &tx,
            "DELETE FROM dist_tags WHERE package = $1 AND tag = $2",
            &[&name, &tag],
        )
        .await?;
        if removed == 0 {
            return Ok(None);
        }
        bump(&tx, name, clock::now_ms()).await?;
        super::events::record_all(&tx, &events).await?;
        let tags = dist_tags(&tx, name).await?;
        tx.commit().await?;
        drop(client);
        self.wrote_package(name).await;
        Ok(Some(tags))
    }

    async fn set_deprecations(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        for (version, message) in &changes {
            exec(
                &tx,
                "UPDATE versions SET deprecated = $3 WHERE package = $1 AND version = $2",
                &[&name, version, message],
            )
            .await?;
        }
        bump(&tx, name, clock::now_ms()).await?;
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        drop(client);
        self.wrote_package(name).await;
        Ok(())
    }

    async fn set_maintainers(
        &self,
        name: &str,
        users: Vec<String>,
        events: Vec<AuditEvent>,
    ) -> Result<Option<String>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        let found: BTreeMap<String, i64> = rows(
            &tx,
            "SELECT name, id FROM users WHERE name = ANY($1)",
            &[&users],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
        if let Some(missing) = users.iter().find(|name| !found.contains_key(*name)) {
            return Ok(Some(missing.clone()));
        }
        let ids: Vec<i64> = users.iter().map(|name| found[name]).collect();
        exec(&tx, "DELETE FROM maintainers WHERE package = $1", &[&name]).await?;
        exec(
            &tx,
            "INSERT INTO maintainers (package, user_id) SELECT $1, u FROM unnest($2::bigint[]) u
             ON CONFLICT DO NOTHING",
            &[&name, &ids],
        )
        .await?;
        bump(&tx, name, clock::now_ms()).await?;
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        drop(client);
        self.wrote_package(name).await;
        Ok(None)
    }

    async fn commit_unpublish(
        &self,
        name: &str,
        read_rev: i64,
        removal: Removal,
        events: Vec<AuditEvent>,
    ) -> Result<UnpublishOutcome, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        let rev: Option<i64> = opt(&tx, "SELECT rev FROM packages WHERE name = $1", &[&name])
            .await?
            .map(|row| row.get(0));
        if rev != Some(read_rev) {
            return Ok(UnpublishOutcome::Changed);
        }
        super::events::record_all(&tx, &events).await?;
        let now = clock::now_ms();
        let freed_blobs = match &removal {
            Removal::Versions {
                versions,
                new_latest,
            } => remove_versions(&tx, name, versions, new_latest.as_deref(), now).await?,
            Removal::Package => delete_package(&tx, name, now).await?,
        };
        tx.commit().await?;
        drop(client);
        self.wrote_package(name).await;
        Ok(UnpublishOutcome::Removed { freed_blobs })
    }

    async fn unreferenced_blobs(&self, keys: Vec<String>) -> Result<Vec<String>, StoreError> {
        let client = self.pool().get().await?;
        unreferenced(&client, keys).await
    }

    async fn package_access(&self, name: &str) -> Result<Option<String>, StoreError> {
        read_package!(self, name, |client| Ok(opt(
            &client,
            "SELECT access FROM packages WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|row| row.get(0))))
    }

    async fn set_access(
        &self,
        name: &str,
        access: &str,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        let found = exec(
            &tx,
            "UPDATE packages SET access = $2, rev = rev + 1, modified_at = $3 WHERE name = $1",
            &[&name, &access, &clock::now_ms()],
        )
        .await?;
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        drop(client);
        self.wrote_package(name).await;
        Ok(found > 0)
    }

    async fn collaborators(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let client = self.pool().get().await?;
        let mut out = BTreeMap::new();
        let grants = rows(
            &client,
            "SELECT u.name, tp.permission FROM team_packages tp
             JOIN team_members tm ON tm.team_id = tp.team_id JOIN users u ON u.id = tm.user_id
             WHERE tp.package = $1",
            &[&name],
        )
        .await?;
        for row in grants {
            crate::store::packages::add_grant(&mut out, row.get(0), row.get(1));
        }
        let maintainers = rows(
            &client,
            "SELECT u.name FROM maintainers m JOIN users u ON u.id = m.user_id WHERE m.package = $1",
            &[&name],
        )
        .await?;
        for row in maintainers {
            out.insert(row.get(0), "write".to_owned());
        }
        Ok(out)
    }

    async fn visibility(&self, name: &str, slug: &str) -> Result<Option<Visibility>, StoreError> {
        read_package!(self, name, |client| Ok(opt(
            &client,
            "SELECT p.access, EXISTS (SELECT 1 FROM orgs WHERE slug = $2)
             FROM packages p WHERE p.name = $1",
            &[&name, &slug],
        )
        .await?
        .map(|row| Visibility {
            access: row.get(0),
            org_scope: row.get(1),
        })))
    }
}
