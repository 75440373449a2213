//! The PostgreSQL side of [`crate::store::RenderingStore`], and the refresh every package write
//! runs in its own transaction, under the package's advisory lock and after bumping the rev, so
//! concurrent writers leave the rendering of the last one to commit.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::packages::{dist_tags, exec, one, opt, rows};
use crate::packages::{RegistryError, rendering};
use crate::store::StoreError;
use crate::store::packages::parse_signatures;
use crate::store::renderings::{
    Fragment, RenderSource, StoredDocument, StoredRendering, VersionSource,
};
use crate::store::renderings::{RENDER_IN_WRITE_VERSIONS, fragment_row};

fn failed(err: RegistryError) -> StoreError {
    StoreError::Task(format!("rendering a packument failed: {err}"))
}

/// The stored rendering of a package, if it shows the package's current rev: one row.
pub async fn read<C: GenericClient>(
    client: &C,
    name: &str,
) -> Result<Option<StoredRendering>, StoreError> {
    Ok(opt(
        client,
        "SELECT r.rev, r.base, r.last_modified,
                r.full_plain, r.full_gzip, r.full_etag, r.full_gzip_etag, r.full_base_at, r.full_gzip_at,
                    r.full_cut_gzip,
                r.abbreviated_plain, r.abbreviated_gzip, r.abbreviated_etag,
                r.abbreviated_gzip_etag, r.abbreviated_base_at, r.abbreviated_gzip_at, r.abbreviated_cut_gzip
         FROM packument_renderings r JOIN packages p ON p.name = r.name AND p.rev = r.rev
         WHERE r.name = $1",
        &[&name],
    )
    .await?
    .map(|row| from_row(&row)))
}

fn from_row(row: &Row) -> StoredRendering {
    let document = |at: usize| StoredDocument {
        plain: row.get(at),
        gzip: row.get(at + 1),
        etag: row.get(at + 2),
        gzip_etag: row.get(at + 3),
        base_at: row.get(at + 4),
        gzip_at: row.get(at + 5),
        cut_gzip: row.get(at + 6),
    };
    StoredRendering {
        rev: row.get(0),
        base: row.get(1),
        last_modified: row.get(2),
        full: document(3),
        abbreviated: document(10),
    }
}

/// Stores a rendering in place of the package's.
pub async fn save<C: GenericClient>(
    client: &C,
    name: &str,
    r: &StoredRendering,
) -> Result<(), StoreError> {
    exec(
        client,
        "INSERT INTO packument_renderings (name, rev, base, last_modified,
             full_plain, full_gzip, full_etag, full_gzip_etag, full_base_at, full_gzip_at, full_cut_gzip,
             abbreviated_plain, abbreviated_gzip, abbreviated_etag, abbreviated_gzip_etag,
             abbreviated_base_at, abbreviated_gzip_at, abbreviated_cut_gzip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (name) DO UPDATE SET rev = excluded.rev, base = excluded.base,
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
        &[
            &name,
            &r.rev,
            &r.base,
            &r.last_modified,
            &r.full.plain,
            &r.full.gzip,
            &r.full.etag,
            &r.full.gzip_etag,
            &r.full.base_at,
            &r.full.gzip_at,
            &r.full.cut_gzip,
            &r.abbreviated.plain,
            &r.abbreviated.gzip,
            &r.abbreviated.etag,
            &r.abbreviated.gzip_etag,
            &r.abbreviated.base_at,
            &r.abbreviated.gzip_at,
            &r.abbreviated.cut_gzip,
        ],
    )
    .await?;
    Ok(())
}

/// Drops the fragments of versions whose rendering changed (a deprecation).
pub async fn forget_fragments<C: GenericClient>(
    client: &C,
    name: &str,
    versions: &[String],
) -> Result<(), StoreError> {
    exec(
        client,
        "DELETE FROM version_renderings WHERE package = $1 AND version = ANY($2)",
        &[&name, &versions],
    )
    .await?;
    Ok(())
}

/// What the package's documents are assembled from, with the base of its stored rendering;
/// missing fragments are rendered from their versions' rows (marked fresh, not stored). Read in
/// the caller's snapshot.
async fn source<C: GenericClient>(
    client: &C,
    name: &str,
) -> Result<Option<(RenderSource, Option<String>)>, StoreError> {
    let Some(head) = opt(
        client,
        "SELECT p.rev, p.created_at, p.modified_at,
                (SELECT base FROM packument_renderings WHERE name = p.name),
                l.manifest, l.readme, m.names, m.emails
         FROM packages p
         LEFT JOIN LATERAL (
             SELECT v.manifest, v.readme FROM dist_tags t
             JOIN versions v ON v.package = t.package AND v.version = t.version
             WHERE t.package = p.name AND t.tag = 'latest') l ON TRUE
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
    let latest = head
        .get::<_, Option<String>>(4)
        .map(|manifest| (manifest, head.get::<_, Option<String>>(5)));
    let names: Option<Vec<String>> = head.get(6);
    let emails: Option<Vec<String>> = head.get(7);
    let maintainers = names
        .unwrap_or_default()
        .into_iter()
        .zip(emails.unwrap_or_default())
        .collect();
    // Two range reads merged here: a join of the two tables is planned badly on a table that
    // has not been analyzed yet (seconds for thousands of versions).
    let mut fragments: HashMap<String, Fragment> = rows(
        client,
        "SELECT version, full_json, full_at, abbreviated_json, abbreviated_at
         FROM version_renderings WHERE package = $1",
        &[&name],
    )
    .await?
    .into_iter()
    .map(|row| {
        let fragment = Fragment {
            full: row.get(1),
            full_at: row.get(2),
            abbreviated: row.get(3),
            abbreviated_at: row.get(4),
        };
        (row.get(0), fragment)
    })
    .collect();
    let listed = rows(
        client,
        "SELECT version, published_at FROM versions WHERE package = $1",
        &[&name],
    )
    .await?;
    let missing: Vec<String> = listed
        .iter()
        .map(|row| row.get::<_, String>(0))
        .filter(|version| !fragments.contains_key(version))
        .collect();
    let mut fresh = HashMap::new();
    if !missing.is_empty() {
        for row in rows(
            client,
            "SELECT version, manifest, deprecated,
                    (SELECT json_agg(json_build_object('keyid', s.keyid, 'sig', s.sig))::text
                     FROM version_signatures s
                     WHERE s.package = versions.package AND s.version = versions.version)
             FROM versions WHERE package = $1 AND version = ANY($2)",
            &[&name, &missing],
        )
        .await?
        {
            let version: String = row.get(0);
            let signatures = parse_signatures(row.get::<_, Option<String>>(3).as_deref())?;
            let row = fragment_row(&version, row.get(1), row.get(2), signatures);
            fresh.insert(version, rendering::fragment(name, &row).map_err(failed)?);
        }
    }
    let mut versions = Vec::with_capacity(listed.len());
    for row in listed {
        let version: String = row.get(0);
        let (fragment, fresh) = match fragments.remove(&version) {
            Some(fragment) => (fragment, false),
            None => (
                fresh
                    .remove(&version)
                    .ok_or_else(|| StoreError::Task(format!("{name}@{version} has no fragment")))?,
                true,
            ),
        };
        versions.push(VersionSource {
            version,
            published_at: row.get(1),
            fragment,
            fresh,
        });
    }
    let source = RenderSource {
        name: name.to_owned(),
        rev: head.get(0),
        created_at: head.get(1),
        modified_at: head.get(2),
        versions,
        dist_tags: dist_tags(client, name).await?,
        maintainers,
        latest,
    };
    Ok(Some((source, head.get(3))))
}

/// Stores fragments rendered for a source (those stored meanwhile are kept).
async fn store_fragments<C: GenericClient>(
    client: &C,
    name: &str,
    fragments: &[(&str, &Fragment)],
) -> Result<(), StoreError> {
    if fragments.is_empty() {
        return Ok(());
    }
    let versions: Vec<&str> = fragments.iter().map(|(v, _)| *v).collect();
    let full: Vec<&str> = fragments.iter().map(|(_, f)| f.full.as_str()).collect();
    let full_at: Vec<&[u8]> = fragments
        .iter()
        .map(|(_, f)| f.full_at.as_slice())
        .collect();
    let abbreviated: Vec<&str> = fragments
        .iter()
        .map(|(_, f)| f.abbreviated.as_str())
        .collect();
    let abbreviated_at: Vec<&[u8]> = fragments
        .iter()
        .map(|(_, f)| f.abbreviated_at.as_slice())
        .collect();
    // One statement however many (a big package read for the first time has all of them).
    exec(
        client,
        "INSERT INTO version_renderings
             (package, version, full_json, full_at, abbreviated_json, abbreviated_at)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::bytea[])
         ON CONFLICT (package, version) DO NOTHING",
        &[
            &name,
            &versions,
            &full,
            &full_at,
            &abbreviated,
            &abbreviated_at,
        ],
    )
    .await?;
    Ok(())
}

fn fresh_of(source: &RenderSource) -> Vec<(&str, &Fragment)> {
    source
        .versions
        .iter()
        .filter(|v| v.fresh)
        .map(|v| (v.version.as_str(), &v.fragment))
        .collect()
}

/// Renders the package's documents again and stores them with their fresh fragments, on the base
/// its rendering had (else `""`).
async fn rerender<C: GenericClient>(client: &C, name: &str) -> Result<(), StoreError> {
    let Some((source, kept)) = source(client, name).await? else {
        return Ok(());
    };
    let base = kept.unwrap_or_default();
    store_fragments(client, name, &fresh_of(&source)).await?;
    let rendering = rendering::assemble(&source, &base).map_err(failed)?;
    save(client, name, &rendering).await?;
    Ok(())
}

/// Run inside every change's transaction, under the package's lock, after the change (and its
/// rev bump): a small package's rendering is replaced now; a big one's is left stale for the
/// first miss to replace ([`RENDER_IN_WRITE_VERSIONS`]).
pub async fn refresh<C: GenericClient>(client: &C, name: &str) -> Result<(), StoreError> {
    let versions: i64 = one(
        client,
        "SELECT count(*) FROM (SELECT 1 FROM versions WHERE package = $1 LIMIT $2) v",
        &[&name, &(RENDER_IN_WRITE_VERSIONS + 1)],
    )
    .await?
    .get(0);
    if versions > 0 && versions <= RENDER_IN_WRITE_VERSIONS {
        rerender(client, name).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl crate::store::RenderingStore for super::Postgres {
    async fn stored_rendering(&self, name: &str) -> Result<Option<StoredRendering>, StoreError> {
        super::packages::stored_rendering(self, name).await
    }

    async fn render_source(&self, name: &str) -> Result<Option<RenderSource>, StoreError> {
        let mut client = self.pool().get().await?;
        // One snapshot for all the statements.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let source = source(&tx, name).await?.map(|(source, _)| source);
        tx.commit().await?;
        Ok(source)
    }

    async fn store_rendering(
        &self,
        name: &str,
        rendering: &StoredRendering,
        fragments: Vec<(String, Fragment)>,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // Every change moves the package's rev under this row's lock: holding it shared keeps
        // the rev as checked until the rendering is stored.
        let current = opt(
            &tx,
            "SELECT p.rev, r.rev, r.base FROM packages p
             LEFT JOIN packument_renderings r ON r.name = p.name
             WHERE p.name = $1 FOR SHARE OF p",
            &[&name],
        )
        .await?;
        let Some(current) = current else {
            return Ok(false);
        };
        let stored: Option<i64> = current.get(1);
        let base: Option<String> = current.get(2);
        let newer_or_based = stored.is_some_and(|rev| {
            rev > rendering.rev || (rev == rendering.rev && base.is_some_and(|b| !b.is_empty()))
        });
        if current.get::<_, i64>(0) != rendering.rev || newer_or_based {
            return Ok(false);
        }
        let fragments: Vec<(&str, &Fragment)> =
            fragments.iter().map(|(v, f)| (v.as_str(), f)).collect();
        store_fragments(&tx, name, &fragments).await?;
        save(&tx, name, rendering).await?;
        tx.commit().await?;
        Ok(true)
    }
}
