//! PostgreSQL queries for webhooks and their outbox.
//!
//! Several instances may share the database, each with its delivery worker: a due delivery is
//! claimed by one statement that locks the rows it takes and skips rows another worker holds
//! (`FOR UPDATE SKIP LOCKED`), so each delivery goes to exactly one worker until its claim lapses.

use std::collections::HashMap;

use tokio_postgres::{GenericClient, Row, Transaction};

use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::store::webhooks::{
    AfterAttempt, AttemptRow, DeliveryRow, DueDelivery, EventFor, HookCreated, NewWebhook, Requeue,
    WebhookRow,
};
use crate::webhooks::{self, EVENTS, Owner, Sealed};

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

/// A stored count (attempts) as the core counts it.
fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, action, status, next_attempt_at,
     claimed_until, created_at, updated_at FROM webhook_deliveries";

fn delivery_from_row(row: &Row, now: i64) -> DeliveryRow {
    let claimed_until: Option<i64> = row.get(6);
    DeliveryRow {
        id: row.get(0),
        webhook_id: row.get(1),
        event_id: row.get(2),
        action: row.get(3),
        status: row.get(4),
        next_attempt_at: row.get(5),
        in_flight: claimed_until.is_some_and(|until| until > now),
        created_at: row.get(7),
        updated_at: row.get(8),
        attempts: Vec::new(),
    }
}

/// Fills in the attempts of `deliveries`, in one query.
async fn with_attempts(
    db: &impl GenericClient,
    mut deliveries: Vec<DeliveryRow>,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    let rows = db
        .query(
            "SELECT delivery_id, attempt, at, http_status, error, duration_ms
             FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY attempt, id",
            &[&ids],
        )
        .await?;
    let mut by_delivery: HashMap<String, Vec<AttemptRow>> = HashMap::new();
    for row in rows {
        let http_status: Option<i64> = row.get(3);
        by_delivery.entry(row.get(0)).or_default().push(AttemptRow {
            attempt: count(row.get(1)),
            at: row.get(2),
            http_status: http_status.and_then(|status| u16::try_from(status).ok()),
            error: row.get(4),
            duration_ms: row.get(5),
        });
    }
    for delivery in &mut deliveries {
        delivery.attempts = by_delivery.remove(&delivery.id).unwrap_or_default();
    }
    Ok(deliveries)
}

async fn delivery(
    db: &impl GenericClient,
    id: &str,
    now: i64,
) -> Result<Option<DeliveryRow>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} WHERE id = $1");
    let Some(row) = db.query_opt(&sql, &[&id]).await? else {
        return Ok(None);
    };
    Ok(with_attempts(db, vec![delivery_from_row(&row, now)])
        .await?
        .pop())
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
        let Some(hook) = find(&*tx, id).await?.filter(|_| deactivated == 1) else {
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
        let client: &tokio_postgres::Client = &client;
        if find(client, webhook_id).await?.is_none() {
            return Ok(None);
        }
        let total: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1",
                &[&webhook_id],
            )
            .await?
            .get(0);
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} WHERE webhook_id = $1
             ORDER BY created_at DESC, event_id DESC LIMIT $2 OFFSET $3"
        );
        let rows = client
            .query(&sql, &[&webhook_id, &i64::from(limit), &i64::from(offset)])
            .await?
            .iter()
            .map(|row| delivery_from_row(row, now))
            .collect();
        Ok(Some((with_attempts(client, rows).await?, total)))
    }

    async fn redeliver(
        &self,
        delivery_id: &str,
        now: i64,
        event: EventFor<DeliveryRow>,
    ) -> Result<Requeue, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // The row lock makes "not in flight" hold until the update: a claimer skips the row
        // meanwhile, and a claim committed first is seen here.
        let found = tx
            .query_opt(
                "SELECT w.active, COALESCE(d.claimed_until, 0) > $2
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = $1 FOR UPDATE OF d",
                &[&delivery_id, &now],
            )
            .await?;
        let Some(found) = found else {
            return Ok(Requeue::NotFound);
        };
        if !found.get::<_, bool>(0) {
            return Ok(Requeue::HookDeleted);
        }
        if found.get::<_, bool>(1) {
            return Ok(Requeue::InFlight);
        }
        tx.execute(
            "UPDATE webhook_deliveries
             SET status = 'pending', round_start = attempts, next_attempt_at = $2,
                 claimed_until = NULL, updated_at = $2
             WHERE id = $1",
            &[&delivery_id, &now],
        )
        .await?;
        let Some(queued) = delivery(&*tx, delivery_id, now).await? else {
            return Ok(Requeue::NotFound);
        };
        super::events::record(&tx, &event(&queued)).await?;
        tx.commit().await?;
        Ok(Requeue::Queued(queued))
    }

    async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let client = self.pool().get().await?;
        // One statement: the rows it picks are locked as they are picked, rows another worker
        // is claiming are skipped, and a claim committed meanwhile is re-checked on the row.
        let mut rows = client
            .query(
                "WITH due AS (
                     SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.status = 'pending' AND d.next_attempt_at <= $1
                       AND (d.claimed_until IS NULL OR d.claimed_until <= $1) AND w.active
                     ORDER BY d.next_attempt_at, d.created_at
                     LIMIT $3
                     FOR UPDATE OF d SKIP LOCKED)
                 UPDATE webhook_deliveries d SET claimed_until = $2
                 FROM due, webhooks w
                 WHERE d.id = due.id AND w.id = d.webhook_id
                 RETURNING d.id, w.url, w.secret_ciphertext, w.secret_nonce, d.action,
                           d.event_id, d.payload, d.attempts, d.round_start,
                           d.next_attempt_at, d.created_at",
                &[&now, &lease_until, &i64::from(limit)],
            )
            .await?;
        rows.sort_by_key(|row| (row.get::<_, i64>(9), row.get::<_, i64>(10)));
        Ok(rows
            .iter()
            .map(|row| DueDelivery {
                id: row.get(0),
                url: row.get(1),
                secret: Sealed {
                    ciphertext: row.get(2),
                    nonce: row.get(3),
                },
                action: row.get(4),
                event_id: row.get(5),
                payload: row.get(6),
                attempts: count(row.get(7)),
                round_start: count(row.get(8)),
            })
            .collect())
    }

    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        let client = self.pool().get().await?;
        Ok(client
            .query_one(
                "SELECT MIN(GREATEST(d.next_attempt_at, COALESCE(d.claimed_until, 0)))
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.status = 'pending' AND w.active",
                &[],
            )
            .await?
            .get(0))
    }

    async fn record_delivery_attempt(
        &self,
        delivery_id: &str,
        attempt: AttemptRow,
        after: AfterAttempt,
        now: i64,
    ) -> Result<(), StoreError> {
        let (status, next) = match after {
            AfterAttempt::Delivered => ("delivered", None),
            AfterAttempt::RetryAt(at) => ("pending", Some(at)),
            AfterAttempt::Failed => ("failed", None),
        };
        let number = i64::from(attempt.attempt);
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, error,
                                           duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &delivery_id,
                &number,
                &attempt.at,
                &attempt.http_status.map(i64::from),
                &attempt.error,
                &attempt.duration_ms,
            ],
        )
        .await?;
        tx.execute(
            "UPDATE webhook_deliveries
             SET attempts = GREATEST(attempts, $2), status = $3, next_attempt_at = $4,
                 claimed_until = NULL, updated_at = $5
             WHERE id = $1",
            &[&delivery_id, &number, &status, &next, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
