//! PostgreSQL queries on `tokens`.

use tokio_postgres::{GenericClient, Row};

use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::store::accounts::{Standing, UserRow};
use crate::store::tokens::{FoundToken, TokenAudit, TokenFilter, TokenRow, TokenUses};

const COLUMNS: &str = "t.id, t.user_id, t.token_hash, t.role, t.scopes, t.name, t.created_at, \
                       t.expires_at, t.revoked_at, t.cidr, t.display, t.last_used_at, t.use_count, \
                       t.issued_by";

/// The token in the first columns of `row` (as [`COLUMNS`] selects them).
fn token(row: &Row) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        id: row.get(0),
        user_id: row.get(1),
        token_hash: row.get(2),
        role: row.get(3),
        scopes: serde_json::from_str(row.get(4))?,
        name: row.get(5),
        created_at: row.get(6),
        expires_at: row.get(7),
        revoked_at: row.get(8),
        cidr: serde_json::from_str(row.get(9))?,
        display: row.get(10),
        last_used_at: row.get(11),
        use_count: row.get(12),
        issued_by: row.get(13),
    })
}

/// The owner in the columns after the token's, as `u.id, u.name, u.email, u.password_hash,
/// u.role`.
fn owner(row: &Row) -> UserRow {
    UserRow {
        id: row.get(14),
        name: row.get(15),
        email: row.get(16),
        password_hash: row.get(17),
        role: row.get(18),
    }
}

/// The token with this id and its owner.
async fn find_with_user(
    client: &(impl GenericClient + Sync),
    id: &str,
) -> Result<Option<(TokenRow, UserRow)>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, u.id, u.name, u.email, u.password_hash, u.role
         FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
    );
    match client.query_opt(&sql, &[&id]).await? {
        Some(row) => Ok(Some((token(&row)?, owner(&row)))),
        None => Ok(None),
    }
}

#[async_trait::async_trait]
impl crate::store::TokenStore for super::Postgres {
    async fn insert_token(
        &self,
        token: TokenRow,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO tokens (id, user_id, token_hash, role, scopes, name, created_at,
                                 expires_at, cidr, display, issued_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &token.id,
                &token.user_id,
                &token.token_hash,
                &token.role,
                &serde_json::to_string(&token.scopes)?,
                &token.name,
                &token.created_at,
                &token.expires_at,
                &serde_json::to_string(&token.cidr)?,
                &token.display,
                &token.issued_by,
            ],
        )
        .await?;
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_token(&self, id: &str) -> Result<Option<FoundToken>, StoreError> {
        let client = self.pool().get().await?;
        // Prepared once per pooled connection: this runs for every request its token's memory
        // cannot answer.
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, u.id, u.name, u.email, u.password_hash, u.role,
                        u.disabled_at, u.session_generation
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
            ))
            .await?;
        let Some(row) = client.query_opt(&statement, &[&id]).await? else {
            return Ok(None);
        };
        Ok(Some(FoundToken {
            token: token(&row)?,
            user: owner(&row),
            standing: Standing {
                disabled_at: row.get(19),
                session_generation: row.get(20),
            },
        }))
    }

    async fn find_token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {COLUMNS} FROM tokens t WHERE t.token_hash = $1");
        client
            .query_opt(&sql, &[&token_hash])
            .await?
            .as_ref()
            .map(token)
            .transpose()
    }

    async fn token_ids_with_prefix(
        &self,
        owner: Option<i64>,
        prefix: &str,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let client = self.pool().get().await?;
        let rows = client
            .query(
                "SELECT id, revoked_at IS NULL FROM tokens
                 WHERE starts_with(id, $1) AND ($2::BIGINT IS NULL OR user_id = $2)
                 ORDER BY id COLLATE \"C\" LIMIT 20",
                &[&prefix, &owner],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn list_tokens(
        &self,
        filter: TokenFilter,
    ) -> Result<(Vec<(TokenRow, String)>, i64), StoreError> {
        let client = self.pool().get().await?;
        let condition = "($1::BIGINT IS NULL OR t.user_id = $1)
             AND ($2::BIGINT IS NULL
                  OR (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)))";
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&filter.user_id, &filter.live_at];
        let total: i64 = client
            .query_one(
                &format!("SELECT COUNT(*) FROM tokens t WHERE {condition}"),
                &args,
            )
            .await?
            .get(0);
        let sql = format!(
            "SELECT {COLUMNS}, u.name FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE {condition} ORDER BY t.created_at DESC, t.id COLLATE \"C\" LIMIT {} OFFSET {}",
            filter.limit, filter.offset
        );
        let rows = client
            .query(&sql, &args)
            .await?
            .iter()
            .map(|row| Ok((token(row)?, row.get(14))))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((rows, total))
    }

    async fn revoke_token_by_hash(
        &self,
        token_hash: &str,
        now: i64,
        audit: TokenAudit,
    ) -> Result<Option<TokenRow>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // `revoked_at IS NULL` is checked again after the row lock: of two revocations at
        // once, one revokes and audits, the other finds nothing live.
        let revoked = tx
            .query_opt(
                "UPDATE tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL
                 RETURNING id",
                &[&token_hash, &now],
            )
            .await?;
        let Some(row) = revoked else {
            return Ok(None);
        };
        let id: String = row.get(0);
        let Some((token, owner)) = find_with_user(&*tx, &id).await? else {
            return Ok(None);
        };
        super::events::record(&tx, &audit(&token, &owner)).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    async fn revoke_token_by_id(
        &self,
        id: &str,
        now: i64,
        audit: TokenAudit,
    ) -> Result<Option<TokenRow>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        let Some((token, owner)) = find_with_user(&*tx, id).await? else {
            return Ok(None);
        };
        super::events::record(&tx, &audit(&token, &owner)).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    async fn add_token_uses(&self, mut uses: Vec<TokenUses>) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // Every instance locks the rows in the same (id) order, so flushes that overlap wait
        // for each other instead of deadlocking; each adds its own counts to what is stored.
        uses.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let statement = tx
            .prepare_cached(
                "UPDATE tokens SET use_count = use_count + $2,
                                   last_used_at = GREATEST(COALESCE(last_used_at, 0), $3)
                 WHERE id = $1",
            )
            .await?;
        for one in &uses {
            tx.execute(&statement, &[&one.token_id, &one.count, &one.last_at])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
