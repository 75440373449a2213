//! Recording a change's events: each goes into the audit log, and the webhooks subscribed to it
//! get a delivery in the outbox, both in the change's own transaction.

use rusqlite::Connection;

use crate::audit::AuditEvent;
use crate::store::StoreError;

/// Records `event` and queues its webhook deliveries; returns the event's id.
pub fn record(conn: &Connection, event: &AuditEvent) -> Result<i64, StoreError> {
    let id = super::audit::insert(conn, event)?;
    super::webhooks::enqueue(conn, event, id)?;
    Ok(id)
}

/// Records each of `events` in order.
pub fn record_all(conn: &Connection, events: &[AuditEvent]) -> Result<(), StoreError> {
    for event in events {
        record(conn, event)?;
    }
    Ok(())
}
