//! Recording a change's events: each goes into the audit log, and the webhooks subscribed to it
//! get a delivery in the outbox, both in the change's own transaction; other instances are told
//! which package changed when it commits.

use deadpool_postgres::GenericClient;

use crate::audit::AuditEvent;
use crate::store::{Change, StoreError};

/// Records `event` and queues its webhook deliveries; returns the event's id.
pub async fn record<C: GenericClient>(tx: &C, event: &AuditEvent) -> Result<i64, StoreError> {
    // The three statements depend on none of the others' answers: one round trip for all.
    let announce = async {
        match change_of(event) {
            Some(change) => super::changes::announce(tx, &change).await,
            None => Ok(()),
        }
    };
    let ((id, at), hooks, ()) = futures_util::try_join!(
        super::audit::insert(tx, event),
        super::webhooks::subscribed(tx, event),
        announce
    )?;
    super::webhooks::enqueue(tx, event, &hooks, id, at).await?;
    Ok(id)
}

/// What other instances' caches must forget once an event's change commits.
fn change_of(event: &AuditEvent) -> Option<Change> {
    match (&event.package, &event.org) {
        (Some(package), _) => Some(Change::Package(package.clone())),
        (None, Some(_)) => Some(Change::Everything),
        (None, None) if event.action == "token.revoked" => Some(Change::Tokens),
        (None, None) => None,
    }
}

/// Records each of `events` in order.
pub async fn record_all<C: GenericClient>(tx: &C, events: &[AuditEvent]) -> Result<(), StoreError> {
    for event in events {
        record(tx, event).await?;
    }
    Ok(())
}
