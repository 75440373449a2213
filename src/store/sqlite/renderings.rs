//! Stored packument renderings on SQLite (see [`crate::store::renderings`]).

use rusqlite::{Connection, OptionalExtension, params};

use crate::packages::cache::Form;
use crate::store::StoreError;
use crate::store::renderings::{
    NewRendering, RenderingStore, StoredDocument, decode_cuts, decode_digest, encode_cuts,
    form_code,
};

/// Documents up to this size are read on the async thread that asked (one page or a few);
/// bigger ones on a blocking thread.
const INLINE_READ_BYTES: i64 = 64 * 1024;

/// What a read found: the document, one too big to read inline, or none current.
enum Found {
    Document(StoredDocument),
    TooBig,
    Missing,
}

/// The current document of `name` in `form`; its bytes only up to `max_bytes`.
fn read(conn: &Connection, name: &str, form: Form, max_bytes: i64) -> Result<Found, StoreError> {
    // `length()` of a BLOB is read from the record header, without loading the bytes; `plain`
    // is never NULL, so NULL here means too big. A row is of the package's current rev: a
    // change of the rev deletes it (`renderings_stale`).
    let row = conn
        .prepare_cached(
            "SELECT last_modified, cuts, CASE WHEN length(plain) <= ?3 THEN plain END, digest
             FROM renderings WHERE package = ?1 AND form = ?2",
        )?
        .query_row(params![name, form_code(form), max_bytes], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Option<Vec<u8>>>(2)?,
                decode_digest(row.get_ref(3)?.as_blob_or_null()?),
            ))
        })
        .optional()?;
    Ok(match row {
        None => Found::Missing,
        Some((_, _, None, _)) => Found::TooBig,
        // A column that does not decode is served as no rendering: the miss renders from rows.
        Some((last_modified, cuts, Some(plain), digest)) => match decode_cuts(&cuts) {
            Some(cuts) => Found::Document(StoredDocument {
                plain,
                cuts,
                last_modified,
                digest,
            }),
            None => Found::Missing,
        },
    })
}

fn store(conn: &Connection, rendering: &NewRendering) -> Result<bool, StoreError> {
    let stored = conn
        .prepare_cached(
            "INSERT INTO renderings (package, form, rev, last_modified, cuts, plain, digest)
             SELECT name, ?2, rev, ?4, ?5, ?6, ?7 FROM packages WHERE name = ?1 AND rev = ?3
             ON CONFLICT (package, form) DO UPDATE SET
                 rev = excluded.rev, last_modified = excluded.last_modified,
                 cuts = excluded.cuts, plain = excluded.plain, digest = excluded.digest",
        )?
        .execute(params![
            rendering.package,
            form_code(rendering.form),
            rendering.rev,
            rendering.document.last_modified,
            encode_cuts(&rendering.document.cuts),
            rendering.document.plain,
            rendering.document.digest.as_ref().map(|d| &d[..]),
        ])?;
    Ok(stored > 0)
}

fn unrendered(conn: &Connection, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.name FROM packages p
         WHERE p.name > ?1
           AND (SELECT count(*) FROM renderings r WHERE r.package = p.name AND r.rev = p.rev) < 2
         ORDER BY p.name LIMIT ?2",
    )?;
    let names = stmt
        .query_map(params![after, limit as i64], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names)
}

#[async_trait::async_trait]
impl RenderingStore for super::Sqlite {
    async fn stored_document(
        &self,
        name: &str,
        form: Form,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let owned = name.to_owned();
        let found = self
            .read_point(move |conn| read(conn, &owned, form, INLINE_READ_BYTES))
            .await?;
        match found {
            Found::Document(document) => Ok(Some(document)),
            Found::Missing => Ok(None),
            Found::TooBig => {
                let name = name.to_owned();
                let found = self
                    .read(move |conn| read(conn, &name, form, i64::MAX))
                    .await?;
                Ok(match found {
                    Found::Document(document) => Some(document),
                    Found::TooBig | Found::Missing => None,
                })
            }
        }
    }

    async fn store_renderings(&self, renderings: Vec<NewRendering>) -> Result<usize, StoreError> {
        self.write(move |tx| {
            let mut stored = 0;
            for rendering in &renderings {
                stored += usize::from(store(tx, rendering)?);
            }
            Ok(stored)
        })
        .await
    }

    async fn unrendered(&self, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let after = after.to_owned();
        self.read(move |conn| unrendered(conn, &after, limit)).await
    }
}
