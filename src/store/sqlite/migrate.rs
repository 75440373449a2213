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

/// The index of version 6 that keeps user names unique regardless of case (`Alice` and `alice`
/// would otherwise be two accounts a reader cannot tell apart).
const USER_NAME_INDEX: &str = "users_name_nocase";

/// The database's `PRAGMA user_version` (0 for a new file).
pub fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings a database that was at `version` before `schema.sql` was applied up to date.
pub fn run(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    if version < 5 {
        add_missing_columns(conn, "tokens", TOKEN_COLUMNS_V5)?;
    }
    // Version 6, keyed on the index itself rather than the version: a start refused for names
    // that differ only in case must be refused again until they are fixed.
    if !has_index(conn, USER_NAME_INDEX)? {
        index_user_names_regardless_of_case(conn)?;
    }
    Ok(())
}

fn has_index(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [name],
        |row| row.get::<_, i64>(0),
    )
    .map(|count| count > 0)
}

/// Creates the case-insensitive unique index on user names. A database whose names already
/// differ only in case cannot get it: Packr refuses to start and names them, since merging two
/// people's accounts, or renaming one behind their back, is for an operator to decide.
fn index_user_names_regardless_of_case(conn: &Connection) -> rusqlite::Result<()> {
    let clashes = conn
        .prepare(
            "SELECT group_concat(name, ', ') FROM users
             GROUP BY name COLLATE NOCASE HAVING count(*) > 1 ORDER BY 1",
        )?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if !clashes.is_empty() {
        let message = format!(
            "user names must be unique regardless of case, but these accounts differ only in case: {}. \
             Rename or delete all but one of each group in packr.db (for example \
             `sqlite3 packr.db \"UPDATE users SET name = 'alice-2' WHERE name = 'Alice'\"`), \
             then start Packr again",
            clashes.join("; ")
        );
        let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE);
        return Err(rusqlite::Error::SqliteFailure(code, Some(message)));
    }
    conn.execute_batch(&format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {USER_NAME_INDEX} ON users (name COLLATE NOCASE)"
    ))
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
        let (cidr, uses): (String, i64) = conn
            .query_row(
                "SELECT cidr, use_count FROM tokens WHERE id = 't1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((cidr.as_str(), uses), ("[]", 0));
    }

    fn old_users_table(conn: &Connection, names: &[&str]) {
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                 email TEXT NOT NULL DEFAULT '', password_hash TEXT, role TEXT NOT NULL,
                 created_at INTEGER NOT NULL);
             PRAGMA user_version = 5;",
        )
        .unwrap();
        for name in names {
            conn.execute(
                "INSERT INTO users (name, role, created_at) VALUES (?1, 'reader', 0)",
                [name],
            )
            .unwrap();
        }
    }

    #[test]
    fn user_names_become_unique_regardless_of_case() {
        let conn = Connection::open_in_memory().unwrap();
        old_users_table(&conn, &["alice", "bob"]);
        conn.execute_batch(super::super::SCHEMA).unwrap();
        run(&conn, 5).unwrap();
        let insert = conn.execute(
            "INSERT INTO users (name, role, created_at) VALUES ('Alice', 'reader', 0)",
            [],
        );
        assert!(insert.is_err(), "Alice was accepted next to alice");
    }

    #[test]
    fn names_that_differ_only_in_case_stop_the_migration_and_are_named() {
        let conn = Connection::open_in_memory().unwrap();
        old_users_table(&conn, &["alice", "Alice", "bob", "BOB", "carol"]);
        conn.execute_batch(super::super::SCHEMA).unwrap();
        for _ in 0..2 {
            let message = run(&conn, 5).unwrap_err().to_string();
            assert!(
                message.contains("Alice, alice") || message.contains("alice, Alice"),
                "{message}"
            );
            assert!(
                message.contains("BOB") && !message.contains("carol"),
                "{message}"
            );
        }
        assert!(!has_index(&conn, USER_NAME_INDEX).unwrap());
    }

    #[test]
    fn a_new_database_needs_no_alteration() {
        let conn = Connection::open_in_memory().unwrap();
        let before = user_version(&conn).unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        run(&conn, before).unwrap();
        assert!(user_version(&conn).unwrap() >= 6);
        assert!(columns(&conn, "tokens").contains("use_count"));
        assert!(has_index(&conn, USER_NAME_INDEX).unwrap());
    }
}
