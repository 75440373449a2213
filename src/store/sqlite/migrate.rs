//! Schema changes that `schema.sql` cannot make on an existing database (`CREATE TABLE IF NOT
//! EXISTS` leaves an old table as it is), keyed on the `PRAGMA user_version` the database had
//! before `schema.sql` ran. Every step is idempotent: it checks before it alters.

use std::collections::HashSet;

use rusqlite::Connection;

/// Columns added to `tokens` in version 5: the CIDR allow-list, the display piece and usage data.
const TOKEN_COLUMNS_V5: &[(&str, &str)] = &[
    ("cidr", "TEXT NOT NULL DEFAULT '[]'"),
    ("display", "TEXT NOT NULL DEFAULT ''"),
    ("last_used_at", "INTEGER"),
    ("use_count", "INTEGER NOT NULL DEFAULT 0"),
];

/// Columns added to `users` in version 6: what ends every credential of an account at once.
const USER_COLUMNS_V6: &[(&str, &str)] = &[
    ("disabled_at", "INTEGER"),
    ("session_generation", "INTEGER NOT NULL DEFAULT 0"),
];

/// The database's `PRAGMA user_version` (0 for a new file).
pub fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings a database that was at `version` before `schema.sql` was applied up to date.
pub fn run(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    if version < 5 {
        add_missing_columns(conn, "tokens", TOKEN_COLUMNS_V5)?;
    }
    if version < 6 {
        add_missing_columns(conn, "users", USER_COLUMNS_V6)?;
    }
    Ok(())
}

fn add_missing_columns(
    conn: &Connection,
    table: &str,
    columns: &[(&str, &str)],
) -> rusqlite::Result<()> {
    let existing = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table], |row| row.get::<_, String>(0))?
        .collect::<Result<HashSet<_>, _>>()?;
    for (name, declaration) in columns {
        if !existing.contains(*name) {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {name} {declaration}"
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> HashSet<String> {
        conn.prepare("SELECT name FROM pragma_table_info(?1)")
            .unwrap()
            .query_map([table], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_version_2_tokens_table_gains_the_new_columns_and_keeps_its_rows() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                 email TEXT NOT NULL DEFAULT '', password_hash TEXT, role TEXT NOT NULL,
                 created_at INTEGER NOT NULL);
             CREATE TABLE tokens (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL,
                 token_hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
                 scopes TEXT NOT NULL DEFAULT '[]', name TEXT, created_at INTEGER NOT NULL,
                 expires_at INTEGER, revoked_at INTEGER);
             INSERT INTO users VALUES (1, 'alice', '', NULL, 'admin', 0);
             INSERT INTO tokens (id, user_id, token_hash, role, created_at)
                 VALUES ('t1', 1, 'h1', 'admin', 0);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        let before = user_version(&conn).unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        run(&conn, before).unwrap();
        run(&conn, before).unwrap();
        let found = columns(&conn, "tokens");
        for (name, _) in TOKEN_COLUMNS_V5 {
            assert!(found.contains(*name), "tokens lacks {name}: {found:?}");
        }
        let found = columns(&conn, "users");
        for (name, _) in USER_COLUMNS_V6 {
            assert!(found.contains(*name), "users lacks {name}: {found:?}");
        }
        let (cidr, uses): (String, i64) = conn
            .query_row(
                "SELECT cidr, use_count FROM tokens WHERE id = 't1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((cidr.as_str(), uses), ("[]", 0));
    }

    #[test]
    fn a_new_database_needs_no_alteration() {
        let conn = Connection::open_in_memory().unwrap();
        let before = user_version(&conn).unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        run(&conn, before).unwrap();
        assert!(user_version(&conn).unwrap() >= 5);
        assert!(columns(&conn, "tokens").contains("use_count"));
    }
}
