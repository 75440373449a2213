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

/// Version 6: tombstones of fully unpublished names and an index on `versions.blob_key`. The same
/// statements as in `schema.sql`, so the step holds however that file is applied.
const RETIRED_NAMES_V6: &str = "
    CREATE TABLE IF NOT EXISTS retired_packages (
        name       TEXT PRIMARY KEY,
        retired_at INTEGER NOT NULL,
        last_rev   INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS retired_package_maintainers (
        package TEXT NOT NULL REFERENCES retired_packages(name) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        PRIMARY KEY (package, user_id)
    );
    CREATE INDEX IF NOT EXISTS versions_blob_key ON versions(blob_key);
";

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
        conn.execute_batch(RETIRED_NAMES_V6)?;
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
    fn a_version_5_database_gains_retired_names_and_the_blob_key_index() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             CREATE TABLE versions (package TEXT NOT NULL, version TEXT NOT NULL,
                 blob_key TEXT NOT NULL, PRIMARY KEY (package, version));
             PRAGMA user_version = 5;",
        )
        .unwrap();
        let before = user_version(&conn).unwrap();
        run(&conn, before).unwrap();
        run(&conn, before).unwrap();
        assert!(columns(&conn, "retired_packages").contains("retired_at"));
        assert!(columns(&conn, "retired_package_maintainers").contains("user_id"));
        let index: String = conn
            .query_row(
                "SELECT name FROM pragma_index_list('versions') WHERE name = 'versions_blob_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, "versions_blob_key");
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
