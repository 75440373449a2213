//! The audit part of the metadata store seam: recording events on their own, and querying the
//! log. A change records its events in its own transaction, through the operation that makes it.

use serde::Serialize;

use super::StoreError;
use crate::audit::AuditEvent;

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

/// Audit-log operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Records events that go with no other change (a sign-in, a refused attempt), in one
    /// transaction, with their webhook deliveries.
    async fn record_events(&self, events: Vec<AuditEvent>) -> Result<(), StoreError>;

    /// Events matching `query`, newest first, and how many match in all.
    async fn query_audit_log(&self, query: AuditQuery) -> Result<(Vec<AuditRow>, i64), StoreError>;
}
