//! Queries on `tokens`.

use rusqlite::{Connection, OptionalExtension, params};

use super::users::UserRow;
use crate::store::StoreError;

/// A stored token (never the token itself: only its hash).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// The JWT's `jti`.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Hex SHA-256 of the whole token.
    pub token_hash: String,
    /// Preset role name.
    pub role: String,
    /// Scope restriction (`@acme`), empty for all scopes.
    pub scopes: Vec<String>,
    /// Label given at creation.
    pub name: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry time (ms).
    pub expires_at: Option<i64>,
    /// Revocation time (ms).
    pub revoked_at: Option<i64>,
}

/// Stores a newly issued token.
pub fn insert(conn: &Connection, token: &TokenRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO tokens (id, user_id, token_hash, role, scopes, name, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            token.id,
            token.user_id,
            token.token_hash,
            token.role,
            serde_json::to_string(&token.scopes)?,
            token.name,
            token.created_at,
            token.expires_at,
        ],
    )?;
    Ok(())
}

/// Looks a token and its owner up by token id.
pub fn find_with_user(
    conn: &Connection,
    id: &str,
) -> Result<Option<(TokenRow, UserRow)>, StoreError> {
    let found = conn
        .query_row(
            "SELECT t.id, t.user_id, t.token_hash, t.role, t.scopes, t.name, t.created_at,
                    t.expires_at, t.revoked_at, u.id, u.name, u.email, u.password_hash, u.role
             FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
            [id],
            |row| {
                let scopes: String = row.get(4)?;
                Ok((
                    TokenRow {
                        id: row.get(0)?,
                        user_id: row.get(1)?,
                        token_hash: row.get(2)?,
                        role: row.get(3)?,
                        scopes: Vec::new(),
                        name: row.get(5)?,
                        created_at: row.get(6)?,
                        expires_at: row.get(7)?,
                        revoked_at: row.get(8)?,
                    },
                    scopes,
                    UserRow {
                        id: row.get(9)?,
                        name: row.get(10)?,
                        email: row.get(11)?,
                        password_hash: row.get(12)?,
                        role: row.get(13)?,
                    },
                ))
            },
        )
        .optional()?;
    found
        .map(|(mut token, scopes, user)| {
            token.scopes = serde_json::from_str(&scopes)?;
            Ok((token, user))
        })
        .transpose()
}

/// Revokes the live token with this hash; returns its id and owner when one was revoked.
pub fn revoke_by_hash(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> Result<Option<(String, UserRow)>, StoreError> {
    let revoked: Option<(String, i64)> = conn
        .query_row(
            "UPDATE tokens SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL
             RETURNING id, user_id",
            params![token_hash, now],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((id, _user_id)) = revoked else {
        return Ok(None);
    };
    Ok(find_with_user(conn, &id)?.map(|(token, user)| (token.id, user)))
}
