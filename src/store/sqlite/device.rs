//! Queries on `device_authorizations`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::StoreError;

/// A stored device authorization.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    /// Database id.
    pub id: i64,
    /// Who is asking (`npm`, `packr login`, a client id).
    pub client: String,
    /// The role the client asked for, if any.
    pub requested_role: Option<String>,
    /// Scope restriction asked for.
    pub scopes: Vec<String>,
    /// The requesting client's IP.
    pub ip: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry time (ms).
    pub expires_at: i64,
    /// Minimum seconds between polls.
    pub interval_secs: i64,
    /// Last poll (ms).
    pub last_polled_at: Option<i64>,
    /// `pending`, `approved`, `denied` or `consumed`.
    pub status: String,
    /// The approving (or denying) user.
    pub user_id: Option<i64>,
}

/// A device authorization to store.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Keyed hash of the device code.
    pub device_code_hash: String,
    /// Keyed hash of the normalised user code.
    pub user_code_hash: String,
    /// The row's other fields (`id` and `status` are ignored).
    pub row: DeviceRow,
}

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

/// Approves or denies a pending, unexpired authorization; answers whether it was pending.
pub fn decide(
    conn: &Connection,
    id: i64,
    approve: bool,
    user_id: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let status = if approve { "approved" } else { "denied" };
    let changed = conn.execute(
        "UPDATE device_authorizations SET status = ?2, user_id = ?3
         WHERE id = ?1 AND status = 'pending' AND expires_at > ?4",
        params![id, status, user_id, now],
    )?;
    Ok(changed > 0)
}

/// Marks an approved authorization as used; answers whether this call consumed it.
pub fn consume(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE device_authorizations SET status = 'consumed' WHERE id = ?1 AND status = 'approved'",
        [id],
    )?;
    Ok(changed > 0)
}

/// Deletes authorizations that expired before `before` (ms); returns how many.
pub fn delete_expired(conn: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM device_authorizations WHERE expires_at < ?1",
        [before],
    )?)
}

#[async_trait::async_trait]
impl crate::store::LoginStore for super::Sqlite {}
