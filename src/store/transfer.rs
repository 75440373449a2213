//! Moving a registry's metadata from SQLite to PostgreSQL (`packr migrate-store`): every table,
//! row for row, in the order the schema creates them (so every row a foreign key names is there
//! first).
//!
//! The copy can be interrupted and run again: rows go in with `ON CONFLICT DO NOTHING`, so a
//! second run adds only what the first did not. At the end every table must hold exactly as many
//! rows in PostgreSQL as in SQLite, and the identity sequences continue after the copied ids.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio_postgres::types::ToSql;

use super::StoreError;
use super::postgres::Postgres;

/// Values sent in one INSERT at most (PostgreSQL allows 65,535 parameters).
const PARAMETERS_PER_BATCH: usize = 20_000;

/// One table's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// Rows in SQLite.
    pub source_rows: i64,
    /// Rows this run added to PostgreSQL (fewer than `source_rows` when resuming).
    pub copied: u64,
    /// Rows in PostgreSQL afterwards.
    pub target_rows: i64,
}

impl TableCopy {
    /// Whether PostgreSQL now holds as many rows as SQLite.
    pub fn complete(&self) -> bool {
        self.source_rows == self.target_rows
    }
}

/// How a column's SQLite values are sent to PostgreSQL.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Integer,
    Text,
    Bytes,
    Bool,
}

impl Kind {
    fn of(pg_type: &str) -> Result<Self, StoreError> {
        Ok(match pg_type {
            "bigint" | "integer" | "smallint" => Self::Integer,
            "text" | "character varying" => Self::Text,
            "bytea" => Self::Bytes,
            "boolean" => Self::Bool,
            other => {
                return Err(StoreError::Task(format!(
                    "no copy rule for PostgreSQL type {other}"
                )));
            }
        })
    }

    /// The SQLite value as a PostgreSQL parameter.
    fn convert(self, value: ValueRef<'_>) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
        let wrong = |what: &str| {
            StoreError::Task(format!(
                "a {what} value where the PostgreSQL column is {self:?}"
            ))
        };
        Ok(match (self, value) {
            (Self::Integer, ValueRef::Null) => Box::new(None::<i64>),
            (Self::Integer, ValueRef::Integer(n)) => Box::new(n),
            (Self::Text, ValueRef::Null) => Box::new(None::<String>),
            (Self::Text, ValueRef::Text(text)) => {
                Box::new(String::from_utf8_lossy(text).into_owned())
            }
            (Self::Text, ValueRef::Integer(n)) => Box::new(n.to_string()),
            (Self::Bytes, ValueRef::Null) => Box::new(None::<Vec<u8>>),
            (Self::Bytes, ValueRef::Blob(bytes)) => Box::new(bytes.to_vec()),
            (Self::Bool, ValueRef::Null) => Box::new(None::<bool>),
            (Self::Bool, ValueRef::Integer(n)) => Box::new(n != 0),
            (_, ValueRef::Real(_)) => return Err(wrong("real")),
            (_, ValueRef::Text(_)) => return Err(wrong("text")),
            (_, ValueRef::Blob(_)) => return Err(wrong("blob")),
            (_, ValueRef::Integer(_)) => return Err(wrong("integer")),
        })
    }
}

/// Opens the SQLite database of a data directory for reading only.
fn open_source(data_dir: &Path) -> Result<Connection, StoreError> {
    let path = data_dir.join("packr.db");
    if !path.exists() {
        return Err(StoreError::Task(format!(
            "{} does not exist: --from-data-dir must be a Packr data directory",
            path.display()
        )));
    }
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// The tables to copy, in creation order.
fn tables(source: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = source.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY rowid",
    )?;
    let names = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

/// Copies every table of the SQLite database in `data_dir` into `target`, whose schema must be
/// current. Reports each table as it finishes through `progress`.
pub async fn copy_sqlite_to_postgres(
    data_dir: &Path,
    target: &Postgres,
    mut progress: impl FnMut(&TableCopy),
) -> Result<Vec<TableCopy>, StoreError> {
    let source = open_source(data_dir)?;
    let mut client = target.pool().get().await?;
    let mut report = Vec::new();
    for table in tables(&source)? {
        let columns = client
            .query(
                "SELECT column_name, data_type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
                &[&table],
            )
            .await?;
        if columns.is_empty() {
            return Err(StoreError::Task(format!(
                "PostgreSQL has no table {table}: run `packr migrate` with this Packr version first"
            )));
        }
        let names: Vec<String> = columns.iter().map(|row| row.get(0)).collect();
        let kinds = columns
            .iter()
            .map(|row| Kind::of(row.get::<_, &str>(1)))
            .collect::<Result<Vec<_>, _>>()?;
        let list = names.join(", ");
        let source_rows: i64 =
            source.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })?;
        let mut stmt = source.prepare(&format!("SELECT {list} FROM {table} ORDER BY rowid"))?;
        let mut rows = stmt.query([])?;
        let per_batch = (PARAMETERS_PER_BATCH / names.len()).max(1);
        let mut copied = 0;
        loop {
            let mut batch: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            while batch.len() < per_batch * names.len() {
                let Some(row) = rows.next()? else { break };
                for (at, kind) in kinds.iter().enumerate() {
                    batch.push(kind.convert(row.get_ref(at)?)?);
                }
            }
            if batch.is_empty() {
                break;
            }
            copied += insert(&mut client, &table, &list, names.len(), &batch).await?;
        }
        let target_rows: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await?
            .get(0);
        if names.iter().any(|name| name == "id") {
            continue_identity(&client, &table).await?;
        }
        let copy = TableCopy {
            table,
            source_rows,
            copied,
            target_rows,
        };
        progress(&copy);
        report.push(copy);
    }
    Ok(report)
}

/// Moves `table`'s identity sequence, if it has one, past the ids copied explicitly, so that new
/// rows never collide with them.
async fn continue_identity(
    client: &deadpool_postgres::Object,
    table: &str,
) -> Result<(), StoreError> {
    let sequence: Option<String> = client
        .query_one("SELECT pg_get_serial_sequence($1, 'id')", &[&table])
        .await?
        .get(0);
    if let Some(sequence) = sequence {
        client
            .execute(
                &format!("SELECT setval($1::text::regclass, max(id)) FROM {table} HAVING max(id) IS NOT NULL"),
                &[&sequence],
            )
            .await?;
    }
    Ok(())
}

/// Inserts `values` (whole rows of `width` values) into `table`, skipping rows already there;
/// returns how many went in.
async fn insert(
    client: &mut deadpool_postgres::Object,
    table: &str,
    list: &str,
    width: usize,
    values: &[Box<dyn ToSql + Sync + Send>],
) -> Result<u64, StoreError> {
    let rows: Vec<String> = values
        .chunks(width)
        .enumerate()
        .map(|(row, _)| {
            let placeholders: Vec<String> = (1..=width)
                .map(|col| format!("${}", row * width + col))
                .collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({list}) OVERRIDING SYSTEM VALUE VALUES {} ON CONFLICT DO NOTHING",
        rows.join(", ")
    );
    let params: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|value| value.as_ref() as &(dyn ToSql + Sync))
        .collect();
    Ok(client.execute(&sql, &params).await?)
}

/// The content address of every tarball the versions and tombstones of the SQLite database in
/// `data_dir` name, for copying and checking the blobs.
pub fn blob_keys(data_dir: &Path) -> Result<Vec<String>, StoreError> {
    let source = open_source(data_dir)?;
    // Staged versions' tarballs move too (a database from before staging has no `stages`).
    let has_stages: bool = source.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'stages'",
        [],
        |row| row.get(0),
    )?;
    let mut stmt = source.prepare(if has_stages {
        "SELECT blob_key FROM versions UNION SELECT blob_key FROM stages ORDER BY 1"
    } else {
        "SELECT DISTINCT blob_key FROM versions ORDER BY blob_key"
    })?;
    let keys = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(keys)
}
