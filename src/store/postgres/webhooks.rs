//! PostgreSQL queries for webhooks and their outbox.

use tokio_postgres::Transaction;

use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::webhooks::{self, EVENTS};

/// Queues one delivery of `event` per active hook subscribed to it: hooks of the actor, of a
/// maintainer of the package, or of the org the event or package belongs to. Maintainers are read
/// as the transaction sees them, so a change that removes them records its event first.
pub async fn enqueue(
    tx: &Transaction<'_>,
    event: &AuditEvent,
    event_id: i64,
    at: i64,
) -> Result<(), StoreError> {
    if !EVENTS.contains(&event.action) {
        return Ok(());
    }
    let hooks = tx
        .query(
            "SELECT w.id FROM webhooks w
             WHERE w.active
               AND w.events::jsonb ? $1
               AND ((w.owner_user_id IS NOT NULL
                     AND (w.owner_user_id = $2
                          OR EXISTS (SELECT 1 FROM maintainers m
                                     WHERE m.package = $3 AND m.user_id = w.owner_user_id)))
                 OR (w.owner_org_id IS NOT NULL
                     AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = w.owner_org_id
                                 AND (o.slug = $4 OR starts_with($3, '@' || o.slug || '/')))))",
            &[&event.action, &event.actor_id, &event.package, &event.org],
        )
        .await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let payload = webhooks::payload(event, event_id, at);
    for hook in hooks {
        let hook: i64 = hook.get(0);
        tx.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, action, payload,
                                             next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
            &[
                &uuid::Uuid::new_v4().to_string(),
                &hook,
                &event_id,
                &event.action,
                &payload,
                &at,
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl crate::store::WebhookStore for super::Postgres {}
