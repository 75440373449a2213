//! PostgreSQL queries on `users`.
//!
//! Names are unique regardless of case (`users_name_nocase` on `lower(name)`). A creation or
//! reset first takes a transaction lock on the lower-cased name, so that the "is another case
//! of this name taken" check and the insert it guards run one at a time per name, as they do
//! on SQLite's single writer.

use tokio_postgres::{GenericClient, Row, Transaction};

use crate::store::StoreError;
use crate::store::accounts::{NewUser, Standing, UserAudit, UserRow, UserWrite};

const COLUMNS: &str = "id, name, email, password_hash, role";

fn user(row: &Row) -> UserRow {
    UserRow {
        id: row.get(0),
        name: row.get(1),
        email: row.get(2),
        password_hash: row.get(3),
        role: row.get(4),
    }
}

/// The user with exactly this name.
pub async fn find_by_name(
    client: &(impl GenericClient + Sync),
    name: &str,
) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE name = $1");
    Ok(client.query_opt(&sql, &[&name]).await?.as_ref().map(user))
}

/// The user with this id.
pub async fn find_by_id(
    client: &(impl GenericClient + Sync),
    id: i64,
) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(client.query_opt(&sql, &[&id]).await?.as_ref().map(user))
}

/// The name of the account whose name differs from `name` only in case, if there is one.
pub async fn case_variant(
    client: &(impl GenericClient + Sync),
    name: &str,
) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT name FROM users WHERE lower(name) = lower($1) AND name <> $1 LIMIT 1",
            &[&name],
        )
        .await?
        .map(|row| row.get(0)))
}

/// The standing of a user, by id.
pub async fn standing(
    client: &(impl GenericClient + Sync),
    id: i64,
) -> Result<Option<Standing>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT disabled_at, session_generation FROM users WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|row| Standing {
            disabled_at: row.get(0),
            session_generation: row.get(1),
        }))
}

/// Serializes the creations and resets of `name` in any case, until the transaction ends.
async fn lock_name(tx: &Transaction<'_>, name: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('user:' || lower($1), 0))",
        &[&name],
    )
    .await?;
    Ok(())
}

/// A unique violation on a user's name turned into the outcome it means: the name was taken in
/// another case (by a writer that does not take the name lock), or exactly.
async fn name_conflict(
    client: &(impl GenericClient + Sync),
    name: &str,
) -> Result<UserWrite, StoreError> {
    Ok(match case_variant(client, name).await? {
        Some(existing) => UserWrite::CaseVariant(existing),
        None => UserWrite::Exists,
    })
}

#[async_trait::async_trait]
impl crate::store::AccountStore for super::Postgres {
    async fn find_user_by_name(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        find_by_name(&**self.pool().get().await?, name).await
    }

    async fn find_user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        find_by_id(&**self.pool().get().await?, id).await
    }

    async fn put_user(&self, new: NewUser) -> Result<UserWrite, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock_name(&tx, &new.name).await?;
        if let Some(existing) = case_variant(&*tx, &new.name).await? {
            return Ok(UserWrite::CaseVariant(existing));
        }
        let written = tx
            .query_one(
                "INSERT INTO users (name, email, password_hash, role, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET email = excluded.email,
                     password_hash = excluded.password_hash, role = excluded.role
                 RETURNING id",
                &[
                    &new.name,
                    &new.email,
                    &new.password_hash,
                    &new.role,
                    &new.now,
                ],
            )
            .await;
        let id: i64 = match written {
            Ok(row) => row.get(0),
            Err(err) if super::is_unique_violation(&err) => {
                drop(tx);
                return name_conflict(&**client, &new.name).await;
            }
            Err(err) => return Err(err.into()),
        };
        // A new password ends every browser session signed in with the old one.
        tx.execute(
            "UPDATE users SET session_generation = session_generation + 1 WHERE id = $1",
            &[&id],
        )
        .await?;
        tx.commit().await?;
        Ok(UserWrite::Written(id))
    }

    async fn create_user(&self, new: NewUser) -> Result<UserWrite, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock_name(&tx, &new.name).await?;
        if let Some(existing) = case_variant(&*tx, &new.name).await? {
            return Ok(UserWrite::CaseVariant(existing));
        }
        let id = tx
            .query_opt(
                "INSERT INTO users (name, email, password_hash, role, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
                &[
                    &new.name,
                    &new.email,
                    &new.password_hash,
                    &new.role,
                    &new.now,
                ],
            )
            .await?;
        let Some(row) = id else {
            drop(tx);
            return name_conflict(&**client, &new.name).await;
        };
        tx.commit().await?;
        Ok(UserWrite::Written(row.get(0)))
    }

    async fn user_standing(&self, id: i64) -> Result<Option<Standing>, StoreError> {
        standing(&**self.pool().get().await?, id).await
    }

    async fn set_user_disabled(
        &self,
        name: &str,
        disabled_at: Option<i64>,
        audit: UserAudit,
    ) -> Result<Option<bool>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let Some(user) = find_by_name(&*tx, name).await? else {
            return Ok(None);
        };
        // The row lock makes "was it disabled before" and the change one step, so two
        // instances disabling at once audit one change.
        let before: Option<i64> = tx
            .query_one(
                "SELECT disabled_at FROM users WHERE id = $1 FOR UPDATE",
                &[&user.id],
            )
            .await?
            .get(0);
        tx.execute(
            "UPDATE users SET session_generation = session_generation + 1,
                 disabled_at = CASE WHEN $2::BIGINT IS NULL THEN NULL
                                    ELSE COALESCE(disabled_at, $2::BIGINT) END
             WHERE id = $1",
            &[&user.id, &disabled_at],
        )
        .await?;
        let changed = before.is_some() != disabled_at.is_some();
        if changed {
            super::events::record(&tx, &audit(&user)).await?;
        }
        tx.commit().await?;
        Ok(Some(changed))
    }

    async fn standing_stamp(&self) -> Result<(i64, i64), StoreError> {
        let row = self
            .pool()
            .get()
            .await?
            .query_one(
                "SELECT COUNT(*), COALESCE(SUM(session_generation), 0)::BIGINT FROM users",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }
}
