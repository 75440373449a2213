//! Queries on `device_authorizations`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::oauth;
use crate::store::StoreError;
use crate::store::accounts::UserRow;
use crate::store::logins::{DecideLink, IdentitySignIn, LinkEvent, SignInOutcome, StateRow};

pub use crate::store::logins::{DeviceRow, NewDevice};

const COLUMNS: &str = "id, client, requested_role, scopes, ip, created_at, expires_at, interval_secs, last_polled_at, status, user_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(DeviceRow, String)> {
    Ok((
        DeviceRow {
            id: row.get(0)?,
            client: row.get(1)?,
            requested_role: row.get(2)?,
            scopes: Vec::new(),
            ip: row.get(4)?,
            created_at: row.get(5)?,
            expires_at: row.get(6)?,
            interval_secs: row.get(7)?,
            last_polled_at: row.get(8)?,
            status: row.get(9)?,
            user_id: row.get(10)?,
        },
        row.get(3)?,
    ))
}

fn find_by(conn: &Connection, column: &str, hash: &str) -> Result<Option<DeviceRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM device_authorizations WHERE {column} = ?1");
    let found = conn.query_row(&sql, [hash], from_row).optional()?;
    found
        .map(|(mut row, scopes)| {
            row.scopes = serde_json::from_str(&scopes)?;
            Ok(row)
        })
        .transpose()
}

/// Stores a new authorization.
pub fn insert(conn: &Connection, new: &NewDevice) -> Result<(), StoreError> {
    let row = &new.row;
    conn.execute(
        "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client, requested_role,
             scopes, ip, created_at, expires_at, interval_secs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            new.device_code_hash,
            new.user_code_hash,
            row.client,
            row.requested_role,
            serde_json::to_string(&row.scopes)?,
            row.ip,
            row.created_at,
            row.expires_at,
            row.interval_secs,
        ],
    )?;
    Ok(())
}

/// Looks an authorization up by its device code hash.
pub fn find_by_device_code(conn: &Connection, hash: &str) -> Result<Option<DeviceRow>, StoreError> {
    find_by(conn, "device_code_hash", hash)
}

/// Looks an authorization up by its user code hash.
pub fn find_by_user_code(conn: &Connection, hash: &str) -> Result<Option<DeviceRow>, StoreError> {
    find_by(conn, "user_code_hash", hash)
}

/// Records a poll, and a new interval (after `slow_down`).
pub fn record_poll(
    conn: &Connection,
    id: i64,
    now: i64,
    interval_secs: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE device_authorizations SET last_polled_at = ?2, interval_secs = ?3 WHERE id = ?1",
        params![id, now, interval_secs],
    )?;
    Ok(())
}

/// Approves or denies the pending, unexpired authorization behind a user code hash; answers
/// whether it was pending.
pub fn decide(
    conn: &Connection,
    user_code_hash: &str,
    approve: bool,
    user_id: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let status = if approve { "approved" } else { "denied" };
    let changed = conn.execute(
        "UPDATE device_authorizations SET status = ?2, user_id = ?3
         WHERE user_code_hash = ?1 AND status = 'pending' AND expires_at > ?4",
        params![user_code_hash, status, user_id, now],
    )?;
    Ok(changed > 0)
}

/// Marks an approved authorization as used; returns its approver's id when this call consumed it.
pub fn consume(conn: &Connection, id: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "UPDATE device_authorizations SET status = 'consumed'
             WHERE id = ?1 AND status = 'approved' RETURNING user_id",
            [id],
            |row| row.get(0),
        )
        .optional()?
        .flatten())
}

/// Deletes authorizations that expired before `before` (ms); returns how many.
pub fn delete_expired(conn: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM device_authorizations WHERE expires_at < ?1",
        [before],
    )?)
}

#[async_trait::async_trait]
impl crate::store::LoginStore for super::Sqlite {
    async fn insert_device_authorization(&self, new: NewDevice) -> Result<(), StoreError> {
        self.write(move |tx| insert(tx, &new)).await
    }

    async fn find_device_by_device_code(
        &self,
        device_code_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        let hash = device_code_hash.to_owned();
        self.read(move |conn| find_by_device_code(conn, &hash))
            .await
    }

    async fn find_device_by_user_code(
        &self,
        user_code_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        let hash = user_code_hash.to_owned();
        self.read(move |conn| find_by_user_code(conn, &hash)).await
    }

    async fn record_device_poll(
        &self,
        id: i64,
        now: i64,
        interval_secs: i64,
    ) -> Result<(), StoreError> {
        self.write(move |tx| record_poll(tx, id, now, interval_secs))
            .await
    }

    async fn decide_device_authorization(
        &self,
        user_code_hash: &str,
        approve: bool,
        user_id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let hash = user_code_hash.to_owned();
        self.write(move |tx| decide(tx, &hash, approve, user_id, now))
            .await
    }

    async fn consume_device_authorization(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        self.write(move |tx| match consume(tx, id)? {
            Some(user_id) => Ok(super::oauth::known_user(tx, user_id)?.map(|known| known.user)),
            None => Ok(None),
        })
        .await
    }

    async fn delete_expired_device_authorizations(&self, before: i64) -> Result<usize, StoreError> {
        self.write(move |tx| delete_expired(tx, before)).await
    }

    async fn insert_oauth_state(&self, row: StateRow, now: i64) -> Result<(), StoreError> {
        self.write(move |tx| oauth::insert_state(tx, &row, now))
            .await
    }

    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<StateRow>, StoreError> {
        let hash = state_hash.to_owned();
        self.write(move |tx| oauth::take_state(tx, &hash)).await
    }

    async fn sign_in_identity(
        &self,
        identity: IdentitySignIn,
        decide: DecideLink,
        event: LinkEvent,
    ) -> Result<SignInOutcome, StoreError> {
        self.write(move |tx| oauth::sign_in(tx, &identity, decide, &event))
            .await
    }
}
