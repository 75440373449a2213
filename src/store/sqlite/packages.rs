//! Queries on packages, versions, dist-tags, maintainers, retired versions and retired names.
//!
//! Every write bumps `packages.rev` and `modified_at`, which become `_rev` and `time.modified`.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::is_unique_violation;
use crate::store::StoreError;

/// One stored version.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// The version string.
    pub version: String,
    /// The version object as JSON text (server fields applied, no `dist.tarball`).
    pub manifest: String,
    /// `sha512-<base64>`.
    pub integrity: String,
    /// Hex SHA-1.
    pub shasum: String,
    /// Content address of the tarball in the blob store.
    pub blob_key: String,
    /// Tarball size in bytes.
    pub size: i64,
    /// Deprecation message.
    pub deprecated: Option<String>,
    /// README text.
    pub readme: Option<String>,
    /// Publish time (ms).
    pub published_at: i64,
}

/// Everything a packument is built from.
#[derive(Debug, Clone)]
pub struct PackageRecord {
    /// Package name.
    pub name: String,
    /// `public` or `restricted`.
    pub access: String,
    /// Write counter, for `_rev`.
    pub rev: i64,
    /// First publish (ms).
    pub created_at: i64,
    /// Last write (ms).
    pub modified_at: i64,
    /// All versions.
    pub versions: Vec<VersionRow>,
    /// Tag → version.
    pub dist_tags: BTreeMap<String, String>,
    /// `(name, email)` of each maintainer, by name.
    pub maintainers: Vec<(String, String)>,
}

/// A version to insert.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Package name.
    pub package: String,
    /// Access for a new package.
    pub access: String,
    /// The row itself.
    pub row: VersionRow,
    /// Dist-tag the publish moves.
    pub tag: String,
    /// Publisher's user id, who becomes the first maintainer of a new package.
    pub publisher_id: i64,
}

/// What happened to a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The version landed.
    Committed,
    /// The version exists already, with this integrity.
    Exists {
        /// Integrity of the stored tarball.
        integrity: String,
    },
    /// The version was published once and unpublished; it can never come back.
    Retired,
}

/// Loads everything about one package, or `None`.
pub fn load(conn: &Connection, name: &str) -> Result<Option<PackageRecord>, StoreError> {
    let head = conn
        .query_row(
            "SELECT access, rev, created_at, modified_at FROM packages WHERE name = ?1",
            [name],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((access, rev, created_at, modified_at)) = head else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT version, manifest, integrity, shasum, blob_key, size, deprecated, readme, published_at
         FROM versions WHERE package = ?1 ORDER BY published_at, rowid",
    )?;
    let versions = stmt
        .query_map([name], |row| {
            Ok(VersionRow {
                version: row.get(0)?,
                manifest: row.get(1)?,
                integrity: row.get(2)?,
                shasum: row.get(3)?,
                blob_key: row.get(4)?,
                size: row.get(5)?,
                deprecated: row.get(6)?,
                readme: row.get(7)?,
                published_at: row.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(PackageRecord {
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

/// Whether the user maintains the package.
pub fn is_maintainer(conn: &Connection, name: &str, user_id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM maintainers WHERE package = ?1 AND user_id = ?2",
            params![name, user_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Whether the package exists.
pub fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM packages WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The write counter of a package (`_rev`'s number), or `None` if it does not exist.
pub fn current_rev(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT rev FROM packages WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()?)
}

/// Whether the user may take back a name whose every version was unpublished: `None` when the
/// name was never retired, else whether the user maintained it then.
pub fn may_reclaim(
    conn: &Connection,
    name: &str,
    user_id: i64,
) -> Result<Option<bool>, StoreError> {
    let retired = conn
        .query_row(
            "SELECT 1 FROM retired_packages WHERE name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?;
    if retired.is_none() {
        return Ok(None);
    }
    let former = conn
        .query_row(
            "SELECT 1 FROM retired_package_maintainers WHERE package = ?1 AND user_id = ?2",
            params![name, user_id],
            |_| Ok(()),
        )
        .optional()?;
    Ok(Some(former.is_some()))
}

/// The tarball of one version: `(blob_key, size, shasum)`.
pub fn find_tarball(
    conn: &Connection,
    name: &str,
    version: &str,
) -> Result<Option<(String, i64, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT blob_key, size, shasum FROM versions WHERE package = ?1 AND version = ?2",
    )?;
    Ok(stmt
        .query_row(params![name, version], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?)
}

fn bump(conn: &Connection, name: &str, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE packages SET rev = rev + 1, modified_at = ?2 WHERE name = ?1",
        params![name, now],
    )?;
    Ok(())
}

/// Inserts a version, creating the package (with the publisher as maintainer) on first publish,
/// and moves the dist-tag; `latest` is set too when the package has none.
pub fn commit_publish(conn: &Connection, new: &NewVersion) -> Result<PublishOutcome, StoreError> {
    let row = &new.row;
    let retired = conn
        .query_row(
            "SELECT 1 FROM retired_versions WHERE package = ?1 AND version = ?2",
            params![new.package, row.version],
            |_| Ok(()),
        )
        .optional()?;
    if retired.is_some() {
        return Ok(PublishOutcome::Retired);
    }
    // A name published again continues the old package's rev, so a `_rev` read before the
    // unpublish never matches the new package.
    let created = conn.execute(
        "INSERT INTO packages (name, access, rev, created_at, modified_at)
         VALUES (?1, ?2, COALESCE((SELECT last_rev FROM retired_packages WHERE name = ?1), 0), ?3, ?3)
         ON CONFLICT(name) DO NOTHING",
        params![new.package, new.access, row.published_at],
    )?;
    if created > 0 {
        conn.execute(
            "INSERT INTO maintainers (package, user_id) VALUES (?1, ?2)",
            params![new.package, new.publisher_id],
        )?;
        // The name lives again; its maintainers from now on are the package's own.
        conn.execute(
            "DELETE FROM retired_packages WHERE name = ?1",
            [&new.package],
        )?;
    }
    let inserted = conn.execute(
        "INSERT INTO versions (package, version, manifest, integrity, shasum, blob_key, size,
                               deprecated, readme, publisher_id, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10)",
        params![
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
        ],
    );
    match inserted {
        Ok(_) => {}
        Err(err) if is_unique_violation(&err) => {
            let integrity = conn.query_row(
                "SELECT integrity FROM versions WHERE package = ?1 AND version = ?2",
                params![new.package, row.version],
                |r| r.get(0),
            )?;
            return Ok(PublishOutcome::Exists { integrity });
        }
        Err(err) => return Err(err.into()),
    }
    put_tag(conn, &new.package, &new.tag, &row.version)?;
    conn.execute(
        "INSERT INTO dist_tags (package, tag, version) VALUES (?1, 'latest', ?2)
         ON CONFLICT(package, tag) DO NOTHING",
        params![new.package, row.version],
    )?;
    bump(conn, &new.package, row.published_at)?;
    Ok(PublishOutcome::Committed)
}

fn put_tag(conn: &Connection, name: &str, tag: &str, version: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO dist_tags (package, tag, version) VALUES (?1, ?2, ?3)
         ON CONFLICT(package, tag) DO UPDATE SET version = excluded.version",
        params![name, tag, version],
    )?;
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
    let mut stmt = conn.prepare_cached("SELECT 1 FROM versions WHERE blob_key = ?1 LIMIT 1")?;
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

#[async_trait::async_trait]
impl crate::store::PackageStore for super::Sqlite {}
