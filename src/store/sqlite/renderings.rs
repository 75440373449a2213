//! The SQLite side of [`crate::store::RenderingStore`], and the re-render every package write runs
//! in its own transaction (after bumping the rev).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::packages::{dist_tags, maintainers};
use crate::packages::{RegistryError, rendering};
use crate::store::StoreError;
use crate::store::renderings::{
    Fragment, RenderSource, StoredDocument, StoredRendering, VersionSource,
};

fn failed(err: RegistryError) -> StoreError {
    StoreError::Task(format!("rendering a packument failed: {err}"))
}

/// The stored rendering of a package, if it shows the package's current rev.
pub fn read(conn: &Connection, name: &str) -> Result<Option<StoredRendering>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT r.rev, r.base, r.last_modified,
                    r.full_plain, r.full_gzip, r.full_etag, r.full_gzip_etag, r.full_base_at,
                    r.abbreviated_plain, r.abbreviated_gzip, r.abbreviated_etag,
                    r.abbreviated_gzip_etag, r.abbreviated_base_at
             FROM packument_renderings r JOIN packages p ON p.name = r.name AND p.rev = r.rev
             WHERE r.name = ?1",
        )?
        .query_row([name], from_row)
        .optional()?)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredRendering> {
    let document = |at: usize| -> rusqlite::Result<StoredDocument> {
        Ok(StoredDocument {
            plain: row.get(at)?,
            gzip: row.get(at + 1)?,
            etag: row.get(at + 2)?,
            gzip_etag: row.get(at + 3)?,
            base_at: row.get(at + 4)?,
        })
    };
    Ok(StoredRendering {
        rev: row.get(0)?,
        base: row.get(1)?,
        last_modified: row.get(2)?,
        full: document(3)?,
        abbreviated: document(8)?,
    })
}

/// Stores a rendering in place of the package's.
pub fn save(conn: &Connection, name: &str, r: &StoredRendering) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO packument_renderings (name, rev, base, last_modified,
             full_plain, full_gzip, full_etag, full_gzip_etag, full_base_at,
             abbreviated_plain, abbreviated_gzip, abbreviated_etag, abbreviated_gzip_etag,
             abbreviated_base_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(name) DO UPDATE SET rev = excluded.rev, base = excluded.base,
             last_modified = excluded.last_modified,
             full_plain = excluded.full_plain, full_gzip = excluded.full_gzip,
             full_etag = excluded.full_etag, full_gzip_etag = excluded.full_gzip_etag,
             full_base_at = excluded.full_base_at,
             abbreviated_plain = excluded.abbreviated_plain,
             abbreviated_gzip = excluded.abbreviated_gzip,
             abbreviated_etag = excluded.abbreviated_etag,
             abbreviated_gzip_etag = excluded.abbreviated_gzip_etag,
             abbreviated_base_at = excluded.abbreviated_base_at",
    )?
    .execute(params![
        name,
        r.rev,
        r.base,
        r.last_modified,
        r.full.plain,
        r.full.gzip,
        r.full.etag,
        r.full.gzip_etag,
        r.full.base_at,
        r.abbreviated.plain,
        r.abbreviated.gzip,
        r.abbreviated.etag,
        r.abbreviated.gzip_etag,
        r.abbreviated.base_at,
    ])?;
    Ok(())
}

/// Drops the fragments of versions whose rendering changed (a deprecation); the next re-render
/// makes them again.
pub fn forget_fragments(
    conn: &Connection,
    name: &str,
    versions: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<(), StoreError> {
    let mut stmt =
        conn.prepare_cached("DELETE FROM version_renderings WHERE package = ?1 AND version = ?2")?;
    for version in versions {
        stmt.execute(params![name, version.as_ref()])?;
    }
    Ok(())
}

/// What the package's documents are assembled from; missing fragments are rendered from their
/// versions' rows and stored.
fn source(conn: &Connection, name: &str) -> Result<Option<RenderSource>, StoreError> {
    let head = conn
        .prepare_cached("SELECT rev, created_at, modified_at FROM packages WHERE name = ?1")?
        .query_row([name], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((rev, created_at, modified_at)) = head else {
        return Ok(None);
    };
    type Loaded = (
        String,
        i64,
        Option<Fragment>,
        Option<(String, Option<String>)>,
    );
    let loaded: Vec<Loaded> = conn
        .prepare_cached(
            "SELECT v.version, v.published_at, f.full_json, f.full_at, f.abbreviated_json,
                    f.abbreviated_at,
                    CASE WHEN f.package IS NULL THEN v.manifest END,
                    CASE WHEN f.package IS NULL THEN v.deprecated END
             FROM versions v LEFT JOIN version_renderings f
                  ON f.package = v.package AND f.version = v.version
             WHERE v.package = ?1",
        )?
        .query_map([name], |row| {
            let fragment = match row.get::<_, Option<String>>(2)? {
                Some(full) => Some(Fragment {
                    full,
                    full_at: row.get(3)?,
                    abbreviated: row.get(4)?,
                    abbreviated_at: row.get(5)?,
                }),
                None => None,
            };
            let unrendered = match row.get::<_, Option<String>>(6)? {
                Some(manifest) => Some((manifest, row.get(7)?)),
                None => None,
            };
            Ok((row.get(0)?, row.get(1)?, fragment, unrendered))
        })?
        .collect::<Result<_, _>>()?;
    let mut versions = Vec::with_capacity(loaded.len());
    for (version, published_at, fragment, unrendered) in loaded {
        let fragment = match (fragment, unrendered) {
            (Some(fragment), _) => fragment,
            (None, Some((manifest, deprecated))) => {
                let fragment =
                    rendering::fragment(name, &version, &manifest, deprecated.as_deref())
                        .map_err(failed)?;
                conn.prepare_cached(
                    "INSERT INTO version_renderings
                         (package, version, full_json, full_at, abbreviated_json, abbreviated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    name,
                    version,
                    fragment.full,
                    fragment.full_at,
                    fragment.abbreviated,
                    fragment.abbreviated_at
                ])?;
                fragment
            }
            (None, None) => return Err(StoreError::Task(format!("{name}@{version} has no row"))),
        };
        versions.push(VersionSource {
            version,
            published_at,
            fragment,
        });
    }
    let latest = conn
        .prepare_cached(
            "SELECT v.manifest, v.readme FROM dist_tags t
             JOIN versions v ON v.package = t.package AND v.version = t.version
             WHERE t.package = ?1 AND t.tag = 'latest'",
        )?
        .query_row([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(Some(RenderSource {
        name: name.to_owned(),
        rev,
        created_at,
        modified_at,
        versions,
        dist_tags: dist_tags(conn, name)?,
        maintainers: maintainers(conn, name)?,
        latest,
    }))
}

/// Renders the package's documents again and stores them, on the base its rendering had (else
/// `base`); run inside every change's transaction, after the change. `None` when the package is
/// gone.
pub fn rerender(
    conn: &Connection,
    name: &str,
    base: &str,
) -> Result<Option<StoredRendering>, StoreError> {
    let Some(source) = source(conn, name)? else {
        return Ok(None);
    };
    let kept: Option<String> = conn
        .prepare_cached("SELECT base FROM packument_renderings WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?;
    let rendering =
        rendering::assemble(&source, kept.as_deref().unwrap_or(base)).map_err(failed)?;
    save(conn, name, &rendering)?;
    Ok(Some(rendering))
}

#[async_trait::async_trait]
impl crate::store::RenderingStore for super::Sqlite {
    async fn stored_rendering(&self, name: &str) -> Result<Option<StoredRendering>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| read(conn, &name)).await
    }

    async fn render_and_store(
        &self,
        name: &str,
        base: &str,
    ) -> Result<Option<StoredRendering>, StoreError> {
        let (name, base) = (name.to_owned(), base.to_owned());
        // Reads of names that do not exist must not take the writer.
        let probe = name.clone();
        if !self
            .read(move |conn| super::packages::exists(conn, &probe))
            .await?
        {
            return Ok(None);
        }
        self.write(move |tx| {
            // Another reader may have stored it meanwhile.
            if let Some(stored) = read(tx, &name)? {
                return Ok(Some(stored));
            }
            rerender(tx, &name, &base)
        })
        .await
    }

    async fn adopt_base(&self, name: &str, rendering: StoredRendering) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let current = tx
                .prepare_cached(
                    "SELECT 1 FROM packument_renderings r JOIN packages p ON p.name = r.name
                     WHERE r.name = ?1 AND r.base = '' AND r.rev = ?2 AND p.rev = ?2",
                )?
                .query_row(params![name, rendering.rev], |_| Ok(()))
                .optional()?;
            if current.is_some() {
                save(tx, &name, &rendering)?;
            }
            Ok(())
        })
        .await
    }
}
