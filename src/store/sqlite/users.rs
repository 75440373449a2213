//! Queries on `users`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::StoreError;

/// A stored account.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// E-mail shown as maintainer contact.
    pub email: String,
    /// Argon2 PHC string; `None` for accounts without a local password.
    pub password_hash: Option<String>,
    /// `admin`, `maintainer` or `reader`.
    pub role: String,
}

const COLUMNS: &str = "id, name, email, password_hash, role";

fn from_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        role: row.get(4)?,
    })
}

/// Looks a user up by login name.
pub fn find_by_name(conn: &Connection, name: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE name = ?1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

/// The name of the account whose name differs from `name` only in case, if there is one. Names
/// are ASCII, so SQLite's `NOCASE` is the whole comparison.
pub fn case_variant(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT name FROM users WHERE name = ?1 COLLATE NOCASE AND name <> ?1 LIMIT 1",
            [name],
            |row| row.get(0),
        )
        .optional()?)
}

/// Looks a user up by id.
pub fn find_by_id(conn: &Connection, id: i64) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// Looks users up by login names, keeping the order given; unknown names are skipped.
pub fn find_many(conn: &Connection, names: &[String]) -> Result<Vec<UserRow>, StoreError> {
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        if let Some(user) = find_by_name(conn, name)? {
            found.push(user);
        }
    }
    Ok(found)
}

/// Creates a user, or updates e-mail, password and role when the name exists; returns its id.
pub fn upsert(
    conn: &Connection,
    name: &str,
    email: &str,
    password_hash: &str,
    role: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let id = conn.query_row(
        "INSERT INTO users (name, email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(name) DO UPDATE SET email = excluded.email,
             password_hash = excluded.password_hash, role = excluded.role
         RETURNING id",
        params![name, email, password_hash, role, now],
        |row| row.get(0),
    )?;
    Ok(id)
}

/// Creates a user; `None` when the name is taken (exactly or, with the index of migration 6,
/// in another case).
pub fn insert(
    conn: &Connection,
    name: &str,
    email: &str,
    password_hash: &str,
    role: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let id = conn
        .query_row(
            "INSERT INTO users (name, email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING RETURNING id",
            params![name, email, password_hash, role, now],
            |row| row.get(0),
        )
        .optional()?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        super::super::migrate::run(&conn, 0).unwrap();
        conn
    }

    #[test]
    fn a_name_that_differs_only_in_case_is_taken() {
        let conn = db();
        insert(&conn, "alice", "", "h", "maintainer", 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            case_variant(&conn, "ALICE").unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(case_variant(&conn, "alice").unwrap(), None);
        assert_eq!(case_variant(&conn, "bob").unwrap(), None);
        assert_eq!(
            insert(&conn, "Alice", "", "h", "maintainer", 0).unwrap(),
            None
        );
        // OAuth auto-create moves on to its next candidate name instead.
        let oauth =
            super::super::oauth::insert_user_without_password(&conn, "Alice", "", "reader", 0);
        assert!(oauth.unwrap().is_none());
    }
}
