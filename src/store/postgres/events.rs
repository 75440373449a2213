//! Recording a change's events: each goes into the audit log, and the webhooks subscribed to it
//! get a delivery in the outbox, both in the change's own transaction; other instances are told
//! which package changed when it commits.

use deadpool_postgres::GenericClient;

use crate::audit::AuditEvent;
use crate::clock;
use crate::store::{Change, StoreError};
use crate::webhooks;

/// Records `event` and queues its webhook deliveries; returns the event's id.
pub async fn record<C: GenericClient>(tx: &C, event: &AuditEvent) -> Result<i64, StoreError> {
    // One statement: the audit row; the active hooks subscribed to the event (hooks of the
    // actor, of a maintainer of the package, or of the org the event or package belongs to),
    // looked up only for the events a hook may subscribe to; and the announcement to other
    // instances, sent when the transaction commits. Maintainers are read as the transaction sees
    // them, so a change that removes them records its event first.
    const RECORD: &str = "WITH logged AS (
             INSERT INTO audit_log (at, action, actor_id, actor_name, token_id, ip, request_id,
                                    package, org, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id)
         SELECT id,
                CASE WHEN $11 THEN ARRAY(
                    SELECT w.id FROM webhooks w
                    WHERE w.active
                      AND w.events::jsonb ? $2
                      AND ((w.owner_user_id IS NOT NULL
                            AND (w.owner_user_id = $3
                                 OR EXISTS (SELECT 1 FROM maintainers m
                                            WHERE m.package = $8
                                              AND m.user_id = w.owner_user_id)))
                        OR (w.owner_org_id IS NOT NULL
                            AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = w.owner_org_id
                                        AND (o.slug = $9
                                             OR starts_with($8, '@' || o.slug || '/')))))
                    ORDER BY w.id)
                ELSE '{}' END,
                CASE WHEN $13::text IS NOT NULL THEN pg_notify($12, $13) END
         FROM logged";
    let at = clock::now_ms();
    let change = change_of(event);
    let announced = change.as_ref().map(super::changes::payload);
    let row = super::packages::one(
        tx,
        RECORD,
        &[
            &at,
            &event.action,
            &event.actor_id,
            &event.actor_name,
            &event.token_id,
            &event.ip,
            &event.request_id,
            &event.package,
            &event.org,
            &event.details.to_string(),
            &webhooks::EVENTS.contains(&event.action),
            &super::changes::CHANNEL,
            &announced,
        ],
    )
    .await?;
    let (id, hooks): (i64, Vec<i64>) = (row.get(0), row.get(1));
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
