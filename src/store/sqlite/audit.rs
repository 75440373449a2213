//! Queries on `audit_log`.

use rusqlite::{Connection, params, params_from_iter, types::Value as SqlValue};

use crate::audit::AuditEvent;
use crate::clock;
use crate::store::StoreError;
use crate::store::audit::{AuditQuery, AuditRow};

/// Adds an event to the log inside the caller's transaction; returns its id. Changes record their
/// events through [`super::events::record`], which also queues the webhook deliveries.
pub fn insert(conn: &Connection, event: &AuditEvent) -> Result<i64, StoreError> {
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
    Ok(conn.last_insert_rowid())
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

#[async_trait::async_trait]
impl crate::store::AuditStore for super::Sqlite {
    async fn record_events(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        self.write(move |tx| super::events::record_all(tx, &events))
            .await
    }

    async fn query_audit_log(&self, query: AuditQuery) -> Result<(Vec<AuditRow>, i64), StoreError> {
        self.read(move |conn| self::query(conn, &query)).await
    }
}
