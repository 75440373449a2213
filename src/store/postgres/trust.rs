//! PostgreSQL queries on `trusted_publishers` and `oidc_exchanges`.

use tokio_postgres::Row;

use super::events;
use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::store::trust::{Exchange, TrustedPublisherRow};

const COLUMNS: &str = "id, package, org, kind, claims, permissions, created_by, created_at";

fn from_row(row: &Row) -> Result<TrustedPublisherRow, StoreError> {
    let claims: String = row.get(4);
    let permissions: String = row.get(5);
    Ok(TrustedPublisherRow {
        id: row.get(0),
        package: row.get(1),
        org: row.get(2),
        kind: row.get(3),
        claims: serde_json::from_str(&claims)?,
        permissions: serde_json::from_str(&permissions)?,
        created_by: row.get(6),
        created_at: row.get(7),
    })
}

impl super::Postgres {
    async fn select_trusted(
        &self,
        column: &str,
        key: &str,
    ) -> Result<Vec<TrustedPublisherRow>, StoreError> {
        let other = if column == "package" {
            "org"
        } else {
            "package"
        };
        let client = self.pool().get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM trusted_publishers WHERE {column} = $1 AND {other} IS NULL
                     ORDER BY created_at, id"
                ),
                &[&key],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }
}

#[async_trait::async_trait]
impl crate::store::TrustStore for super::Postgres {
    async fn add_trusted_publishers(
        &self,
        rows: Vec<TrustedPublisherRow>,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        for row in &rows {
            tx.execute(
                &format!(
                    "INSERT INTO trusted_publishers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &row.id,
                    &row.package,
                    &row.org,
                    &row.kind,
                    &row.claims.to_string(),
                    &serde_json::to_string(&row.permissions)?,
                    &row.created_by,
                    &row.created_at,
                ],
            )
            .await?;
        }
        events::record_all(&tx, &events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn package_trusted_publishers(
        &self,
        package: &str,
    ) -> Result<Vec<TrustedPublisherRow>, StoreError> {
        self.select_trusted("package", package).await
    }

    async fn org_trusted_publishers(
        &self,
        org: &str,
    ) -> Result<Vec<TrustedPublisherRow>, StoreError> {
        self.select_trusted("org", org).await
    }

    async fn remove_trusted_publisher(
        &self,
        id: &str,
        package: Option<&str>,
        org: Option<&str>,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let removed = tx
            .execute(
                "DELETE FROM trusted_publishers
                 WHERE id = $1 AND package IS NOT DISTINCT FROM $2 AND org IS NOT DISTINCT FROM $3",
                &[&id, &package, &org],
            )
            .await?;
        if removed == 0 {
            return Ok(false);
        }
        events::record(&tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_exchange(
        &self,
        exchange: Exchange,
        now: i64,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM oidc_exchanges WHERE expires_at < $1", &[&now])
            .await?;
        // The primary key decides between concurrent exchanges of one ID token: the second
        // waits for the first to commit, then inserts nothing.
        let added = tx
            .execute(
                "INSERT INTO oidc_exchanges (issuer, jti, expires_at, package, identity)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer, jti) DO NOTHING",
                &[
                    &exchange.issuer,
                    &exchange.jti,
                    &exchange.expires_at,
                    &exchange.package,
                    &exchange.identity.to_string(),
                ],
            )
            .await?;
        if added == 0 {
            return Ok(false);
        }
        events::record(&tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn link_exchange(
        &self,
        issuer: &str,
        jti: &str,
        token_id: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool().get().await?;
        client
            .execute(
                "UPDATE oidc_exchanges SET token_id = $3 WHERE issuer = $1 AND jti = $2",
                &[&issuer, &jti, &token_id],
            )
            .await?;
        Ok(())
    }

    async fn exchange_identity(
        &self,
        token_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let client = self.pool().get().await?;
        let row = client
            .query_opt(
                "SELECT identity FROM oidc_exchanges WHERE token_id = $1",
                &[&token_id],
            )
            .await?;
        match row {
            Some(row) => {
                let text: String = row.get(0);
                Ok(Some(serde_json::from_str(&text)?))
            }
            None => Ok(None),
        }
    }
}
