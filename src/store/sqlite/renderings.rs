//! The SQLite side of [`crate::store::RenderingStore`], and the refresh every package write runs
//! in its own transaction (after bumping the rev).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::packages::{dist_tags, maintainers};
use crate::packages::{RegistryError, rendering};
use crate::store::StoreError;
use crate::store::packages::parse_signatures;
use crate::store::renderings::RENDER_IN_WRITE_VERSIONS;
use crate::store::renderings::fragment_row;
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
                    r.full_plain, r.full_gzip, r.full_etag, r.full_gzip_etag, r.full_base_at, r.full_gzip_at,
                    r.full_cut_gzip,
                    r.abbreviated_plain, r.abbreviated_gzip, r.abbreviated_etag,
                    r.abbreviated_gzip_etag, r.abbreviated_base_at, r.abbreviated_gzip_at, r.abbreviated_cut_gzip
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
            gzip_at: row.get(at + 5)?,
            cut_gzip: row.get(at + 6)?,
        })
    };
    Ok(StoredRendering {
        rev: row.get(0)?,
        base: row.get(1)?,
        last_modified: row.get(2)?,
        full: document(3)?,
        abbreviated: document(10)?,
    })
}

/// Stores a rendering in place of the package's.
pub fn save(conn: &Connection, name: &str, r: &StoredRendering) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO packument_renderings (name, rev, base, last_modified,
             full_plain, full_gzip, full_etag, full_gzip_etag, full_base_at, full_gzip_at, full_cut_gzip,
             abbreviated_plain, abbreviated_gzip, abbreviated_etag, abbreviated_gzip_etag,
             abbreviated_base_at, abbreviated_gzip_at, abbreviated_cut_gzip)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT(name) DO UPDATE SET rev = excluded.rev, base = excluded.base,
             last_modified = excluded.last_modified,
             full_plain = excluded.full_plain, full_gzip = excluded.full_gzip,
             full_etag = excluded.full_etag, full_gzip_etag = excluded.full_gzip_etag,
             full_base_at = excluded.full_base_at, full_gzip_at = excluded.full_gzip_at,
             full_cut_gzip = excluded.full_cut_gzip,
             abbreviated_plain = excluded.abbreviated_plain,
             abbreviated_gzip = excluded.abbreviated_gzip,
             abbreviated_etag = excluded.abbreviated_etag,
             abbreviated_gzip_etag = excluded.abbreviated_gzip_etag,
             abbreviated_base_at = excluded.abbreviated_base_at,
             abbreviated_gzip_at = excluded.abbreviated_gzip_at,
             abbreviated_cut_gzip = excluded.abbreviated_cut_gzip",
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
        r.full.gzip_at,
        r.full.cut_gzip,
        r.abbreviated.plain,
        r.abbreviated.gzip,
        r.abbreviated.etag,
        r.abbreviated.gzip_etag,
        r.abbreviated.base_at,
        r.abbreviated.gzip_at,
        r.abbreviated.cut_gzip,
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
/// versions' rows (marked fresh, not stored). Read in the caller's snapshot.
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
        Option<(String, Option<String>, Option<String>)>,
    );
    let loaded: Vec<Loaded> = conn
        .prepare_cached(
            "SELECT v.version, v.published_at, f.full_json, f.full_at, f.abbreviated_json,
                    f.abbreviated_at,
                    CASE WHEN f.package IS NULL THEN v.manifest END,
                    CASE WHEN f.package IS NULL THEN v.deprecated END,
                    CASE WHEN f.package IS NULL THEN
                        (SELECT json_group_array(json_object('keyid', s.keyid, 'sig', s.sig))
                         FROM version_signatures s
                         WHERE s.package = v.package AND s.version = v.version
                         HAVING count(*) > 0) END
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
                Some(manifest) => Some((manifest, row.get(7)?, row.get(8)?)),
                None => None,
            };
            Ok((row.get(0)?, row.get(1)?, fragment, unrendered))
        })?
        .collect::<Result<_, _>>()?;
    let mut versions = Vec::with_capacity(loaded.len());
    for (version, published_at, fragment, unrendered) in loaded {
        let (fragment, fresh) = match (fragment, unrendered) {
            (Some(fragment), _) => (fragment, false),
            (None, Some((manifest, deprecated, signatures))) => {
                let signatures = parse_signatures(signatures.as_deref())?;
                let row = fragment_row(&version, manifest, deprecated, signatures);
                (rendering::fragment(name, &row).map_err(failed)?, true)
            }
            (None, None) => return Err(StoreError::Task(format!("{name}@{version} has no row"))),
        };
        versions.push(VersionSource {
            version,
            published_at,
            fragment,
            fresh,
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

/// Stores fragments rendered for a source (those stored meanwhile are kept).
fn store_fragments<'a>(
    conn: &Connection,
    name: &str,
    fragments: impl IntoIterator<Item = (&'a str, &'a Fragment)>,
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO version_renderings
             (package, version, full_json, full_at, abbreviated_json, abbreviated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (version, fragment) in fragments {
        insert.execute(params![
            name,
            version,
            fragment.full,
            fragment.full_at,
            fragment.abbreviated,
            fragment.abbreviated_at
        ])?;
    }
    Ok(())
}

/// Renders the package's documents again and stores them with their fresh fragments, on the base
/// its rendering had (else `base`). `None` when the package is gone.
fn rerender(
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
    store_fragments(
        conn,
        name,
        source
            .versions
            .iter()
            .filter(|v| v.fresh)
            .map(|v| (v.version.as_str(), &v.fragment)),
    )?;
    save(conn, name, &rendering)?;
    Ok(Some(rendering))
}

/// Run inside every change's transaction, after the change (and its rev bump): a small package's
/// rendering is replaced now; a big one's is left stale for the first miss to replace
/// ([`RENDER_IN_WRITE_VERSIONS`]).
pub fn refresh(conn: &Connection, name: &str) -> Result<(), StoreError> {
    let versions: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM versions WHERE package = ?1 LIMIT ?2)",
        )?
        .query_row(params![name, RENDER_IN_WRITE_VERSIONS + 1], |row| {
            row.get(0)
        })?;
    if versions > 0 && versions <= RENDER_IN_WRITE_VERSIONS {
        rerender(conn, name, "")?;
    }
    Ok(())
}

/// [`crate::store::RenderingStore::store_rendering`] on the one writer, so the check and the
/// write cannot interleave with a change.
fn store_if_current(
    conn: &Connection,
    name: &str,
    rendering: &StoredRendering,
    fragments: &[(String, Fragment)],
) -> Result<bool, StoreError> {
    let current: Option<i64> = conn
        .prepare_cached("SELECT rev FROM packages WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?;
    if current != Some(rendering.rev) {
        return Ok(false);
    }
    let stored: Option<(i64, String)> = conn
        .prepare_cached("SELECT rev, base FROM packument_renderings WHERE name = ?1")?
        .query_row([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let Some((rev, base)) = stored
        && (rev > rendering.rev || (rev == rendering.rev && !base.is_empty()))
    {
        return Ok(false);
    }
    store_fragments(conn, name, fragments.iter().map(|(v, f)| (v.as_str(), f)))?;
    save(conn, name, rendering)?;
    Ok(true)
}

#[async_trait::async_trait]
impl crate::store::RenderingStore for super::Sqlite {
    async fn stored_rendering(&self, name: &str) -> Result<Option<StoredRendering>, StoreError> {
        let name = name.to_owned();
        // A cache miss: one keyed read, cheaper than the handoff to a blocking thread.
        self.read_now(move |conn| read(conn, &name)).await
    }

    async fn render_source(&self, name: &str) -> Result<Option<RenderSource>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| {
            // One snapshot for all the statements.
            let tx = conn.unchecked_transaction()?;
            let source = source(&tx, &name)?;
            tx.finish()?;
            Ok(source)
        })
        .await
    }

    async fn store_rendering(
        &self,
        name: &str,
        rendering: &StoredRendering,
        fragments: Vec<(String, Fragment)>,
    ) -> Result<bool, StoreError> {
        let (name, rendering) = (name.to_owned(), rendering.clone());
        self.write(move |tx| store_if_current(tx, &name, &rendering, &fragments))
            .await
    }
}
