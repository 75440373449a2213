//! `packr migrate` against a real PostgreSQL (see `support::postgres`): concurrent instances
//! migrate once, the schema matches SQLite's table for table and column for column, a newer
//! database and an unreachable one are refused with a message, and `packr serve` refuses a
//! database URL while the PostgreSQL store is not built.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::{Duration, Instant};

use packr::store::postgres::migrate;

use crate::support::postgres::fresh_database;
use crate::support::server::packr_binary;

/// Runs `packr ARGS` with no `PACKR_*` variables from the environment but `env`, at most 60 s.
async fn packr(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(packr_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PACKR_") {
            command.env_remove(key);
        }
    }
    let output = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .unwrap_or_else(|_| panic!("`packr {}` ran longer than 60 s", args.join(" ")))
        .expect("running packr")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn succeeds(args: &[&str]) -> String {
    let output = packr(args, &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = packr(args, env).await;
    assert!(!output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn schema_versions(client: &tokio_postgres::Client) -> BTreeMap<i64, i64> {
    client
        .query(
            "SELECT version, count(*) FROM schema_version GROUP BY version",
            &[],
        )
        .await
        .expect("reading schema_version")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_migrations_at_once_apply_the_schema_once() {
    let db = fresh_database().await;
    let args = ["migrate", "--database-url", db.url.as_str()];
    let runs = (0..3).map(|_| packr(&args, &[]));
    let outputs = futures_util::future::join_all(runs).await;
    let latest = migrate::latest();
    let mut created = 0;
    for output in &outputs {
        assert!(output.status.success(), "{}", describe(output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("schema version {latest}")),
            "{stdout}"
        );
        assert!(!stdout.contains(&db.url), "the URL was printed: {stdout}");
        if stdout.contains("schema created") {
            created += 1;
        } else {
            assert!(stdout.contains("already up to date"), "{stdout}");
        }
    }
    assert_eq!(created, 1, "exactly one run creates the schema");
    let client = db.connect().await;
    let expected: BTreeMap<i64, i64> = (migrate::BASELINE..=latest).map(|v| (v, 1)).collect();
    assert_eq!(schema_versions(&client).await, expected);
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("the users table exists")
        .get(0);
    assert_eq!(users, 0);
    // A fourth run later finds nothing to do.
    let again = succeeds(&["migrate", "--database-url", &db.url]).await;
    assert!(again.contains("already up to date"), "{again}");
    assert_eq!(schema_versions(&client).await, expected);
}

/// Table name → its columns in order, and the named indexes, of a SQLite database.
fn sqlite_schema(path: &std::path::Path) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
    let conn = rusqlite::Connection::open(path).expect("opening the SQLite database");
    let names = |sql: &str| -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let tables =
        names("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
    let indexes = names(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'",
    );
    let columns = tables
        .into_iter()
        .map(|table| {
            let columns = conn
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .unwrap()
                .query_map([&table], |row| row.get(0))
                .unwrap()
                .collect::<Result<Vec<String>, _>>()
                .unwrap();
            (table, columns)
        })
        .collect();
    (columns, indexes.into_iter().collect())
}

/// The same for the public schema of a PostgreSQL database.
async fn postgres_schema(
    client: &tokio_postgres::Client,
) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in client
        .query(
            "SELECT c.table_name::TEXT, c.column_name::TEXT
             FROM information_schema.columns c
             JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
             ORDER BY c.table_name, c.ordinal_position",
            &[],
        )
        .await
        .expect("reading information_schema")
    {
        tables.entry(row.get(0)).or_default().push(row.get(1));
    }
    let indexes = client
        .query(
            "SELECT indexname::TEXT FROM pg_indexes WHERE schemaname = 'public'",
            &[],
        )
        .await
        .expect("reading pg_indexes")
        .iter()
        .map(|row| row.get(0))
        .collect();
    (tables, indexes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_schema_has_every_table_column_and_index_of_the_sqlite_schema() {
    let db = fresh_database().await;
    succeeds(&["migrate", "--database-url", &db.url]).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let printed = succeeds(&["migrate", "--data-dir", data_dir.to_str().unwrap()]).await;
    assert!(
        printed.contains("SQLite") && printed.contains("schema version"),
        "{printed}"
    );

    let (sqlite_tables, sqlite_indexes) = sqlite_schema(&data_dir.join("packr.db"));
    assert!(sqlite_tables.contains_key("users") && sqlite_tables.len() > 20);
    let client = db.connect().await;
    let (mut pg_tables, pg_indexes) = postgres_schema(&client).await;
    assert!(
        pg_tables.remove("schema_version").is_some(),
        "no schema_version table: {pg_tables:?}"
    );
    let names = |tables: &BTreeMap<String, Vec<String>>| tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&pg_tables), names(&sqlite_tables), "tables differ");
    for (table, columns) in &sqlite_tables {
        assert_eq!(&pg_tables[table], columns, "columns of {table} differ");
    }
    let missing: Vec<_> = sqlite_indexes.difference(&pg_indexes).collect();
    assert!(
        missing.is_empty(),
        "indexes missing in PostgreSQL: {missing:?}"
    );

    // User names are unique regardless of case there too.
    client
        .execute(
            "INSERT INTO users (name, role, created_at) VALUES ('alice', 'reader', 0)",
            &[],
        )
        .await
        .unwrap();
    let clash = client
        .execute(
            "INSERT INTO users (name, role, created_at) VALUES ('Alice', 'reader', 0)",
            &[],
        )
        .await
        .expect_err("Alice was accepted next to alice");
    assert_eq!(
        clash.as_db_error().map(|e| e.constraint()),
        Some(Some("users_name_nocase"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_packr_is_refused_naming_both_versions() {
    let db = fresh_database().await;
    succeeds(&["migrate", "--database-url", &db.url]).await;
    let client = db.connect().await;
    let latest = migrate::latest();
    let newer = latest + 4;
    client
        .execute(
            "INSERT INTO schema_version (version, applied_at, applied_by) VALUES ($1, 0, 'packr 9.9.9')",
            &[&newer],
        )
        .await
        .unwrap();
    let before = schema_versions(&client).await;
    let stderr = fails(&["migrate", "--database-url", &db.url], &[]).await;
    for part in [
        format!("version {newer}"),
        format!("version {latest}"),
        "packr 9.9.9".to_owned(),
        "newer".to_owned(),
    ] {
        assert!(stderr.contains(&part), "{part} missing from: {stderr}");
    }
    assert_eq!(
        schema_versions(&client).await,
        before,
        "nothing was changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_fast_naming_it_without_the_password() {
    // Nothing listens on this port: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://packr:hunter2@127.0.0.1:{port}/registry");
    let started = Instant::now();
    let stderr = fails(&["migrate", "--database-url", &url], &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!(
            "cannot connect to PostgreSQL at packr@127.0.0.1:{port}/registry"
        )) && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password was printed: {stderr}"
    );

    // This one accepts connections and never answers: the connect timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgres://packr:hunter2@127.0.0.1:{port}/registry?connect_timeout=1");
    let started = Instant::now();
    let stderr = fails(&["migrate"], &[("PACKR_DATABASE_URL", url.as_str())]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}: {stderr}");
    assert!(
        stderr.contains(&format!("packr@127.0.0.1:{port}/registry"))
            && stderr.contains("no answer within 1 s"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password was printed: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_named_with_the_servers_reason() {
    let db = fresh_database().await;
    let missing = db.url.replace(&db.name, "no_such_db");
    let stderr = fails(&["migrate", "--database-url", &missing], &[]).await;
    assert!(
        stderr.contains("cannot connect to PostgreSQL at postgres@127.0.0.1:")
            && stderr.contains("/no_such_db")
            && stderr.contains("database \"no_such_db\" does not exist"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_the_store_commands_refuse_a_database_url_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let env = [(
        "PACKR_DATABASE_URL",
        "postgres://packr:hunter2@127.0.0.1:1/registry",
    )];
    let commands: [&[&str]; 3] = [
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        &["user", "disable", "alice", "--data-dir", data_dir],
        &["token", "list", "--data-dir", data_dir],
    ];
    for args in commands {
        let stderr = fails(args, &env).await;
        assert!(
            stderr.contains("PostgreSQL store is not built yet")
                && stderr.contains("only `packr migrate` uses it"),
            "packr {}: {stderr}",
            args[0]
        );
        assert!(
            !stderr.contains("hunter2"),
            "the password was printed: {stderr}"
        );
    }
    assert!(
        !dir.path().join("packr.db").exists(),
        "a SQLite database was made although PostgreSQL was asked for"
    );
}
