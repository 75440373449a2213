//! PostgreSQL queries on `audit_log`.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::audit::AuditEvent;
use crate::clock;
use crate::store::StoreError;
use crate::store::audit::{AuditQuery, AuditRow};

#[async_trait::async_trait]
impl crate::store::AuditStore for super::Postgres {
    async fn record_events(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn query_audit_log(&self, q: AuditQuery) -> Result<(Vec<AuditRow>, i64), StoreError> {
        let mut conditions = Vec::new();
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut add = |sql: &str, value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            conditions.push(format!("{sql} ${}", args.len()));
        };
        if let Some(action) = q.action {
            add("action =", Box::new(action));
        }
        if let Some(actor) = q.actor {
            add("actor_name =", Box::new(actor));
        }
        if let Some(package) = q.package {
            add("package =", Box::new(package));
        }
        if let Some(from) = q.from {
            add("at >=", Box::new(from));
        }
        if let Some(to) = q.to {
            add("at <", Box::new(to));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|arg| arg.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.pool().get().await?;
        let total: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM audit_log {filter}"), &params)
            .await?
            .get(0);
        let sql = format!(
            "SELECT id, at, action, actor_name, actor_id, token_id, ip, request_id, package, org,
                    details
             FROM audit_log {filter} ORDER BY id DESC LIMIT {} OFFSET {}",
            q.limit, q.offset
        );
        let rows = client
            .query(&sql, &params)
            .await?
            .into_iter()
            .map(|row| AuditRow {
                id: row.get(0),
                time: clock::iso(row.get(1)),
                action: row.get(2),
                actor: row.get(3),
                actor_id: row.get(4),
                token_id: row.get(5),
                ip: row.get(6),
                request_id: row.get(7),
                package: row.get(8),
                org: row.get(9),
                details: serde_json::from_str(row.get(10)).unwrap_or_default(),
            })
            .collect();
        Ok((rows, total))
    }
}
