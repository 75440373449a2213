//! PostgreSQL queries on `webhooks`; the delivery outbox (`webhook_deliveries`,
//! `webhook_attempts`) is in [`outbox`].

mod outbox;

use tokio_postgres::{GenericClient, Row, Transaction};

use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::store::webhooks::{
    AfterAttempt, AttemptRow, DeliveryRow, DueDelivery, EventFor, HookCreated, NewWebhook, Requeue,
    WebhookRow,
};
use crate::webhooks::{self, Owner};

/// Queues one delivery of `event` (audit row `event_id`, recorded at `at`) per hook of `hooks`
/// ([`super::events::record`] finds them).
pub async fn enqueue<C: deadpool_postgres::GenericClient>(
    tx: &C,
    event: &AuditEvent,
    hooks: &[i64],
    event_id: i64,
    at: i64,
) -> Result<(), StoreError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let payload = webhooks::payload(event, event_id, at);
    for hook in hooks {
        super::packages::exec(
            tx,
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, action, payload,
                                             next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
            &[
                &uuid::Uuid::new_v4().to_string(),
                hook,
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

const HOOK_COLUMNS: &str = "w.id, u.name, o.slug, w.url, w.events, w.created_at, c.name, w.active
     FROM webhooks w
     LEFT JOIN users u ON u.id = w.owner_user_id
     LEFT JOIN orgs o ON o.id = w.owner_org_id
     LEFT JOIN users c ON c.id = w.created_by";

fn hook_from_row(row: &Row) -> WebhookRow {
    WebhookRow {
        id: row.get(0),
        owner_user: row.get(1),
        owner_org: row.get(2),
        url: row.get(3),
        events: serde_json::from_str(row.get(4)).unwrap_or_default(),
        created_at: row.get(5),
        created_by: row.get(6),
        active: row.get(7),
    }
}

async fn find(db: &impl GenericClient, id: i64) -> Result<Option<WebhookRow>, StoreError> {
    let sql = format!("SELECT {HOOK_COLUMNS} WHERE w.id = $1");
    Ok(db
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(hook_from_row))
}

/// A hook's owner as its columns `(owner_user_id, owner_org_id)`: exactly one is set.
type OwnerIds = (Option<i64>, Option<i64>);

/// The ids of a hook's owner, as `(owner_user_id, owner_org_id)`, locked against deletion until
/// the transaction ends; `None` when there is no such user or org.
async fn owner_ids(tx: &Transaction<'_>, owner: &Owner) -> Result<Option<OwnerIds>, StoreError> {
    Ok(match owner {
        Owner::User(name) => tx
            .query_opt(
                "SELECT id FROM users WHERE name = $1 FOR KEY SHARE",
                &[name],
            )
            .await?
            .map(|row| (Some(row.get(0)), None)),
        Owner::Org(slug) => tx
            .query_opt("SELECT id FROM orgs WHERE slug = $1 FOR KEY SHARE", &[slug])
            .await?
            .map(|row| (None, Some(row.get(0)))),
    })
}

#[async_trait::async_trait]
impl crate::store::WebhookStore for super::Postgres {
    async fn create_webhook(
        &self,
        hook: NewWebhook,
        event: EventFor<WebhookRow>,
    ) -> Result<HookCreated, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let Some((owner_user_id, owner_org_id)) = owner_ids(&tx, &hook.owner).await? else {
            return Ok(HookCreated::NoSuchOwner);
        };
        let id: i64 = tx
            .query_one(
                "INSERT INTO webhooks (owner_user_id, owner_org_id, url, events,
                                       secret_ciphertext, secret_nonce, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &owner_user_id,
                    &owner_org_id,
                    &hook.url,
                    &serde_json::to_string(&hook.events)?,
                    &hook.secret.ciphertext,
                    &hook.secret.nonce,
                    &hook.now,
                    &hook.created_by,
                ],
            )
            .await?
            .get(0);
        let sql = format!("SELECT {HOOK_COLUMNS} WHERE w.id = $1");
        let row = hook_from_row(&tx.query_one(&sql, &[&id]).await?);
        super::events::record(&tx, &event(&row)).await?;
        tx.commit().await?;
        Ok(HookCreated::Created(row))
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {HOOK_COLUMNS} WHERE w.active ORDER BY w.id");
        Ok(client
            .query(&sql, &[])
            .await?
            .iter()
            .map(hook_from_row)
            .collect())
    }

    async fn delete_webhook(
        &self,
        id: i64,
        now: i64,
        event: EventFor<WebhookRow>,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // The update is the check: of two concurrent deletes, the second finds it inactive.
        let deactivated = tx
            .execute(
                "UPDATE webhooks SET active = FALSE WHERE id = $1 AND active",
                &[&id],
            )
            .await?;
        if deactivated == 0 {
            return Ok(false);
        }
        let Some(hook) = find(&*tx, id).await? else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
                    claimed_until = NULL, updated_at = $2
             WHERE webhook_id = $1 AND status = 'pending'",
            &[&id, &now],
        )
        .await?;
        super::events::record(&tx, &event(&hook)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        limit: u32,
        offset: u32,
        now: i64,
    ) -> Result<Option<(Vec<DeliveryRow>, i64)>, StoreError> {
        let client = self.pool().get().await?;
        if find(&**client, webhook_id).await?.is_none() {
            return Ok(None);
        }
        let found = outbox::deliveries(&client, webhook_id, limit, offset, now).await?;
        Ok(Some(found))
    }

    async fn redeliver(
        &self,
        delivery_id: &str,
        now: i64,
        event: EventFor<DeliveryRow>,
    ) -> Result<Requeue, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let outcome = outbox::requeue(&tx, delivery_id, now).await?;
        if let Requeue::Queued(queued) = &outcome {
            super::events::record(&tx, &event(queued)).await?;
            tx.commit().await?;
        }
        Ok(outcome)
    }

    async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let client = self.pool().get().await?;
        outbox::claim_due(&client, now, lease_until, limit).await
    }

    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        let client = self.pool().get().await?;
        outbox::next_due(&client).await
    }

    async fn record_delivery_attempt(
        &self,
        delivery_id: &str,
        attempt: AttemptRow,
        after: AfterAttempt,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        outbox::record_attempt(&tx, delivery_id, &attempt, after, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
