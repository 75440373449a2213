//! Recording a change's events: each goes into the audit log, and the webhooks subscribed to it
//! get a delivery in the outbox, both in the change's own transaction.

use tokio_postgres::Transaction;

use crate::audit::AuditEvent;
use crate::store::StoreError;

/// Records `event` and queues its webhook deliveries; returns the event's id.
pub async fn record(tx: &Transaction<'_>, event: &AuditEvent) -> Result<i64, StoreError> {
    let (id, at) = super::audit::insert(tx, event).await?;
    super::webhooks::enqueue(tx, event, id, at).await?;
    Ok(id)
}

/// Records each of `events` in order.
pub async fn record_all(tx: &Transaction<'_>, events: &[AuditEvent]) -> Result<(), StoreError> {
    for event in events {
        record(tx, event).await?;
    }
    Ok(())
}
