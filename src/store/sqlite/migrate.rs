//! Schema versions. `schema.sql` holds the whole current schema, every statement idempotent, and
//! no version stamp. [`STEPS`] holds the changes it cannot make to an existing database
//! (`CREATE TABLE IF NOT EXISTS` leaves an old table as it is), each with the `PRAGMA
//! user_version` it brings the database to.
//!
//! A new database gets the schema and the latest stamp in one transaction. An existing one gets
//! `schema.sql` (new tables and indexes), then each pending step together with its stamp in one
//! transaction: a step that fails or is interrupted leaves the version where it was, and runs
//! again on the next start.
//!
//! To add a change: write `fn vN(tx)` below (idempotent: check before you alter) and append
//! `(N, vN)` to [`STEPS`]; `N` is one more than the last entry.

use std::collections::HashSet;

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// One schema change and the version it brings the database to.
type Step = (i64, fn(&Transaction<'_>) -> rusqlite::Result<()>);

/// Every schema change, in version order.
const STEPS: &[Step] = &[
    (5, v5),
    (6, v6),
    (7, v7),
    (8, v8),
    (9, v9),
    (10, v10),
    (11, v11),
];

/// Columns added to `tokens` in version 5: the CIDR allow-list, the display piece and usage data.
const TOKEN_COLUMNS_V5: &[(&str, &str)] = &[
    ("cidr", "TEXT NOT NULL DEFAULT '[]'"),
    ("display", "TEXT NOT NULL DEFAULT ''"),
    ("last_used_at", "INTEGER"),
    ("use_count", "INTEGER NOT NULL DEFAULT 0"),
];

/// Version 5: token CIDR allow-lists, display pieces and usage data.
fn v5(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    add_missing_columns(tx, "tokens", TOKEN_COLUMNS_V5)
}

/// Version 6: who issued a service-account token.
fn v6(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    add_missing_columns(tx, "tokens", &[("issued_by", "TEXT")])
}

/// Columns added to `users` in version 7: what ends every credential of an account at once.
const USER_COLUMNS_V7: &[(&str, &str)] = &[
    ("disabled_at", "INTEGER"),
    ("session_generation", "INTEGER NOT NULL DEFAULT 0"),
];

/// Version 7: what ends every credential of an account at once.
fn v7(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    add_missing_columns(tx, "users", USER_COLUMNS_V7)
}

/// Version 8: security advisories (`npm audit`). `schema.sql`, applied before the steps, already
/// creates the new table; the step runs the same statements from it (both idempotent), so that
/// the version stamp and the table always go together.
fn v8(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(advisories_ddl(super::SCHEMA))
}

/// Version 9: staged publishes and org policies, from `schema.sql` like version 8.
fn v9(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(ddl_between(
        super::SCHEMA,
        "CREATE TABLE IF NOT EXISTS stages (",
        "    updated_at                 INTEGER NOT NULL\n);",
    ))
}

/// Version 10: stored packument renderings, from `schema.sql` like version 8.
fn v10(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(ddl_between(
        super::SCHEMA,
        "CREATE TABLE IF NOT EXISTS renderings (",
        "    DELETE FROM renderings WHERE package = new.name;\nEND;",
    ))
}

/// Version 11: the digest a stored rendering's ETags are made of (rows stored before have none).
fn v11(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    add_missing_columns(tx, "renderings", &[("digest", "BLOB")])
}

/// The statements of `schema` from `start` to the end of `last` (empty when either is missing).
fn ddl_between<'a>(schema: &'a str, start: &str, last: &str) -> &'a str {
    let from = schema.find(start).unwrap_or(schema.len());
    let rest = &schema[from..];
    let to = rest.find(last).map_or(0, |at| at + last.len());
    &rest[..to]
}

/// The statements of `schema` that declare the advisories table and its index.
fn advisories_ddl(schema: &str) -> &str {
    const START: &str = "CREATE TABLE IF NOT EXISTS advisories (";
    const LAST: &str = "ON advisories(package);";
    let from = schema.find(START).unwrap_or(schema.len());
    let rest = &schema[from..];
    let to = rest.find(LAST).map_or(0, |at| at + LAST.len());
    &rest[..to]
}

/// The index of version 6 that keeps user names unique regardless of case (`Alice` and `alice`
/// would otherwise be two accounts a reader cannot tell apart).
const USER_NAME_INDEX: &str = "users_name_nocase";

/// The database's `PRAGMA user_version` (0 for a new file).
pub fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings the database up to date with `schema` and [`STEPS`].
pub fn apply(conn: &mut Connection, schema: &str) -> rusqlite::Result<()> {
    apply_steps(conn, schema, STEPS)
}

fn apply_steps(conn: &mut Connection, schema: &str, steps: &[Step]) -> rusqlite::Result<()> {
    let latest = steps.last().map_or(0, |(version, _)| *version);
    // IMMEDIATE: `packr user add` may open the same file while the server starts.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let fresh = tx.query_row("SELECT count(*) = 0 FROM sqlite_schema", [], |row| {
        row.get(0)
    })?;
    tx.execute_batch(schema)?;
    if fresh {
        tx.pragma_update(None, "user_version", latest)?;
    }
    tx.commit()?;
    for (version, step) in steps {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read inside the transaction: another process may have run this step meanwhile.
        if user_version(&tx)? >= *version {
            continue;
        }
        step(&tx)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
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
    use crate::store::sqlite::SCHEMA;

    fn columns(conn: &Connection, table: &str) -> HashSet<String> {
        conn.prepare("SELECT name FROM pragma_table_info(?1)")
            .unwrap()
            .query_map([table], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn has_table(conn: &Connection, name: &str) -> bool {
        conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_version_2_tokens_table_gains_the_new_columns_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
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
        apply(&mut conn, SCHEMA).unwrap();
        apply(&mut conn, SCHEMA).unwrap();
        let found = columns(&conn, "tokens");
        for (name, _) in TOKEN_COLUMNS_V5 {
            assert!(found.contains(*name), "tokens lacks {name}: {found:?}");
        }
        assert!(
            found.contains("issued_by"),
            "tokens lacks issued_by: {found:?}"
        );
        let users = columns(&conn, "users");
        for (name, _) in USER_COLUMNS_V7 {
            assert!(users.contains(*name), "users lacks {name}: {users:?}");
        }
        let (cidr, uses): (String, i64) = conn
            .query_row(
                "SELECT cidr, use_count FROM tokens WHERE id = 't1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((cidr.as_str(), uses), ("[]", 0));
        assert_eq!(user_version(&conn).unwrap(), STEPS.last().unwrap().0);
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
    fn the_version_8_step_creates_the_advisories_table_from_the_schema() {
        assert!(advisories_ddl(SCHEMA).starts_with("CREATE TABLE IF NOT EXISTS advisories ("));
        assert!(advisories_ddl(SCHEMA).ends_with("ON advisories(package);"));
        let mut conn = Connection::open_in_memory().unwrap();
        assert!(!has_table(&conn, "advisories"));
        let tx = conn.transaction().unwrap();
        v8(&tx).unwrap();
        tx.commit().unwrap();
        assert!(columns(&conn, "advisories").contains("vulnerable_versions"));
        assert!(has_index(&conn, "advisories_package").unwrap());
    }

    #[test]
    fn the_version_9_step_creates_the_stage_and_policy_tables_from_the_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        v9(&tx).unwrap();
        tx.commit().unwrap();
        assert!(columns(&conn, "stages").contains("blob_key"));
        assert!(has_index(&conn, "stages_package_version").unwrap());
        assert!(columns(&conn, "org_policies").contains("require_trusted_publishing"));
    }

    #[test]
    fn user_names_become_unique_regardless_of_case() {
        let mut conn = Connection::open_in_memory().unwrap();
        old_users_table(&conn, &["alice", "bob"]);
        apply(&mut conn, SCHEMA).unwrap();
        let insert = conn.execute(
            "INSERT INTO users (name, role, created_at) VALUES ('Alice', 'reader', 0)",
            [],
        );
        assert!(insert.is_err(), "Alice was accepted next to alice");
    }

    #[test]
    fn names_that_differ_only_in_case_stop_the_migration_and_are_named() {
        let mut conn = Connection::open_in_memory().unwrap();
        old_users_table(&conn, &["alice", "Alice", "bob", "BOB", "carol"]);
        for _ in 0..2 {
            let message = apply(&mut conn, SCHEMA).unwrap_err().to_string();
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
    fn a_new_database_gets_the_schema_and_the_latest_version_together() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn, SCHEMA).unwrap();
        let latest = STEPS.last().unwrap().0;
        assert_eq!(user_version(&conn).unwrap(), latest);
        let index: String = conn
            .query_row(
                "SELECT name FROM pragma_index_list('versions') WHERE name = 'versions_blob_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, "versions_blob_key");
        assert!(columns(&conn, "tokens").contains("use_count"));
        assert!(has_index(&conn, USER_NAME_INDEX).unwrap());
    }

    #[test]
    fn a_schema_that_fails_leaves_a_new_database_empty_and_unstamped() {
        let mut conn = Connection::open_in_memory().unwrap();
        let broken = "CREATE TABLE IF NOT EXISTS a (x); CREATE TABLE oops (;";
        assert!(apply(&mut conn, broken).is_err());
        assert_eq!(user_version(&conn).unwrap(), 0);
        assert!(!has_table(&conn, "a"));
    }

    /// A version-6 step that creates a table, then fails while a `blocker` table exists.
    fn v6_fails_while_blocked(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE added_in_v6 (x)")?;
        if has_table(tx, "blocker") {
            return Err(rusqlite::Error::InvalidQuery);
        }
        Ok(())
    }

    #[test]
    fn a_failing_step_leaves_the_version_unchanged_and_runs_again_on_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("packr.db");
        let steps: &[Step] = &[(5, v5), (6, v6_fails_while_blocked)];
        {
            let mut conn = Connection::open(&path).unwrap();
            apply_steps(&mut conn, SCHEMA, &steps[..1]).unwrap();
            conn.execute_batch("CREATE TABLE blocker (x)").unwrap();
            assert!(apply_steps(&mut conn, SCHEMA, steps).is_err());
            assert_eq!(user_version(&conn).unwrap(), 5);
            assert!(
                !has_table(&conn, "added_in_v6"),
                "the step's work is rolled back"
            );
            conn.execute_batch("DROP TABLE blocker").unwrap();
        }
        let mut conn = Connection::open(&path).unwrap();
        apply_steps(&mut conn, SCHEMA, steps).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 6);
        assert!(has_table(&conn, "added_in_v6"));
        apply_steps(&mut conn, SCHEMA, steps).unwrap();
    }
}
