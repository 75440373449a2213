//! PostgreSQL queries on `advisories`, and which names the registry hosts.

use tokio_postgres::Row;

use crate::store::StoreError;
use crate::store::advisories::{AdvisoryRow, Cvss, EventFor, NewAdvisory};

const COLUMNS: &str = "id, package, vulnerable_versions, patched_versions, severity, title, url,
     cwe, cvss, created_at, created_by FROM advisories";

fn advisory_from_row(row: &Row) -> AdvisoryRow {
    let cvss: Option<String> = row.get(8);
    AdvisoryRow {
        id: row.get(0),
        package: row.get(1),
        vulnerable_versions: row.get(2),
        patched_versions: row.get(3),
        severity: row.get(4),
        title: row.get(5),
        url: row.get(6),
        cwe: serde_json::from_str(row.get(7)).unwrap_or_default(),
        cvss: cvss.and_then(|text| serde_json::from_str::<Cvss>(&text).ok()),
        created_at: row.get(9),
        created_by: row.get(10),
    }
}

#[async_trait::async_trait]
impl crate::store::AdvisoryStore for super::Postgres {
    async fn create_advisory(
        &self,
        advisory: NewAdvisory,
        event: EventFor<AdvisoryRow>,
    ) -> Result<AdvisoryRow, StoreError> {
        let cvss = advisory
            .cvss
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        let cwe = serde_json::to_string(&advisory.cwe)?;
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let sql = format!(
            "INSERT INTO advisories (package, vulnerable_versions, patched_versions, severity,
                                     title, url, cwe, cvss, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING {}",
            COLUMNS.trim_end_matches(" FROM advisories")
        );
        let row = tx
            .query_one(
                &sql,
                &[
                    &advisory.package,
                    &advisory.vulnerable_versions,
                    &advisory.patched_versions,
                    &advisory.severity,
                    &advisory.title,
                    &advisory.url,
                    &cwe,
                    &cvss,
                    &advisory.created_at,
                    &advisory.created_by,
                ],
            )
            .await?;
        let row = advisory_from_row(&row);
        super::events::record(&tx, &event(&row)).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn list_advisories(
        &self,
        package: Option<String>,
    ) -> Result<Vec<AdvisoryRow>, StoreError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {COLUMNS} WHERE $1::TEXT IS NULL OR package = $1 ORDER BY id");
        Ok(client
            .query(&sql, &[&package])
            .await?
            .iter()
            .map(advisory_from_row)
            .collect())
    }

    async fn delete_advisory(
        &self,
        id: i64,
        event: EventFor<AdvisoryRow>,
    ) -> Result<Option<AdvisoryRow>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // The delete is the check: of two concurrent deletes, only one gets the row back.
        let sql = format!(
            "DELETE FROM advisories WHERE id = $1 RETURNING {}",
            COLUMNS.trim_end_matches(" FROM advisories")
        );
        let Some(row) = tx.query_opt(&sql, &[&id]).await? else {
            return Ok(None);
        };
        let row = advisory_from_row(&row);
        super::events::record(&tx, &event(&row)).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    async fn advisories_of(&self, packages: Vec<String>) -> Result<Vec<AdvisoryRow>, StoreError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {COLUMNS} WHERE package = ANY($1) ORDER BY package, id");
        Ok(client
            .query(&sql, &[&packages])
            .await?
            .iter()
            .map(advisory_from_row)
            .collect())
    }

    async fn hosted_names(&self, names: Vec<String>) -> Result<Vec<String>, StoreError> {
        let client = self.pool().get().await?;
        let rows = client
            .query(
                "SELECT a.name FROM unnest($1::TEXT[]) AS a(name)
                 WHERE EXISTS (SELECT 1 FROM packages p WHERE p.name = a.name)
                    OR EXISTS (SELECT 1 FROM retired_packages r WHERE r.name = a.name)
                    OR (starts_with(a.name, '@') AND strpos(a.name, '/') > 0
                        AND (EXISTS (SELECT 1 FROM orgs o
                                     WHERE o.slug = substr(a.name, 2, strpos(a.name, '/') - 2))
                             OR EXISTS (SELECT 1 FROM scope_owners s
                                        WHERE s.scope = substr(a.name, 2, strpos(a.name, '/') - 2))))",
                &[&names],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}
