//! Queries on `trusted_publishers` and `oidc_exchanges`.

use rusqlite::{Connection, OptionalExtension, params};

use super::events;
use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::store::trust::{Exchange, TrustedPublisherRow};

const COLUMNS: &str = "id, package, org, kind, claims, permissions, created_by, created_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(TrustedPublisherRow, String, String)> {
    Ok((
        TrustedPublisherRow {
            id: row.get(0)?,
            package: row.get(1)?,
            org: row.get(2)?,
            kind: row.get(3)?,
            claims: serde_json::Value::Null,
            permissions: Vec::new(),
            created_by: row.get(6)?,
            created_at: row.get(7)?,
        },
        row.get(4)?,
        row.get(5)?,
    ))
}

fn select(
    conn: &Connection,
    column: &str,
    key: &str,
) -> Result<Vec<TrustedPublisherRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM trusted_publishers WHERE {column} = ?1 AND {} IS NULL
         ORDER BY created_at, id",
        if column == "package" {
            "org"
        } else {
            "package"
        }
    );
    let mut stmt = conn.prepare(&sql)?;
    let raw = stmt
        .query_map([key], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(mut row, claims, permissions)| {
            row.claims = serde_json::from_str(&claims)?;
            row.permissions = serde_json::from_str(&permissions)?;
            Ok(row)
        })
        .collect()
}

#[async_trait::async_trait]
impl crate::store::TrustStore for super::Sqlite {
    async fn add_trusted_publishers(
        &self,
        rows: Vec<TrustedPublisherRow>,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            for row in &rows {
                tx.execute(
                    &format!("INSERT INTO trusted_publishers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                    params![
                        row.id,
                        row.package,
                        row.org,
                        row.kind,
                        row.claims.to_string(),
                        serde_json::to_string(&row.permissions)?,
                        row.created_by,
                        row.created_at
                    ],
                )?;
            }
            events::record_all(tx, &events)
        })
        .await
    }

    async fn package_trusted_publishers(
        &self,
        package: &str,
    ) -> Result<Vec<TrustedPublisherRow>, StoreError> {
        let package = package.to_owned();
        self.read(move |conn| select(conn, "package", &package))
            .await
    }

    async fn org_trusted_publishers(
        &self,
        org: &str,
    ) -> Result<Vec<TrustedPublisherRow>, StoreError> {
        let org = org.to_owned();
        self.read(move |conn| select(conn, "org", &org)).await
    }

    async fn remove_trusted_publisher(
        &self,
        id: &str,
        package: Option<&str>,
        org: Option<&str>,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let (id, package, org) = (
            id.to_owned(),
            package.map(str::to_owned),
            org.map(str::to_owned),
        );
        self.write(move |tx| {
            let removed = tx.execute(
                "DELETE FROM trusted_publishers WHERE id = ?1 AND package IS ?2 AND org IS ?3",
                params![id, package, org],
            )?;
            if removed == 0 {
                return Ok(false);
            }
            events::record(tx, &event)?;
            Ok(true)
        })
        .await
    }

    async fn record_exchange(
        &self,
        exchange: Exchange,
        now: i64,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| {
            tx.execute("DELETE FROM oidc_exchanges WHERE expires_at < ?1", [now])?;
            let added = tx.execute(
                "INSERT INTO oidc_exchanges (issuer, jti, expires_at, package, identity)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (issuer, jti) DO NOTHING",
                params![
                    exchange.issuer,
                    exchange.jti,
                    exchange.expires_at,
                    exchange.package,
                    exchange.identity.to_string()
                ],
            )?;
            if added == 0 {
                return Ok(false);
            }
            events::record(tx, &event)?;
            Ok(true)
        })
        .await
    }

    async fn link_exchange(
        &self,
        issuer: &str,
        jti: &str,
        token_id: &str,
    ) -> Result<(), StoreError> {
        let (issuer, jti, token_id) = (issuer.to_owned(), jti.to_owned(), token_id.to_owned());
        self.write(move |tx| {
            tx.execute(
                "UPDATE oidc_exchanges SET token_id = ?3 WHERE issuer = ?1 AND jti = ?2",
                params![issuer, jti, token_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn exchange_identity(
        &self,
        token_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let token_id = token_id.to_owned();
        self.read(move |conn| {
            let text: Option<String> = conn
                .query_row(
                    "SELECT identity FROM oidc_exchanges WHERE token_id = ?1",
                    [token_id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
        })
        .await
    }
}
