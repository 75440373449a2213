//! Stored packument renderings on PostgreSQL (see [`crate::store::renderings`]).

use crate::packages::cache::Form;
use crate::store::StoreError;
use crate::store::renderings::{
    NewRendering, RenderingStore, StoredDocument, decode_cuts, decode_digest, encode_cuts,
    form_code,
};

use super::packages::{exec, opt, read_package, rows};

#[async_trait::async_trait]
impl RenderingStore for super::Postgres {
    async fn stored_document(
        &self,
        name: &str,
        form: Form,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let code = form_code(form);
        read_package!(self, name, |client| {
            let row = opt(
                &client,
                "SELECT r.last_modified, r.cuts, r.plain, r.digest
                 FROM renderings r JOIN packages p ON p.name = r.package AND p.rev = r.rev
                 WHERE r.package = $1 AND r.form = $2",
                &[&name, &code],
            )
            .await?;
            // A column that does not decode is served as no rendering: the miss renders rows.
            Ok(row.and_then(|row| {
                Some(StoredDocument {
                    cuts: decode_cuts(row.get::<_, &[u8]>(1))?,
                    last_modified: row.get(0),
                    plain: row.get(2),
                    digest: decode_digest(row.get(3)),
                })
            }))
        })
    }

    async fn store_renderings(&self, renderings: Vec<NewRendering>) -> Result<usize, StoreError> {
        if renderings.is_empty() {
            return Ok(0);
        }
        let packages: Vec<&str> = renderings.iter().map(|r| r.package.as_str()).collect();
        let forms: Vec<i64> = renderings.iter().map(|r| form_code(r.form)).collect();
        let revs: Vec<i64> = renderings.iter().map(|r| r.rev).collect();
        let dates: Vec<&str> = renderings
            .iter()
            .map(|r| r.document.last_modified.as_str())
            .collect();
        let cuts: Vec<Vec<u8>> = renderings
            .iter()
            .map(|r| encode_cuts(&r.document.cuts))
            .collect();
        let plain: Vec<&[u8]> = renderings
            .iter()
            .map(|r| r.document.plain.as_slice())
            .collect();
        let digests: Vec<Option<&[u8]>> = renderings
            .iter()
            .map(|r| r.document.digest.as_ref().map(|d| &d[..]))
            .collect();
        let client = self.pool().get().await?;
        let stored = exec(
            &client,
            "INSERT INTO renderings (package, form, rev, last_modified, cuts, plain, digest)
             SELECT p.name, r.form, r.rev, r.last_modified, r.cuts, r.plain, r.digest
             FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::bytea[], $6::bytea[],
                         $7::bytea[])
                  AS r(package, form, rev, last_modified, cuts, plain, digest)
             JOIN packages p ON p.name = r.package AND p.rev = r.rev
             ON CONFLICT (package, form) DO UPDATE SET
                 rev = excluded.rev, last_modified = excluded.last_modified,
                 cuts = excluded.cuts, plain = excluded.plain, digest = excluded.digest
             WHERE renderings.rev <= excluded.rev",
            &[&packages, &forms, &revs, &dates, &cuts, &plain, &digests],
        )
        .await?;
        Ok(usize::try_from(stored).unwrap_or(usize::MAX))
    }

    async fn unrendered(&self, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let client = self.pool().get().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found = rows(
            &client,
            "SELECT p.name FROM packages p
             WHERE p.name > $1
               AND (SELECT count(*) FROM renderings r
                    WHERE r.package = p.name AND r.rev = p.rev) < 2
             ORDER BY p.name LIMIT $2",
            &[&after, &limit],
        )
        .await?;
        Ok(found.iter().map(|row| row.get(0)).collect())
    }
}
