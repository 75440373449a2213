//! PostgreSQL queries for the logins part of the store seam: `device_authorizations`,
//! `oauth_states` and `user_identities`.
//!
//! Single use holds under concurrent instances because each use is one statement that both
//! checks and changes the row (`UPDATE .. WHERE status = 'approved' RETURNING`, `DELETE ..
//! RETURNING`): of racing statements on one row, the later ones re-check after the first commits
//! and find nothing. A sign-in holds an advisory lock on its identity (and on its e-mail), so
//! concurrent first sign-ins decide one after the other, as they do on SQLite's single writer.

use tokio_postgres::{Row, Transaction};

use super::events;
use crate::clock;
use crate::store::StoreError;
use crate::store::accounts::UserRow;
use crate::store::logins::{
    DecideLink, DeviceRow, IdentityFacts, IdentitySignIn, KnownUser, LinkDecision, LinkEvent,
    LinkStep, NewAccount, NewDevice, SignInOutcome, StateRow,
};

const DEVICE_COLUMNS: &str = "id, client, requested_role, scopes, ip, created_at, expires_at, \
                              interval_secs, last_polled_at, status, user_id";

const STATE_COLUMNS: &str =
    "state_hash, provider, pkce_verifier, nonce, return_code, redirect_uri, created_at, expires_at";

fn device_from_row(row: &Row) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        id: row.try_get(0)?,
        client: row.try_get(1)?,
        requested_role: row.try_get(2)?,
        scopes: serde_json::from_str(row.try_get(3)?)?,
        ip: row.try_get(4)?,
        created_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        interval_secs: row.try_get(7)?,
        last_polled_at: row.try_get(8)?,
        status: row.try_get(9)?,
        user_id: row.try_get(10)?,
    })
}

fn state_from_row(row: &Row) -> Result<StateRow, StoreError> {
    Ok(StateRow {
        state_hash: row.try_get(0)?,
        provider: row.try_get(1)?,
        pkce_verifier: row.try_get(2)?,
        nonce: row.try_get(3)?,
        return_code: row.try_get(4)?,
        redirect_uri: row.try_get(5)?,
        created_at: row.try_get(6)?,
        expires_at: row.try_get(7)?,
    })
}

fn user_from_row(row: &Row) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        email: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        role: row.try_get(4)?,
    })
}

impl super::Postgres {
    async fn find_device_by(
        &self,
        column: &str,
        hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM device_authorizations WHERE {column} = $1");
        let statement = client.prepare_cached(&sql).await?;
        client
            .query_opt(&statement, &[&hash])
            .await?
            .as_ref()
            .map(device_from_row)
            .transpose()
    }
}

/// A user and whether it is enabled, by id.
async fn known_user(tx: &Transaction<'_>, id: i64) -> Result<Option<KnownUser>, StoreError> {
    tx.query_opt(
        "SELECT id, name, email, password_hash, role, disabled_at FROM users WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|row| {
        Ok(KnownUser {
            user: user_from_row(&row)?,
            enabled: row.try_get::<_, Option<i64>>(5)?.is_none(),
        })
    })
    .transpose()
}

/// What decides how `identity` signs in (see [`crate::store::logins::IdentityFacts`]).
async fn facts(
    tx: &Transaction<'_>,
    identity: &IdentitySignIn,
) -> Result<IdentityFacts, StoreError> {
    let linked_id: Option<i64> = tx
        .query_opt(
            "SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2",
            &[&identity.provider, &identity.subject],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let linked = match linked_id {
        Some(id) => known_user(tx, id).await?,
        None => None,
    };
    let mut same_email = Vec::new();
    if let (None, Some(email)) = (&linked, &identity.email) {
        // SQLite compares with NOCASE; lower() folds at least as much.
        let rows = tx
            .query(
                "SELECT id, name, email, password_hash, role, disabled_at FROM users
                 WHERE lower(email) = lower($1) ORDER BY id",
                &[email],
            )
            .await?;
        for row in rows {
            same_email.push(KnownUser {
                user: user_from_row(&row)?,
                enabled: row.try_get::<_, Option<i64>>(5)?.is_none(),
            });
        }
    }
    Ok(IdentityFacts { linked, same_email })
}

/// Creates a user without a local password under the first free name of `new`.
async fn create_user(
    tx: &Transaction<'_>,
    new: NewAccount,
    now: i64,
) -> Result<Option<UserRow>, StoreError> {
    let statement = tx
        .prepare(
            "INSERT INTO users (name, email, password_hash, role, created_at)
             VALUES ($1, $2, NULL, $3, $4)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .await?;
    for name in new.names {
        if let Some(row) = tx
            .query_opt(&statement, &[&name, &new.email, &new.role, &now])
            .await?
        {
            return Ok(Some(UserRow {
                id: row.try_get(0)?,
                name,
                email: new.email,
                password_hash: None,
                role: new.role,
            }));
        }
    }
    Ok(None)
}

#[async_trait::async_trait]
impl crate::store::LoginStore for super::Postgres {
    async fn insert_device_authorization(&self, new: NewDevice) -> Result<(), StoreError> {
        let row = &new.row;
        let client = self.pool().get().await?;
        client
            .execute(
                "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client,
                     requested_role, scopes, ip, created_at, expires_at, interval_secs)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &new.device_code_hash,
                    &new.user_code_hash,
                    &row.client,
                    &row.requested_role,
                    &serde_json::to_string(&row.scopes)?,
                    &row.ip,
                    &row.created_at,
                    &row.expires_at,
                    &row.interval_secs,
                ],
            )
            .await?;
        Ok(())
    }

    async fn find_device_by_device_code(
        &self,
        device_code_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        self.find_device_by("device_code_hash", device_code_hash)
            .await
    }

    async fn find_device_by_user_code(
        &self,
        user_code_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        self.find_device_by("user_code_hash", user_code_hash).await
    }

    async fn record_device_poll(
        &self,
        id: i64,
        now: i64,
        interval_secs: i64,
    ) -> Result<(), StoreError> {
        let client = self.pool().get().await?;
        client
            .execute(
                "UPDATE device_authorizations SET last_polled_at = $2, interval_secs = $3
                 WHERE id = $1",
                &[&id, &now, &interval_secs],
            )
            .await?;
        Ok(())
    }

    async fn decide_device_authorization(
        &self,
        user_code_hash: &str,
        approve: bool,
        user_id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let status = if approve { "approved" } else { "denied" };
        let client = self.pool().get().await?;
        let changed = client
            .execute(
                "UPDATE device_authorizations SET status = $2, user_id = $3
                 WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $4",
                &[&user_code_hash, &status, &user_id, &now],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn consume_device_authorization(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        let client = self.pool().get().await?;
        client
            .query_opt(
                "WITH consumed AS (
                     UPDATE device_authorizations SET status = 'consumed'
                     WHERE id = $1 AND status = 'approved' RETURNING user_id
                 )
                 SELECT users.id, users.name, users.email, users.password_hash, users.role
                 FROM consumed JOIN users ON users.id = consumed.user_id",
                &[&id],
            )
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn delete_expired_device_authorizations(&self, before: i64) -> Result<usize, StoreError> {
        let client = self.pool().get().await?;
        let deleted = client
            .execute(
                "DELETE FROM device_authorizations WHERE expires_at < $1",
                &[&before],
            )
            .await?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn insert_oauth_state(&self, row: StateRow, now: i64) -> Result<(), StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM oauth_states WHERE expires_at < $1", &[&now])
            .await?;
        tx.execute(
            "INSERT INTO oauth_states (state_hash, provider, pkce_verifier, nonce, return_code,
                 redirect_uri, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &row.state_hash,
                &row.provider,
                &row.pkce_verifier,
                &row.nonce,
                &row.return_code,
                &row.redirect_uri,
                &row.created_at,
                &row.expires_at,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<StateRow>, StoreError> {
        let client = self.pool().get().await?;
        client
            .query_opt(
                &format!(
                    "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING {STATE_COLUMNS}"
                ),
                &[&state_hash],
            )
            .await?
            .as_ref()
            .map(state_from_row)
            .transpose()
    }

    async fn sign_in_identity(
        &self,
        identity: IdentitySignIn,
        decide: DecideLink,
        event: LinkEvent,
    ) -> Result<SignInOutcome, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // One sign-in of an identity at a time, and one creation per e-mail at a time: the second
        // of two first sign-ins finds the identity linked (or the user created) by the first.
        // Always identity before e-mail, so two sign-ins never wait on each other in a cycle.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('identity:' || $1::text || ':' || $2::text, 0))",
            &[&identity.provider, &identity.subject],
        )
        .await?;
        if let Some(email) = &identity.email {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('identity-email:' || lower($1::text), 0))",
                &[email],
            )
            .await?;
        }
        let now = clock::now_ms();
        let (user, newly_linked) = match decide(&facts(&tx, &identity).await?) {
            LinkDecision::Refuse(refusal) => return Ok(SignInOutcome::Refused(refusal)),
            LinkDecision::SignIn(user) => (user, false),
            LinkDecision::Link(user) => (user, true),
            LinkDecision::Create(new) => {
                let Some(user) = create_user(&tx, new, now).await? else {
                    return Ok(SignInOutcome::NoFreeName);
                };
                events::record(&tx, &event(&user, LinkStep::Created)).await?;
                (user, true)
            }
        };
        if newly_linked {
            events::record(&tx, &event(&user, LinkStep::Linked)).await?;
        }
        let email = identity.email.as_deref().unwrap_or("");
        tx.execute(
            "INSERT INTO user_identities (provider, subject, user_id, email, created_at,
                 last_login_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (provider, subject) DO UPDATE SET email = excluded.email,
                 last_login_at = excluded.last_login_at",
            &[
                &identity.provider,
                &identity.subject,
                &user.id,
                &email,
                &now,
            ],
        )
        .await?;
        events::record(&tx, &event(&user, LinkStep::SignedIn)).await?;
        tx.commit().await?;
        Ok(SignInOutcome::SignedIn(user))
    }
}
