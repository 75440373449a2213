//! The PostgreSQL delivery outbox: claiming due deliveries, logging attempts, listing and
//! requeueing. Several instances may share the database, each with its delivery worker: a due
//! delivery is claimed by one statement that locks the rows it takes and skips rows another
//! worker holds (`FOR UPDATE SKIP LOCKED`), so each delivery goes to one worker until its claim
//! lapses.

use std::collections::HashMap;

use tokio_postgres::{Client, GenericClient, Row, Transaction};

use crate::store::StoreError;
use crate::store::webhooks::{AfterAttempt, AttemptRow, DeliveryRow, DueDelivery, Requeue};
use crate::webhooks::Sealed;

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

pub(super) async fn delivery(
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

/// A hook's deliveries, newest first, with their attempts, and the total count.
pub(super) async fn deliveries(
    client: &Client,
    webhook_id: i64,
    limit: u32,
    offset: u32,
    now: i64,
) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
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
    Ok((with_attempts(client, rows).await?, total))
}

/// Queues a delivery again, now, whatever its status; its attempts log goes on. Returns it as
/// queued.
pub(super) async fn requeue(
    tx: &Transaction<'_>,
    id: &str,
    now: i64,
) -> Result<Requeue, StoreError> {
    // The row lock makes "not in flight" hold until the update: a claimer skips the row
    // meanwhile, and a claim committed first is seen here.
    let found = tx
        .query_opt(
            "SELECT w.active, COALESCE(d.claimed_until, 0) > $2
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.id = $1 FOR UPDATE OF d",
            &[&id, &now],
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
        &[&id, &now],
    )
    .await?;
    Ok(match delivery(tx, id, now).await? {
        Some(queued) => Requeue::Queued(queued),
        None => Requeue::NotFound,
    })
}

/// Claims up to `limit` deliveries due at `now` until `lease_until`, so no other worker sends
/// them meanwhile; a worker that dies lets its claims lapse, and they are sent again.
pub(super) async fn claim_due(
    client: &Client,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<DueDelivery>, StoreError> {
    // One statement: the rows it picks are locked as they are picked, rows another worker is
    // claiming are skipped, and a claim committed meanwhile is re-checked on the locked row.
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
    // RETURNING keeps no order; send the longest due first, as SQLite does.
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

/// When the next pending delivery falls due or its claim lapses (ms), if any.
pub(super) async fn next_due(client: &Client) -> Result<Option<i64>, StoreError> {
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

/// Logs an attempt and moves the delivery on; releases the claim.
pub(super) async fn record_attempt(
    tx: &Transaction<'_>,
    delivery_id: &str,
    attempt: &AttemptRow,
    after: AfterAttempt,
    now: i64,
) -> Result<(), StoreError> {
    let (status, next) = match after {
        AfterAttempt::Delivered => ("delivered", None),
        AfterAttempt::RetryAt(at) => ("pending", Some(at)),
        AfterAttempt::Failed => ("failed", None),
    };
    let number = i64::from(attempt.attempt);
    tx.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, error, duration_ms)
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
    Ok(())
}
