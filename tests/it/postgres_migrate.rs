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

/// What two schemas must have alike, in PostgreSQL's terms.
#[derive(Debug, Default)]
struct Schema {
    /// Table → its columns in order, as `name type` plus ` NOT NULL` where nulls are refused.
    tables: BTreeMap<String, Vec<String>>,
    /// The names of the indexes created by name (not those behind a key or UNIQUE).
    indexes: BTreeSet<String>,
    /// `table(columns) -> table(columns) ON DELETE action`.
    foreign_keys: BTreeSet<String>,
    /// `table(columns)` of every primary key and unique constraint or index on plain columns.
    unique: BTreeSet<String>,
    /// Table → how many CHECK constraints it has.
    checks: BTreeMap<String, usize>,
}

/// The type a SQLite column has in PostgreSQL (see src/store/postgres/schema.sql).
fn postgres_type(table: &str, column: &str, sqlite_type: &str) -> &'static str {
    match sqlite_type {
        "INTEGER" if (table, column) == ("webhooks", "active") => "boolean",
        "INTEGER" => "bigint",
        "TEXT" => "text",
        "BLOB" => "bytea",
        other => {
            panic!("{table}.{column} has type {other}, which the PostgreSQL schema does not map")
        }
    }
}

fn sqlite_schema(path: &std::path::Path) -> Schema {
    let conn = rusqlite::Connection::open(path).expect("opening the SQLite database");
    let rows = |sql: &str, arg: &str| -> Vec<Vec<Option<String>>> {
        let mut statement = conn.prepare(sql).unwrap();
        let width = statement.column_count();
        statement
            .query_map([arg], |row| {
                (0..width)
                    .map(|at| row.get::<_, rusqlite::types::Value>(at))
                    .map(|value| {
                        value.map(|value| match value {
                            rusqlite::types::Value::Null => None,
                            rusqlite::types::Value::Integer(n) => Some(n.to_string()),
                            rusqlite::types::Value::Text(text) => Some(text),
                            other => panic!("unexpected {other:?}"),
                        })
                    })
                    .collect()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut schema = Schema::default();
    let tables = rows(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE ?1",
        "sqlite_%",
    );
    for table in tables {
        let (name, sql) = (text(&table[0]), text(&table[1]));
        schema
            .checks
            .insert(name.clone(), sql.matches("CHECK").count());
        let mut key = Vec::new();
        let mut columns = Vec::new();
        for column in rows(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
            &name,
        ) {
            let (column_name, pk) = (text(&column[0]), text(&column[3]));
            let not_null = text(&column[2]) == "1" || pk != "0";
            if pk != "0" {
                key.push((pk, column_name.clone()));
            }
            columns.push(format!(
                "{column_name} {}{}",
                postgres_type(&name, &column_name, &text(&column[1])),
                if not_null { " NOT NULL" } else { "" }
            ));
        }
        key.sort();
        let key: Vec<String> = key.into_iter().map(|(_, column)| column).collect();
        schema.unique.insert(format!("{name}({})", key.join(",")));
        schema.tables.insert(name.clone(), columns);
        for index in rows(
            "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1",
            &name,
        ) {
            let columns = rows(
                "SELECT name FROM pragma_index_info(?1) ORDER BY seqno",
                &text(&index[0]),
            );
            // An index on an expression (users_name_nocase) has a NULL column name.
            if columns.iter().all(|column| column[0].is_some()) {
                let columns: Vec<String> = columns.iter().map(|column| text(&column[0])).collect();
                schema
                    .unique
                    .insert(format!("{name}({})", columns.join(",")));
            }
        }
        let mut keys: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for key in rows(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1)
             ORDER BY id, seq",
            &name,
        ) {
            keys.entry(text(&key[0]))
                .or_default()
                .push(key[1..].iter().map(text).collect());
        }
        for parts in keys.values() {
            let column = |at: usize| {
                parts
                    .iter()
                    .map(|p| p[at].clone())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            schema.foreign_keys.insert(format!(
                "{name}({}) -> {}({}) ON DELETE {}",
                column(1),
                parts[0][0],
                column(2),
                parts[0][3]
            ));
        }
    }
    schema.indexes = rows(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE ?1",
        "sqlite_autoindex_%",
    )
    .iter()
    .map(|row| text(&row[0]))
    .collect();
    schema
}

/// The same for the public schema of a PostgreSQL database, without `schema_version`.
async fn postgres_schema(client: &tokio_postgres::Client) -> Schema {
    let rows = |sql: &'static str| async move {
        client
            .query(sql, &[])
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err:?}"))
    };
    let mut schema = Schema::default();
    for row in rows(
        "SELECT c.table_name::TEXT, c.column_name::TEXT, c.data_type::TEXT, c.is_nullable::TEXT
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND c.table_name <> 'schema_version'
         ORDER BY c.table_name, c.ordinal_position",
    )
    .await
    {
        let (name, data_type, nullable): (String, String, String) =
            (row.get(1), row.get(2), row.get(3));
        let not_null = if nullable == "NO" { " NOT NULL" } else { "" };
        schema
            .tables
            .entry(row.get(0))
            .or_default()
            .push(format!("{name} {data_type}{not_null}"));
    }
    schema.indexes = rows(
        "SELECT indexname::TEXT FROM pg_indexes
         WHERE schemaname = 'public' AND tablename <> 'schema_version'",
    )
    .await
    .iter()
    .map(|row| row.get(0))
    .collect();
    let columns = |keys: &str, table: &str| {
        format!(
            "(SELECT string_agg(a.attname::TEXT, ',' ORDER BY k.n)
              FROM unnest({keys}) WITH ORDINALITY k(attnum, n)
              JOIN pg_attribute a ON a.attrelid = {table} AND a.attnum = k.attnum)"
        )
    };
    let sql = format!(
        "SELECT c.conrelid::regclass::TEXT, {}, c.confrelid::regclass::TEXT, {},
                CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'
                     WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' ELSE 'SET DEFAULT' END
         FROM pg_constraint c
         WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace",
        columns("c.conkey", "c.conrelid"),
        columns("c.confkey", "c.confrelid")
    );
    for row in client.query(&sql, &[]).await.expect("reading foreign keys") {
        let parts: Vec<String> = (0..5).map(|at| row.get(at)).collect();
        schema.foreign_keys.insert(format!(
            "{}({}) -> {}({}) ON DELETE {}",
            parts[0], parts[1], parts[2], parts[3], parts[4]
        ));
    }
    let sql = format!(
        "SELECT i.indrelid::regclass::TEXT, {}
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
         WHERE i.indisunique AND t.relnamespace = 'public'::regnamespace
           AND t.relname <> 'schema_version' AND i.indexprs IS NULL",
        columns("i.indkey::INT2[]", "i.indrelid")
    );
    for row in client
        .query(&sql, &[])
        .await
        .expect("reading unique indexes")
    {
        let (table, columns): (String, String) = (row.get(0), row.get(1));
        schema.unique.insert(format!("{table}({columns})"));
    }
    for row in rows(
        "SELECT t.relname::TEXT, count(c.oid)
         FROM pg_class t LEFT JOIN pg_constraint c ON c.conrelid = t.oid AND c.contype = 'c'
         WHERE t.relnamespace = 'public'::regnamespace AND t.relkind = 'r'
           AND t.relname <> 'schema_version'
         GROUP BY t.relname",
    )
    .await
    {
        let count: i64 = row.get(1);
        schema
            .checks
            .insert(row.get(0), usize::try_from(count).unwrap());
    }
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_schema_has_every_table_column_key_and_index_of_the_sqlite_schema() {
    let db = fresh_database().await;
    succeeds(&["migrate", "--database-url", &db.url]).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let printed = succeeds(&["migrate", "--data-dir", data_dir.to_str().unwrap()]).await;
    assert!(
        printed.contains("SQLite") && printed.contains("schema version"),
        "{printed}"
    );

    let sqlite = sqlite_schema(&data_dir.join("packr.db"));
    assert!(sqlite.tables.contains_key("users") && sqlite.tables.len() > 20);
    let client = db.connect().await;
    let mut postgres = postgres_schema(&client).await;
    // Only instances sharing PostgreSQL share rate-limit buckets; SQLite's are in memory.
    assert!(postgres.tables.remove("rate_limit_buckets").is_some());
    postgres
        .unique
        .retain(|key| !key.starts_with("rate_limit_buckets"));
    postgres.checks.remove("rate_limit_buckets");
    let names = |tables: &BTreeMap<String, Vec<String>>| tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&postgres.tables),
        names(&sqlite.tables),
        "tables differ"
    );
    for (table, columns) in &sqlite.tables {
        assert_eq!(
            &postgres.tables[table], columns,
            "columns of {table} differ"
        );
    }
    let missing: Vec<_> = sqlite.indexes.difference(&postgres.indexes).collect();
    assert!(
        missing.is_empty(),
        "indexes missing in PostgreSQL: {missing:?}"
    );
    assert_eq!(
        postgres.foreign_keys, sqlite.foreign_keys,
        "foreign keys differ"
    );
    assert_eq!(
        postgres.unique, sqlite.unique,
        "keys and unique constraints differ"
    );
    assert_eq!(
        postgres.checks, sqlite.checks,
        "CHECK constraints per table differ"
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
async fn a_failed_migration_changes_nothing_and_can_be_run_again() {
    let db = fresh_database().await;
    let client = db.connect().await;
    // Someone else's `users` table stops the schema halfway through.
    client
        .batch_execute("CREATE TABLE users (id INT)")
        .await
        .unwrap();
    let stderr = fails(&["migrate", "--database-url", &db.url], &[]).await;
    assert!(
        stderr.contains("relation \"users\" already exists"),
        "{stderr}"
    );
    let created: Vec<String> = client
        .query(
            "SELECT table_name::TEXT FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(created, ["users"], "the failed run left tables behind");
    client.batch_execute("DROP TABLE users").await.unwrap();
    let printed = succeeds(&["migrate", "--database-url", &db.url]).await;
    assert!(printed.contains("schema created"), "{printed}");
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
async fn serve_and_the_store_commands_use_the_database_url_and_never_print_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let env = [(
        "PACKR_DATABASE_URL",
        "postgres://packr:hunter2@127.0.0.1:1/registry",
    )];
    // Several instances cannot share tarballs kept in one instance's data directory.
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
    let stderr = fails(&serve, &env).await;
    assert!(
        stderr.contains("PACKR_STORAGE=s3") && stderr.contains("PACKR_ALLOW_LOCAL_BLOBS"),
        "{stderr}"
    );
    let commands: [&[&str]; 3] = [
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-local-blobs",
            "--data-dir",
            data_dir,
        ],
        &["user", "disable", "alice", "--data-dir", data_dir],
        &["token", "list", "--data-dir", data_dir],
    ];
    for args in commands {
        let stderr = fails(args, &env).await;
        assert!(
            stderr.contains("cannot connect to PostgreSQL at packr@127.0.0.1:1/registry"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_on_postgres_needs_every_secret_given_and_names_the_missing_one() {
    let db = fresh_database().await;
    let s3 = crate::support::s3::S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let hex = "ab".repeat(32);
    let mut env: Vec<(String, String)> = s3.env();
    env.push(("PACKR_DATABASE_URL".into(), db.url.clone()));
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
    for (given, missing) in [
        (vec![], "PACKR_JWT_SECRET"),
        (vec!["PACKR_JWT_SECRET"], "PACKR_SESSION_SECRET"),
        (
            vec!["PACKR_JWT_SECRET", "PACKR_SESSION_SECRET"],
            "PACKR_SECRET_KEY",
        ),
    ] {
        let mut with = env.clone();
        with.extend(given.iter().map(|var| ((*var).to_owned(), hex.clone())));
        let refs: Vec<(&str, &str)> = with.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let stderr = fails(&serve, &refs).await;
        assert!(
            stderr.contains(&format!("{missing} is not set")),
            "missing {missing}: {stderr}"
        );
    }
    assert!(
        !dir.path().join("secrets").exists(),
        "an instance on PostgreSQL generated a secret of its own"
    );
}
