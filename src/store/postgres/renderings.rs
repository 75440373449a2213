//! The PostgreSQL side of [`crate::store::RenderingStore`], and the re-render every package write
//! runs in its own transaction, under the package's advisory lock and after bumping the rev, so
//! concurrent writers leave the rendering of the last one to commit.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::packages::{dist_tags, exec, lock, opt, package_lock, rows};
use crate::packages::{RegistryError, rendering};
use crate::store::StoreError;
use crate::store::renderings::{
    Fragment, RenderSource, StoredDocument, StoredRendering, VersionSource,
};

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
                r.full_plain, r.full_gzip, r.full_etag, r.full_gzip_etag, r.full_base_at,
                r.abbreviated_plain, r.abbreviated_gzip, r.abbreviated_etag,
                r.abbreviated_gzip_etag, r.abbreviated_base_at
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
    };
    StoredRendering {
        rev: row.get(0),
        base: row.get(1),
        last_modified: row.get(2),
        full: document(3),
        abbreviated: document(8),
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
             full_plain, full_gzip, full_etag, full_gzip_etag, full_base_at,
             abbreviated_plain, abbreviated_gzip, abbreviated_etag, abbreviated_gzip_etag,
             abbreviated_base_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (name) DO UPDATE SET rev = excluded.rev, base = excluded.base,
             last_modified = excluded.last_modified,
             full_plain = excluded.full_plain, full_gzip = excluded.full_gzip,
             full_etag = excluded.full_etag, full_gzip_etag = excluded.full_gzip_etag,
             full_base_at = excluded.full_base_at,
             abbreviated_plain = excluded.abbreviated_plain,
             abbreviated_gzip = excluded.abbreviated_gzip,
             abbreviated_etag = excluded.abbreviated_etag,
             abbreviated_gzip_etag = excluded.abbreviated_gzip_etag,
             abbreviated_base_at = excluded.abbreviated_base_at",
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
            &r.abbreviated.plain,
            &r.abbreviated.gzip,
            &r.abbreviated.etag,
            &r.abbreviated.gzip_etag,
            &r.abbreviated.base_at,
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

/// What the package's documents are assembled from, in one statement; missing fragments are
/// rendered from their versions' rows and stored.
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
    if !missing.is_empty() {
        for row in rows(
            client,
            "SELECT version, manifest, deprecated FROM versions
             WHERE package = $1 AND version = ANY($2)",
            &[&name, &missing],
        )
        .await?
        {
            let version: String = row.get(0);
            let manifest: String = row.get(1);
            let deprecated: Option<String> = row.get(2);
            let fragment = rendering::fragment(name, &version, &manifest, deprecated.as_deref())
                .map_err(failed)?;
            exec(
                client,
                "INSERT INTO version_renderings
                     (package, version, full_json, full_at, abbreviated_json, abbreviated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &name,
                    &version,
                    &fragment.full,
                    &fragment.full_at,
                    &fragment.abbreviated,
                    &fragment.abbreviated_at,
                ],
            )
            .await?;
            fragments.insert(version, fragment);
        }
    }
    let mut versions = Vec::with_capacity(listed.len());
    for row in listed {
        let version: String = row.get(0);
        let fragment = fragments
            .remove(&version)
            .ok_or_else(|| StoreError::Task(format!("{name}@{version} has no fragment")))?;
        versions.push(VersionSource {
            version,
            published_at: row.get(1),
            fragment,
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

/// Renders the package's documents again and stores them, on the base its rendering had (else
/// `base`); run inside every change's transaction, after the change. `None` when the package is
/// gone.
pub async fn rerender<C: GenericClient>(
    client: &C,
    name: &str,
    base: &str,
) -> Result<Option<StoredRendering>, StoreError> {
    let Some((source, kept)) = source(client, name).await? else {
        return Ok(None);
    };
    let base = kept.unwrap_or_else(|| base.to_owned());
    // Concatenating and compressing thousands of versions is CPU work: off the async threads.
    let rendering = tokio::task::spawn_blocking(move || rendering::assemble(&source, &base))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
        .map_err(failed)?;
    save(client, name, &rendering).await?;
    Ok(Some(rendering))
}

#[async_trait::async_trait]
impl crate::store::RenderingStore for super::Postgres {
    async fn stored_rendering(&self, name: &str) -> Result<Option<StoredRendering>, StoreError> {
        let client = self.pool().get().await?;
        read(&client, name).await
    }

    async fn render_and_store(
        &self,
        name: &str,
        base: &str,
    ) -> Result<Option<StoredRendering>, StoreError> {
        let mut client = self.pool().get().await?;
        // Reads of names that do not exist take no lock.
        if opt(&client, "SELECT 1 FROM packages WHERE name = $1", &[&name])
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        // Another reader (or instance) may have stored it meanwhile.
        if let Some(stored) = read(&tx, name).await? {
            return Ok(Some(stored));
        }
        let rendering = rerender(&tx, name, base).await?;
        tx.commit().await?;
        Ok(rendering)
    }

    async fn adopt_base(&self, name: &str, rendering: StoredRendering) -> Result<(), StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(name)).await?;
        let current = opt(
            &tx,
            "SELECT 1 FROM packument_renderings r JOIN packages p ON p.name = r.name
             WHERE r.name = $1 AND r.base = '' AND r.rev = $2 AND p.rev = $2",
            &[&name, &rendering.rev],
        )
        .await?;
        if current.is_some() {
            save(&tx, name, &rendering).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
