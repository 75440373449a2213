//! Queries on `advisories`, and which names the registry hosts.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::events;
use crate::store::StoreError;
use crate::store::advisories::{AdvisoryRow, Cvss, EventFor, NewAdvisory};

const COLUMNS: &str = "id, package, vulnerable_versions, patched_versions, severity, title, url,
     cwe, cvss, created_at, created_by FROM advisories";

/// Names looked up per statement, well below SQLite's limit on parameters.
const NAMES_PER_QUERY: usize = 500;

fn advisory_from_row(row: &Row<'_>) -> rusqlite::Result<AdvisoryRow> {
    let cwe: String = row.get(7)?;
    let cvss: Option<String> = row.get(8)?;
    Ok(AdvisoryRow {
        id: row.get(0)?,
        package: row.get(1)?,
        vulnerable_versions: row.get(2)?,
        patched_versions: row.get(3)?,
        severity: row.get(4)?,
        title: row.get(5)?,
        url: row.get(6)?,
        cwe: serde_json::from_str(&cwe).unwrap_or_default(),
        cvss: cvss.and_then(|text| serde_json::from_str::<Cvss>(&text).ok()),
        created_at: row.get(9)?,
        created_by: row.get(10)?,
    })
}

fn insert(conn: &Connection, advisory: &NewAdvisory) -> Result<i64, StoreError> {
    let cvss = advisory
        .cvss
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    conn.execute(
        "INSERT INTO advisories (package, vulnerable_versions, patched_versions, severity, title,
                                 url, cwe, cvss, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            advisory.package,
            advisory.vulnerable_versions,
            advisory.patched_versions,
            advisory.severity,
            advisory.title,
            advisory.url,
            serde_json::to_string(&advisory.cwe)?,
            cvss,
            advisory.created_at,
            advisory.created_by,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

fn find(conn: &Connection, id: i64) -> Result<Option<AdvisoryRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], advisory_from_row).optional()?)
}

fn list(conn: &Connection, package: Option<&str>) -> Result<Vec<AdvisoryRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} WHERE ?1 IS NULL OR package = ?1 ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([package], advisory_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `?1, ?2, ... ?n`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn advisories_of(conn: &Connection, packages: &[String]) -> Result<Vec<AdvisoryRow>, StoreError> {
    let mut found = Vec::new();
    for chunk in packages.chunks(NAMES_PER_QUERY) {
        let sql = format!(
            "SELECT {COLUMNS} WHERE package IN ({}) ORDER BY package, id",
            placeholders(chunk.len())
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(chunk), advisory_from_row)?;
        for row in rows {
            found.push(row?);
        }
    }
    found.sort_by(|a, b| (&a.package, a.id).cmp(&(&b.package, b.id)));
    Ok(found)
}

fn hosted_names(conn: &Connection, names: &[String]) -> Result<Vec<String>, StoreError> {
    let mut hosted = Vec::new();
    for chunk in names.chunks(NAMES_PER_QUERY) {
        let sql = format!(
            "WITH asked(name) AS (VALUES {})
             SELECT name FROM asked a
             WHERE EXISTS (SELECT 1 FROM packages p WHERE p.name = a.name)
                OR EXISTS (SELECT 1 FROM retired_packages r WHERE r.name = a.name)
                OR (substr(a.name, 1, 1) = '@' AND instr(a.name, '/') > 0
                    AND (EXISTS (SELECT 1 FROM orgs o
                                 WHERE o.slug = substr(a.name, 2, instr(a.name, '/') - 2))
                         OR EXISTS (SELECT 1 FROM scope_owners s
                                    WHERE s.scope = substr(a.name, 2, instr(a.name, '/') - 2))))",
            (1..=chunk.len())
                .map(|i| format!("(?{i})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(chunk), |row| row.get::<_, String>(0))?;
        for row in rows {
            hosted.push(row?);
        }
    }
    Ok(hosted)
}

#[async_trait::async_trait]
impl crate::store::AdvisoryStore for super::Sqlite {
    async fn create_advisory(
        &self,
        advisory: NewAdvisory,
        event: EventFor<AdvisoryRow>,
    ) -> Result<AdvisoryRow, StoreError> {
        self.write(move |tx| {
            let id = insert(tx, &advisory)?;
            let row = find(tx, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            events::record(tx, &event(&row))?;
            Ok(row)
        })
        .await
    }

    async fn list_advisories(
        &self,
        package: Option<String>,
    ) -> Result<Vec<AdvisoryRow>, StoreError> {
        self.read(move |conn| list(conn, package.as_deref())).await
    }

    async fn delete_advisory(
        &self,
        id: i64,
        event: EventFor<AdvisoryRow>,
    ) -> Result<Option<AdvisoryRow>, StoreError> {
        self.write(move |tx| {
            let Some(row) = find(tx, id)? else {
                return Ok(None);
            };
            tx.execute("DELETE FROM advisories WHERE id = ?1", [id])?;
            events::record(tx, &event(&row))?;
            Ok(Some(row))
        })
        .await
    }

    async fn advisories_of(&self, packages: Vec<String>) -> Result<Vec<AdvisoryRow>, StoreError> {
        self.read(move |conn| advisories_of(conn, &packages)).await
    }

    async fn hosted_names(&self, names: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| hosted_names(conn, &names)).await
    }
}
