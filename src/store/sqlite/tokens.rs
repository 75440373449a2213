//! Queries on `tokens`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users::{Standing, UserRow};
use crate::store::StoreError;
use crate::store::tokens::{FoundToken, TokenAudit, TokenUses};
pub use crate::store::tokens::{TokenFilter, TokenRow};

const COLUMNS: &str = "t.id, t.user_id, t.token_hash, t.role, t.scopes, t.name, t.created_at, \
                       t.expires_at, t.revoked_at, t.cidr, t.display, t.last_used_at, t.use_count, \
                       t.issued_by";

/// The token columns of [`COLUMNS`], with its two JSON columns still as text.
fn from_row(row: &Row<'_>) -> rusqlite::Result<(TokenRow, String, String)> {
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
            cidr: Vec::new(),
            display: row.get(10)?,
            last_used_at: row.get(11)?,
            use_count: row.get(12)?,
            issued_by: row.get(13)?,
        },
        row.get(4)?,
        row.get(9)?,
    ))
}

/// Parses the JSON columns left as text by [`from_row`].
fn finish((mut token, scopes, cidr): (TokenRow, String, String)) -> Result<TokenRow, StoreError> {
    token.scopes = serde_json::from_str(&scopes)?;
    token.cidr = serde_json::from_str(&cidr)?;
    Ok(token)
}

/// Stores a newly issued token.
pub fn insert(conn: &Connection, token: &TokenRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO tokens (id, user_id, token_hash, role, scopes, name, created_at, expires_at,
                             cidr, display, issued_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            token.id,
            token.user_id,
            token.token_hash,
            token.role,
            serde_json::to_string(&token.scopes)?,
            token.name,
            token.created_at,
            token.expires_at,
            serde_json::to_string(&token.cidr)?,
            token.display,
            token.issued_by,
        ],
    )?;
    Ok(())
}

/// Looks a token and its owner up by token id.
pub fn find_with_user(
    conn: &Connection,
    id: &str,
) -> Result<Option<(TokenRow, UserRow)>, StoreError> {
    Ok(find_for_auth(conn, id)?.map(|found| (found.token, found.user)))
}

/// Looks a token up by id with its owner and the owner's standing, in one query: the check of a
/// token its memory cannot answer.
pub fn find_for_auth(conn: &Connection, id: &str) -> Result<Option<FoundToken>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, u.id, u.name, u.email, u.password_hash, u.role, u.disabled_at,
                u.session_generation
         FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let found = stmt
        .query_row([id], |row| {
            Ok((
                from_row(row)?,
                UserRow {
                    id: row.get(14)?,
                    name: row.get(15)?,
                    email: row.get(16)?,
                    password_hash: row.get(17)?,
                    role: row.get(18)?,
                },
                Standing {
                    disabled_at: row.get(19)?,
                    session_generation: row.get(20)?,
                },
            ))
        })
        .optional()?;
    found
        .map(|(token, user, standing)| {
            Ok(FoundToken {
                token: finish(token)?,
                user,
                standing,
            })
        })
        .transpose()
}

/// Looks a token up by the hash of the whole token.
pub fn find_by_hash(conn: &Connection, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tokens t WHERE t.token_hash = ?1");
    conn.query_row(&sql, [token_hash], from_row)
        .optional()?
        .map(finish)
        .transpose()
}

/// The ids of the tokens whose id starts with `prefix`, of one owner or of everyone, each with
/// whether it is still unrevoked.
pub fn ids_with_prefix(
    conn: &Connection,
    user_id: Option<i64>,
    prefix: &str,
) -> Result<Vec<(String, bool)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, revoked_at IS NULL FROM tokens
         WHERE substr(id, 1, length(?1)) = ?1 AND (?2 IS NULL OR user_id = ?2)
         ORDER BY id LIMIT 20",
    )?;
    let ids = stmt
        .query_map(params![prefix, user_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<Vec<(String, bool)>, _>>()?;
    Ok(ids)
}

/// Tokens matching `filter` with their owners' names, newest first, and the number of matches.
pub fn list(
    conn: &Connection,
    filter: &TokenFilter,
) -> Result<(Vec<(TokenRow, String)>, i64), StoreError> {
    let condition = "(?1 IS NULL OR t.user_id = ?1)
         AND (?2 IS NULL OR (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)))";
    let args = params![filter.user_id, filter.live_at];
    let total = conn.query_row(
        &format!("SELECT COUNT(*) FROM tokens t WHERE {condition}"),
        args,
        |row| row.get(0),
    )?;
    let sql = format!(
        "SELECT {COLUMNS}, u.name FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE {condition} ORDER BY t.created_at DESC, t.id LIMIT {} OFFSET {}",
        filter.limit, filter.offset
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(args, |row| Ok((from_row(row)?, row.get::<_, String>(14)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let rows = rows
        .into_iter()
        .map(|(token, user)| Ok((finish(token)?, user)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((rows, total))
}

/// Revokes the live token with this hash; returns it and its owner when one was revoked.
pub fn revoke_by_hash(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> Result<Option<(TokenRow, UserRow)>, StoreError> {
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
    find_with_user(conn, &id)
}

/// Revokes the live token with this id; returns it and its owner when one was revoked.
pub fn revoke_by_id(
    conn: &Connection,
    id: &str,
    now: i64,
) -> Result<Option<(TokenRow, UserRow)>, StoreError> {
    let changed = conn.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    find_with_user(conn, id)
}

/// Adds `count` uses, the latest at `last_used_at` (ms), to a token's usage data.
pub fn add_uses(
    conn: &Connection,
    id: &str,
    count: i64,
    last_used_at: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE tokens SET use_count = use_count + ?2,
                           last_used_at = MAX(COALESCE(last_used_at, 0), ?3)
         WHERE id = ?1",
        params![id, count, last_used_at],
    )?;
    Ok(())
}

impl super::Sqlite {
    /// Revokes the token `revoke` finds and records its event, in one transaction.
    async fn revoke_audited(
        &self,
        audit: TokenAudit,
        revoke: impl FnOnce(&Connection) -> Result<Option<(TokenRow, UserRow)>, StoreError>
        + Send
        + 'static,
    ) -> Result<Option<TokenRow>, StoreError> {
        self.write(move |tx| {
            let Some((token, owner)) = revoke(tx)? else {
                return Ok(None);
            };
            super::events::record(tx, &audit(&token, &owner))?;
            Ok(Some(token))
        })
        .await
    }
}

#[async_trait::async_trait]
impl crate::store::TokenStore for super::Sqlite {
    async fn insert_token(
        &self,
        token: TokenRow,
        events: Vec<crate::audit::AuditEvent>,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            insert(tx, &token)?;
            super::events::record_all(tx, &events)
        })
        .await
    }

    async fn find_token(&self, id: &str) -> Result<Option<FoundToken>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| find_for_auth(conn, &id)).await
    }

    async fn find_token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let hash = token_hash.to_owned();
        self.read(move |conn| find_by_hash(conn, &hash)).await
    }

    async fn token_ids_with_prefix(
        &self,
        owner: Option<i64>,
        prefix: &str,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |conn| ids_with_prefix(conn, owner, &prefix))
            .await
    }

    async fn list_tokens(
        &self,
        filter: TokenFilter,
    ) -> Result<(Vec<(TokenRow, String)>, i64), StoreError> {
        self.read(move |conn| list(conn, &filter)).await
    }

    async fn revoke_token_by_hash(
        &self,
        token_hash: &str,
        now: i64,
        audit: TokenAudit,
    ) -> Result<Option<TokenRow>, StoreError> {
        let hash = token_hash.to_owned();
        self.revoke_audited(audit, move |tx| revoke_by_hash(tx, &hash, now))
            .await
    }

    async fn revoke_token_by_id(
        &self,
        id: &str,
        now: i64,
        audit: TokenAudit,
    ) -> Result<Option<TokenRow>, StoreError> {
        let id = id.to_owned();
        self.revoke_audited(audit, move |tx| revoke_by_id(tx, &id, now))
            .await
    }

    async fn add_token_uses(&self, uses: Vec<TokenUses>) -> Result<(), StoreError> {
        self.write(move |tx| {
            for one in &uses {
                add_uses(tx, &one.token_id, one.count, one.last_at)?;
            }
            Ok(())
        })
        .await
    }
}
