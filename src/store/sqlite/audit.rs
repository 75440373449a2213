//! Queries on `audit_log`.

use rusqlite::{Connection, params, params_from_iter, types::Value as SqlValue};
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::clock;
use crate::store::StoreError;

/// Records an event inside the caller's transaction; returns its id.
pub fn record(conn: &Connection, event: &AuditEvent) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO audit_log (at, action, actor_id, actor_name, token_id, ip, request_id, package, org, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            clock::now_ms(),
            event.action,
            event.actor_id,
            event.actor_name,
            event.token_id,
            event.ip,
            event.request_id,
            event.package,
            event.org,
            event.details.to_string(),
        ],
    )?;
    let id = conn.last_insert_rowid();
    super::webhooks::enqueue(conn, event, id)?;
    Ok(id)
}

/// Filters of an audit-log query; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Exact action.
    pub action: Option<String>,
    /// Actor's user name.
    pub actor: Option<String>,
    /// Package name.
    pub package: Option<String>,
    /// From this time (ms, inclusive).
    pub from: Option<i64>,
    /// Until this time (ms, exclusive).
    pub to: Option<i64>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// One stored event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// Event id.
    pub id: i64,
    /// ISO-8601 time.
    pub time: String,
    /// What happened.
    pub action: String,
    /// Actor's name.
    pub actor: Option<String>,
    /// Actor's id.
    pub actor_id: Option<i64>,
    /// Token used.
    pub token_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Package concerned.
    pub package: Option<String>,
    /// Org concerned.
    pub org: Option<String>,
    /// Details.
    pub details: serde_json::Value,
}

/// Events matching the filters, newest first, and the total count of matches.
pub fn query(conn: &Connection, q: &AuditQuery) -> Result<(Vec<AuditRow>, i64), StoreError> {
    let mut conditions = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let mut add = |sql: &str, value: SqlValue| {
        args.push(value);
        conditions.push(format!("{sql} ?{}", args.len()));
    };
    if let Some(action) = &q.action {
        add("action =", action.clone().into());
    }
    if let Some(actor) = &q.actor {
        add("actor_name =", actor.clone().into());
    }
    if let Some(package) = &q.package {
        add("package =", package.clone().into());
    }
    if let Some(from) = q.from {
        add("at >=", from.into());
    }
    if let Some(to) = q.to {
        add("at <", to.into());
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let total = conn.query_row(
        &format!("SELECT COUNT(*) FROM audit_log {filter}"),
        params_from_iter(args.iter()),
        |row| row.get(0),
    )?;
    let sql = format!(
        "SELECT id, at, action, actor_name, actor_id, token_id, ip, request_id, package, org, details
         FROM audit_log {filter} ORDER BY id DESC LIMIT {} OFFSET {}",
        q.limit, q.offset
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |row| {
            let details: String = row.get(10)?;
            Ok(AuditRow {
                id: row.get(0)?,
                time: clock::iso(row.get(1)?),
                action: row.get(2)?,
                actor: row.get(3)?,
                actor_id: row.get(4)?,
                token_id: row.get(5)?,
                ip: row.get(6)?,
                request_id: row.get(7)?,
                package: row.get(8)?,
                org: row.get(9)?,
                details: serde_json::from_str(&details).unwrap_or_default(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}
