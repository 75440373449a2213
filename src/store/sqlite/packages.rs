//! Queries on packages, versions, dist-tags, maintainers, retired versions and retired names,
//! and the SQLite side of [`crate::store::PackageStore`].
//!
//! Every write bumps `packages.rev` and `modified_at`, which become `_rev` and `time.modified`.
//! Statements on the publish path are `prepare_cached`: publishing is the hot write.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};

use super::{ReadTransaction, events, is_unique_violation, orgs as org_rows};
use crate::audit::AuditEvent;
use crate::clock;
use crate::orgs::scope_slug;
use crate::packages::RegistryError;
use crate::store::StoreError;
use crate::store::packages::Signature;
pub use crate::store::packages::{
    Decide, NewNameFacts, NewVersion, PackageRecord, PublishOutcome, PublishPlan, Removal,
    TarballRow, UnpublishOutcome, VersionRow, Visibility, WriteFacts,
};

/// Loads everything about one package, or `None`.
pub fn load(conn: &Connection, name: &str) -> Result<Option<PackageRecord>, StoreError> {
    load_bounded(conn, name, usize::MAX).map(|loaded| match loaded {
        Loaded::Record(record) => Some(record),
        Loaded::Missing | Loaded::TooBig => None,
    })
}

/// Packages of up to this many versions are read as a point read ([`super::Sqlite::read_point`]):
/// a few pages, tens of microseconds.
const POINT_READ_VERSIONS: usize = 64;

/// What [`load_bounded`] found.
pub enum Loaded {
    /// The package.
    Record(PackageRecord),
    /// No package of that name.
    Missing,
    /// A package of more versions than asked for, not loaded.
    TooBig,
}

/// Loads a package of at most `max_versions` versions. Cost: one lookup per table, the versions
/// and their signatures each read as one range of their primary key (no per-version lookups).
pub fn load_bounded(
    conn: &Connection,
    name: &str,
    max_versions: usize,
) -> Result<Loaded, StoreError> {
    let head = conn
        .prepare_cached(
            "SELECT access, rev, created_at, modified_at,
                    (SELECT count(*) FROM versions WHERE package = ?1)
             FROM packages WHERE name = ?1",
        )?
        .query_row([name], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((access, rev, created_at, modified_at, count)) = head else {
        return Ok(Loaded::Missing);
    };
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > max_versions {
        return Ok(Loaded::TooBig);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT version, manifest, integrity, shasum, blob_key, size, deprecated, readme, published_at
         FROM versions WHERE package = ?1",
    )?;
    let mut versions = Vec::with_capacity(count);
    let mut rows = stmt.query([name])?;
    while let Some(row) = rows.next()? {
        versions.push(VersionRow {
            version: row.get(0)?,
            manifest: row.get(1)?,
            integrity: row.get(2)?,
            shasum: row.get(3)?,
            blob_key: row.get(4)?,
            size: row.get(5)?,
            deprecated: row.get(6)?,
            readme: row.get(7)?,
            published_at: row.get(8)?,
            signatures: Vec::new(),
        });
    }
    // Versions of the same millisecond go by version in byte order (BINARY), as on PostgreSQL
    // (`COLLATE "C"`): an order both stores read from the rows themselves, so a database moved
    // between them serves the same packument, byte for byte. Sorted here rather than by SQLite,
    // whose sorter would copy every row (manifests and READMEs) once more.
    versions.sort_unstable_by(|a, b| {
        (a.published_at, a.version.as_bytes()).cmp(&(b.published_at, b.version.as_bytes()))
    });
    let mut stmt = conn.prepare_cached(
        "SELECT version, keyid, sig FROM version_signatures WHERE package = ?1 ORDER BY version, keyid",
    )?;
    let mut signatures: Vec<(String, Signature)> = Vec::new();
    let mut rows = stmt.query([name])?;
    while let Some(row) = rows.next()? {
        let signature = Signature {
            keyid: row.get(1)?,
            sig: row.get(2)?,
        };
        signatures.push((row.get(0)?, signature));
    }
    if !signatures.is_empty() {
        let at: HashMap<String, usize> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| (v.version.clone(), i))
            .collect();
        for (version, signature) in signatures {
            if let Some(&i) = at.get(&version) {
                versions[i].signatures.push(signature);
            }
        }
    }
    Ok(Loaded::Record(PackageRecord {
        name: name.to_owned(),
        access,
        rev,
        created_at,
        modified_at,
        versions,
        dist_tags: dist_tags(conn, name)?,
        maintainers: maintainers(conn, name)?,
    }))
}

/// The dist-tags of a package.
pub fn dist_tags(conn: &Connection, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT tag, version FROM dist_tags WHERE package = ?1")?;
    let tags = stmt
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(tags)
}

/// `(name, email)` of the maintainers of a package.
pub fn maintainers(conn: &Connection, name: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.name, u.email FROM maintainers m JOIN users u ON u.id = m.user_id
         WHERE m.package = ?1 ORDER BY u.name",
    )?;
    let rows = stmt
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Whether the package exists.
pub fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM packages WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The write counter of a package (`_rev`'s number), or `None` if it does not exist.
pub fn current_rev(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT rev FROM packages WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?)
}

/// Whether the user may take back a name whose every version was unpublished: `None` when the
/// name was never retired, else whether the user maintained it then.
pub fn may_reclaim(
    conn: &Connection,
    name: &str,
    user_id: i64,
) -> Result<Option<bool>, StoreError> {
    let (retired, former): (bool, bool) = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM retired_packages WHERE name = ?1),
                    EXISTS (SELECT 1 FROM retired_package_maintainers
                            WHERE package = ?1 AND user_id = ?2)",
        )?
        .query_row(params![name, user_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(retired.then_some(former))
}

/// The facts deciding whether `user_id` may change (or create) `name`; see [`WriteFacts`].
pub fn write_facts(conn: &Connection, name: &str, user_id: i64) -> Result<WriteFacts, StoreError> {
    let (exists, is_maintainer) = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM packages WHERE name = ?1),
                    EXISTS (SELECT 1 FROM maintainers WHERE package = ?1 AND user_id = ?2)",
        )?
        .query_row(params![name, user_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let slug = scope_slug(name);
    let org = match slug {
        Some(slug) => org_rows::org_facts(conn, slug, name, user_id)?,
        None => None,
    };
    let new_name = if exists {
        None
    } else {
        let plain = slug.filter(|_| org.is_none());
        Some(NewNameFacts {
            retired: may_reclaim(conn, name, user_id)?,
            scope_owner: match plain {
                Some(slug) => org_rows::scope_owner(conn, slug)?,
                None => None,
            },
            scope_has_packages: match plain {
                Some(slug) => org_rows::scope_has_packages(conn, slug)?,
                None => false,
            },
        })
    };
    Ok(WriteFacts {
        exists,
        is_maintainer,
        org,
        new_name,
    })
}

/// The tarball of one version.
pub fn find_tarball(
    conn: &Connection,
    name: &str,
    version: &str,
) -> Result<Option<TarballRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT blob_key, size, shasum FROM versions WHERE package = ?1 AND version = ?2",
    )?;
    Ok(stmt
        .query_row(params![name, version], |row| {
            Ok(TarballRow {
                blob_key: row.get(0)?,
                size: row.get(1)?,
                shasum: row.get(2)?,
            })
        })
        .optional()?)
}

fn bump(conn: &Connection, name: &str, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE packages SET rev = rev + 1, modified_at = ?2 WHERE name = ?1")?
        .execute(params![name, now])?;
    Ok(())
}

/// Inserts a version, creating the package (with the publisher as maintainer) on first publish,
/// and moves the dist-tag; `latest` is set too when the package has none.
pub fn commit_publish(conn: &Connection, new: &NewVersion) -> Result<PublishOutcome, StoreError> {
    let row = &new.row;
    let retired = conn
        .prepare_cached("SELECT 1 FROM retired_versions WHERE package = ?1 AND version = ?2")?
        .query_row(params![new.package, row.version], |_| Ok(()))
        .optional()?;
    if retired.is_some() {
        return Ok(PublishOutcome::Retired);
    }
    // A staged version is reserved until its stage is approved (which deletes it first) or rejected.
    if let Some(id) = super::stages::staged_id(conn, &new.package, &row.version)? {
        return Ok(PublishOutcome::Staged { id });
    }
    // A name published again continues the old package's rev, so a `_rev` read before the
    // unpublish never matches the new package.
    let created = conn
        .prepare_cached(
            "INSERT INTO packages (name, access, rev, created_at, modified_at)
             VALUES (?1, ?2, COALESCE((SELECT last_rev FROM retired_packages WHERE name = ?1), 0), ?3, ?3)
             ON CONFLICT(name) DO NOTHING",
        )?
        .execute(params![new.package, new.access, row.published_at])?;
    if created > 0 {
        conn.prepare_cached("INSERT INTO maintainers (package, user_id) VALUES (?1, ?2)")?
            .execute(params![new.package, new.publisher_id])?;
        // The name lives again; its maintainers from now on are the package's own.
        conn.prepare_cached("DELETE FROM retired_packages WHERE name = ?1")?
            .execute([&new.package])?;
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO versions (package, version, manifest, integrity, shasum, blob_key, size,
                                   deprecated, readme, publisher_id, published_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10)",
        )?
        .execute(params![
            new.package,
            row.version,
            row.manifest,
            row.integrity,
            row.shasum,
            row.blob_key,
            row.size,
            row.readme,
            new.publisher_id,
            row.published_at
        ]);
    match inserted {
        Ok(_) => {}
        Err(err) if is_unique_violation(&err) => {
            let integrity = conn
                .prepare_cached(
                    "SELECT integrity FROM versions WHERE package = ?1 AND version = ?2",
                )?
                .query_row(params![new.package, row.version], |r| r.get(0))?;
            return Ok(PublishOutcome::Exists { integrity });
        }
        Err(err) => return Err(err.into()),
    }
    for signature in &row.signatures {
        conn.prepare_cached(
            "INSERT INTO version_signatures (package, version, keyid, sig) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            new.package,
            row.version,
            signature.keyid,
            signature.sig
        ])?;
    }
    put_tag(conn, &new.package, &new.tag, &row.version)?;
    conn.prepare_cached(
        "INSERT INTO dist_tags (package, tag, version) VALUES (?1, 'latest', ?2)
         ON CONFLICT(package, tag) DO NOTHING",
    )?
    .execute(params![new.package, row.version])?;
    bump(conn, &new.package, row.published_at)?;
    Ok(PublishOutcome::Committed)
}

fn put_tag(conn: &Connection, name: &str, tag: &str, version: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO dist_tags (package, tag, version) VALUES (?1, ?2, ?3)
         ON CONFLICT(package, tag) DO UPDATE SET version = excluded.version",
    )?
    .execute(params![name, tag, version])?;
    Ok(())
}

/// Points a dist-tag at a version.
pub fn set_dist_tag(
    conn: &Connection,
    name: &str,
    tag: &str,
    version: &str,
    now: i64,
) -> Result<(), StoreError> {
    put_tag(conn, name, tag, version)?;
    bump(conn, name, now)
}

/// Removes a dist-tag; answers whether it existed.
pub fn delete_dist_tag(
    conn: &Connection,
    name: &str,
    tag: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let removed = conn.execute(
        "DELETE FROM dist_tags WHERE package = ?1 AND tag = ?2",
        params![name, tag],
    )?;
    if removed > 0 {
        bump(conn, name, now)?;
    }
    Ok(removed > 0)
}

/// Sets (`Some`) or clears (`None`) the deprecation message of each listed version.
pub fn set_deprecations(
    conn: &Connection,
    name: &str,
    changes: &[(String, Option<String>)],
    now: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE versions SET deprecated = ?3 WHERE package = ?1 AND version = ?2",
    )?;
    for (version, message) in changes {
        stmt.execute(params![name, version, message])?;
    }
    bump(conn, name, now)
}

/// Removes versions (retiring them forever), points `latest` at `new_latest` when it was removed,
/// and returns the blob keys that no version references any more.
pub fn remove_versions(
    conn: &Connection,
    name: &str,
    versions: &[String],
    new_latest: Option<&str>,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for version in versions {
        conn.execute(
            "INSERT INTO retired_versions (package, version, retired_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![name, version, now],
        )?;
        let key: Option<String> = conn
            .query_row(
                "DELETE FROM versions WHERE package = ?1 AND version = ?2 RETURNING blob_key",
                params![name, version],
                |row| row.get(0),
            )
            .optional()?;
        keys.extend(key);
    }
    if let Some(latest) = new_latest {
        conn.execute(
            "INSERT INTO dist_tags (package, tag, version) VALUES (?1, 'latest', ?2)
             ON CONFLICT(package, tag) DO NOTHING",
            params![name, latest],
        )?;
    }
    bump(conn, name, now)?;
    unreferenced(conn, keys)
}

/// Deletes a whole package, retiring its versions and its name (remembering who maintained it);
/// returns the blob keys to delete.
pub fn delete_package(conn: &Connection, name: &str, now: i64) -> Result<Vec<String>, StoreError> {
    conn.execute(
        "INSERT INTO retired_versions (package, version, retired_at)
         SELECT package, version, ?2 FROM versions WHERE package = ?1 ON CONFLICT DO NOTHING",
        params![name, now],
    )?;
    conn.execute(
        "INSERT INTO retired_packages (name, retired_at, last_rev)
         SELECT name, ?2, rev FROM packages WHERE name = ?1
         ON CONFLICT(name) DO UPDATE SET retired_at = excluded.retired_at, last_rev = excluded.last_rev",
        params![name, now],
    )?;
    conn.execute(
        "INSERT INTO retired_package_maintainers (package, user_id)
         SELECT package, user_id FROM maintainers WHERE package = ?1 ON CONFLICT DO NOTHING",
        [name],
    )?;
    let mut stmt = conn.prepare("SELECT blob_key FROM versions WHERE package = ?1")?;
    let keys = stmt
        .query_map([name], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    conn.execute("DELETE FROM packages WHERE name = ?1", [name])?;
    unreferenced(conn, keys)
}

/// The keys among `keys` that no version references.
pub fn unreferenced(conn: &Connection, keys: Vec<String>) -> Result<Vec<String>, StoreError> {
    // A staged tarball is referenced too: its stage still needs it.
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM versions WHERE blob_key = ?1
         UNION ALL SELECT 1 FROM stages WHERE blob_key = ?1 LIMIT 1",
    )?;
    let mut free = Vec::new();
    for key in keys {
        if stmt.query_row([&key], |_| Ok(())).optional()?.is_none() {
            free.push(key);
        }
    }
    Ok(free)
}

/// Replaces the maintainers of a package.
pub fn set_maintainers(
    conn: &Connection,
    name: &str,
    user_ids: &[i64],
    now: i64,
) -> Result<(), StoreError> {
    conn.execute("DELETE FROM maintainers WHERE package = ?1", [name])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO maintainers (package, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for id in user_ids {
        stmt.execute(params![name, id])?;
    }
    bump(conn, name, now)
}

/// The ids of the users named, in order, or the first name with no account.
fn user_ids(conn: &Connection, names: &[String]) -> Result<Result<Vec<i64>, String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM users WHERE name = ?1")?;
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        match stmt.query_row([name], |row| row.get(0)).optional()? {
            Some(id) => ids.push(id),
            None => return Ok(Err(name.clone())),
        }
    }
    Ok(Ok(ids))
}

/// Sets a package's access; answers whether it exists.
pub fn set_access(
    conn: &Connection,
    package: &str,
    access: &str,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE packages SET access = ?2, rev = rev + 1, modified_at = ?3 WHERE name = ?1",
        params![package, access, now],
    )? > 0)
}

/// A package's access, if it exists.
pub fn access(conn: &Connection, package: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT access FROM packages WHERE name = ?1")?
        .query_row([package], |row| row.get(0))
        .optional()?)
}

/// A package's access and whether its scope `slug` is an org's, if the package exists.
pub fn visibility(
    conn: &Connection,
    package: &str,
    slug: &str,
) -> Result<Option<Visibility>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.access, EXISTS (SELECT 1 FROM orgs WHERE slug = ?2)
         FROM packages p WHERE p.name = ?1",
    )?;
    Ok(stmt
        .query_row(params![package, slug], |row| {
            Ok(Visibility {
                access: row.get(0)?,
                org_scope: row.get(1)?,
            })
        })
        .optional()?)
}

/// Who may do what with a package: maintainers write; team grants add their members.
pub fn collaborators(
    conn: &Connection,
    package: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut out = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT u.name, tp.permission FROM team_packages tp
         JOIN team_members tm ON tm.team_id = tp.team_id JOIN users u ON u.id = tm.user_id
         WHERE tp.package = ?1",
    )?;
    for row in stmt.query_map([package], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })? {
        let (user, permission) = row?;
        crate::store::packages::add_grant(&mut out, user, permission);
    }
    let mut stmt = conn.prepare(
        "SELECT u.name FROM maintainers m JOIN users u ON u.id = m.user_id WHERE m.package = ?1",
    )?;
    for name in stmt.query_map([package], |row| row.get::<_, String>(0))? {
        out.insert(name?, "write".to_owned());
    }
    Ok(out)
}

#[async_trait::async_trait]
impl crate::store::PackageStore for super::Sqlite {
    async fn load_package(&self, name: &str) -> Result<Option<PackageRecord>, StoreError> {
        let name = name.to_owned();
        let small = {
            let name = name.clone();
            // A point read is one read transaction: one snapshot for all the queries.
            self.read_point(move |conn| load_bounded(conn, &name, POINT_READ_VERSIONS))
                .await?
        };
        match small {
            Loaded::Record(record) => Ok(Some(record)),
            Loaded::Missing => Ok(None),
            // Milliseconds of reading: not on the async thread.
            Loaded::TooBig => {
                self.read(move |conn| {
                    let snapshot = ReadTransaction::begin(conn)?;
                    load(snapshot.0, &name)
                })
                .await
            }
        }
    }

    async fn dist_tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| {
            if !exists(conn, &name)? {
                return Ok(None);
            }
            dist_tags(conn, &name).map(Some)
        })
        .await
    }

    async fn find_tarball(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<TarballRow>, StoreError> {
        let (name, version) = (name.to_owned(), version.to_owned());
        self.read(move |conn| find_tarball(conn, &name, &version))
            .await
    }

    async fn write_facts(&self, name: &str, user_id: i64) -> Result<WriteFacts, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| write_facts(conn, &name, user_id))
            .await
    }

    async fn commit_publish(
        &self,
        new: NewVersion,
        events: Vec<AuditEvent>,
        decide: Decide<PublishPlan>,
    ) -> Result<PublishOutcome, RegistryError> {
        // One write: the decision, the version and its events commit together.
        self.write(move |tx| {
            let facts = write_facts(tx, &new.package, new.publisher_id)?;
            let plan = match decide(&facts) {
                Ok(plan) => plan,
                Err(refused) => return Ok(Err(refused)),
            };
            let outcome = commit_publish(tx, &new)?;
            if outcome == PublishOutcome::Committed {
                super::attestations::insert(tx, &new)?;
                if let Some(slug) = &plan.claim_scope {
                    org_rows::set_scope_owner(tx, slug, new.publisher_id, None, clock::now_ms())?;
                }
                events::record_all(tx, &events)?;
            }
            Ok(Ok(outcome))
        })
        .await?
    }

    async fn set_dist_tag(
        &self,
        name: &str,
        tag: &str,
        version: &str,
        events: Vec<AuditEvent>,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let (name, tag, version) = (name.to_owned(), tag.to_owned(), version.to_owned());
        self.write(move |tx| {
            set_dist_tag(tx, &name, &tag, &version, clock::now_ms())?;
            events::record_all(tx, &events)?;
            dist_tags(tx, &name)
        })
        .await
    }

    async fn remove_dist_tag(
        &self,
        name: &str,
        tag: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let (name, tag) = (name.to_owned(), tag.to_owned());
        self.write(move |tx| {
            if !delete_dist_tag(tx, &name, &tag, clock::now_ms())? {
                return Ok(None);
            }
            events::record_all(tx, &events)?;
            dist_tags(tx, &name).map(Some)
        })
        .await
    }

    async fn set_deprecations(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            set_deprecations(tx, &name, &changes, clock::now_ms())?;
            events::record_all(tx, &events)
        })
        .await
    }

    async fn set_maintainers(
        &self,
        name: &str,
        users: Vec<String>,
        events: Vec<AuditEvent>,
    ) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let ids = match user_ids(tx, &users)? {
                Ok(ids) => ids,
                Err(missing) => return Ok(Some(missing)),
            };
            set_maintainers(tx, &name, &ids, clock::now_ms())?;
            events::record_all(tx, &events)?;
            Ok(None)
        })
        .await
    }

    async fn commit_unpublish(
        &self,
        name: &str,
        read_rev: i64,
        removal: Removal,
        events: Vec<AuditEvent>,
    ) -> Result<UnpublishOutcome, StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            if current_rev(tx, &name)? != Some(read_rev) {
                return Ok(UnpublishOutcome::Changed);
            }
            events::record_all(tx, &events)?;
            let now = clock::now_ms();
            let freed_blobs = match &removal {
                Removal::Versions {
                    versions,
                    new_latest,
                } => remove_versions(tx, &name, versions, new_latest.as_deref(), now)?,
                Removal::Package => delete_package(tx, &name, now)?,
            };
            Ok(UnpublishOutcome::Removed { freed_blobs })
        })
        .await
    }

    async fn unreferenced_blobs(&self, keys: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.write(move |tx| unreferenced(tx, keys)).await
    }

    async fn package_access(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| access(conn, &name)).await
    }

    async fn set_access(
        &self,
        name: &str,
        access: &str,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let (name, access) = (name.to_owned(), access.to_owned());
        self.write(move |tx| {
            let found = set_access(tx, &name, &access, clock::now_ms())?;
            events::record_all(tx, &events)?;
            Ok(found)
        })
        .await
    }

    async fn collaborators(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| collaborators(conn, &name)).await
    }

    async fn visibility(&self, name: &str, slug: &str) -> Result<Option<Visibility>, StoreError> {
        let (name, slug) = (name.to_owned(), slug.to_owned());
        self.read(move |conn| visibility(conn, &name, &slug)).await
    }
}
