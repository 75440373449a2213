//! Queries on `webhooks`, the delivery outbox `webhook_deliveries`, and `webhook_attempts`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::webhooks::{self, EVENTS, Sealed};

/// A stored hook, with its owner's name; the secret stays in the database.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    /// Database id.
    pub id: i64,
    /// The owning user's name, for a user hook.
    pub owner_user: Option<String>,
    /// The owning org's slug, for an org hook.
    pub owner_org: Option<String>,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The events subscribed to.
    pub events: Vec<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Who created it.
    pub created_by: Option<String>,
    /// False once deleted.
    pub active: bool,
}

/// A hook to insert.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// The owning user (exactly one owner is set).
    pub owner_user_id: Option<i64>,
    /// The owning org.
    pub owner_org_id: Option<i64>,
    /// Target URL.
    pub url: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// The encrypted secret.
    pub secret: Sealed,
    /// The creating user.
    pub created_by: i64,
    /// Creation time (ms).
    pub now: i64,
}

const HOOK_COLUMNS: &str = "w.id, u.name, o.slug, w.url, w.events, w.created_at, c.name, w.active
     FROM webhooks w
     LEFT JOIN users u ON u.id = w.owner_user_id
     LEFT JOIN orgs o ON o.id = w.owner_org_id
     LEFT JOIN users c ON c.id = w.created_by";

fn hook_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookRow> {
    let events: String = row.get(4)?;
    Ok(WebhookRow {
        id: row.get(0)?,
        owner_user: row.get(1)?,
        owner_org: row.get(2)?,
        url: row.get(3)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        created_at: row.get(5)?,
        created_by: row.get(6)?,
        active: row.get(7)?,
    })
}

/// Inserts a hook; returns its id.
pub fn insert(conn: &Connection, hook: &NewWebhook) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO webhooks (owner_user_id, owner_org_id, url, events, secret_ciphertext,
                               secret_nonce, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            hook.owner_user_id,
            hook.owner_org_id,
            hook.url,
            serde_json::to_string(&hook.events)?,
            hook.secret.ciphertext,
            hook.secret.nonce,
            hook.now,
            hook.created_by,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A hook by id, deleted or not.
pub fn find(conn: &Connection, id: i64) -> Result<Option<WebhookRow>, StoreError> {
    let sql = format!("SELECT {HOOK_COLUMNS} WHERE w.id = ?1");
    Ok(conn.query_row(&sql, [id], hook_from_row).optional()?)
}

/// Every hook not deleted, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<WebhookRow>, StoreError> {
    let sql = format!("SELECT {HOOK_COLUMNS} WHERE w.active = 1 ORDER BY w.id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], hook_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes a hook (it stays, inactive, for its delivery log) and fails its pending deliveries;
/// false when there is no such active hook.
pub fn deactivate(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE webhooks SET active = 0 WHERE id = ?1 AND active = 1",
        [id],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    conn.execute(
        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
                claimed_until = NULL, updated_at = ?2
         WHERE webhook_id = ?1 AND status = 'pending'",
        params![id, now],
    )?;
    Ok(true)
}

/// Queues one delivery of the audited event `event_id` to every active hook that wants it.
///
/// A user hook receives the events its user caused, and the events on packages the user
/// maintains. An org hook receives the events on packages under `@<slug>/`, and events naming
/// the org. Only the webhook events ([`EVENTS`]) are delivered.
pub fn enqueue(conn: &Connection, event: &AuditEvent, event_id: i64) -> Result<(), StoreError> {
    if !EVENTS.contains(&event.action) {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT w.id FROM webhooks w
         WHERE w.active = 1
           AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = ?1)
           AND ((w.owner_user_id IS NOT NULL
                 AND (w.owner_user_id = ?2
                      OR EXISTS (SELECT 1 FROM maintainers m
                                 WHERE m.package = ?3 AND m.user_id = w.owner_user_id)))
             OR (w.owner_org_id IS NOT NULL
                 AND EXISTS (SELECT 1 FROM orgs o WHERE o.id = w.owner_org_id
                             AND (o.slug = ?4
                                  OR substr(?3, 1, length(o.slug) + 2) = '@' || o.slug || '/'))))",
    )?;
    let hooks = stmt
        .query_map(
            params![event.action, event.actor_id, event.package, event.org],
            |row| row.get::<_, i64>(0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    if hooks.is_empty() {
        return Ok(());
    }
    let at: i64 = conn.query_row(
        "SELECT at FROM audit_log WHERE id = ?1",
        [event_id],
        |row| row.get(0),
    )?;
    let payload = webhooks::payload(event, event_id, at);
    for hook in hooks {
        conn.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, action, payload,
                                             next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
            params![
                uuid::Uuid::new_v4().to_string(),
                hook,
                event_id,
                event.action,
                payload,
                at
            ],
        )?;
    }
    Ok(())
}

/// A delivery claimed for sending, with what is needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: String,
    /// The hook's URL.
    pub url: String,
    /// The hook's encrypted secret.
    pub secret: Sealed,
    /// Event name.
    pub action: String,
    /// Audit event id.
    pub event_id: i64,
    /// The body to send.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts made before the current round (the last redelivery).
    pub round_start: u32,
}

/// Claims up to `limit` deliveries due at `now` until `lease_until`, so no other worker sends
/// them meanwhile; a worker that dies lets its claims lapse, and they are sent again.
pub fn claim_due(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<DueDelivery>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, w.url, w.secret_ciphertext, w.secret_nonce, d.action, d.event_id,
                d.payload, d.attempts, d.round_start
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
           AND (d.claimed_until IS NULL OR d.claimed_until <= ?1) AND w.active = 1
         ORDER BY d.next_attempt_at, d.created_at
         LIMIT ?2",
    )?;
    let due = stmt
        .query_map(params![now, limit], |row| {
            Ok(DueDelivery {
                id: row.get(0)?,
                url: row.get(1)?,
                secret: Sealed {
                    ciphertext: row.get(2)?,
                    nonce: row.get(3)?,
                },
                action: row.get(4)?,
                event_id: row.get(5)?,
                payload: row.get(6)?,
                attempts: row.get(7)?,
                round_start: row.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut claim =
        conn.prepare_cached("UPDATE webhook_deliveries SET claimed_until = ?2 WHERE id = ?1")?;
    for delivery in &due {
        claim.execute(params![delivery.id, lease_until])?;
    }
    Ok(due)
}

/// When the next pending delivery falls due (ms), if any.
pub fn next_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row(
        "SELECT MIN(max(d.next_attempt_at, COALESCE(d.claimed_until, 0)))
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND w.active = 1",
        [],
        |row| row.get(0),
    )?)
}

/// One attempt to send a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started (ms).
    pub at: i64,
    /// The receiver's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// What went wrong; `None` on success.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// It arrived.
    Delivered,
    /// Try again at this time (ms).
    RetryAt(i64),
    /// The schedule is used up.
    Failed,
}

/// Logs an attempt and moves the delivery on; releases the claim.
pub fn record_attempt(
    conn: &Connection,
    delivery_id: &str,
    attempt: &AttemptRow,
    after: AfterAttempt,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, error, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            delivery_id,
            attempt.attempt,
            attempt.at,
            attempt.http_status,
            attempt.error,
            attempt.duration_ms
        ],
    )?;
    let (status, next) = match after {
        AfterAttempt::Delivered => ("delivered", None),
        AfterAttempt::RetryAt(at) => ("pending", Some(at)),
        AfterAttempt::Failed => ("failed", None),
    };
    conn.execute(
        "UPDATE webhook_deliveries
         SET attempts = max(attempts, ?2), status = ?3, next_attempt_at = ?4,
             claimed_until = NULL, updated_at = ?5
         WHERE id = ?1",
        params![delivery_id, attempt.attempt, status, next, now],
    )?;
    Ok(())
}

/// A delivery with its attempts.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// Delivery id.
    pub id: String,
    /// The hook.
    pub webhook_id: i64,
    /// Audit event id.
    pub event_id: i64,
    /// Event name.
    pub action: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// When the next attempt is due (ms), while pending.
    pub next_attempt_at: Option<i64>,
    /// Whether a worker is sending it now.
    pub in_flight: bool,
    /// Queued at (ms).
    pub created_at: i64,
    /// Last changed at (ms).
    pub updated_at: i64,
    /// Every attempt, first first.
    pub attempts: Vec<AttemptRow>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, action, status, next_attempt_at,
     claimed_until, created_at, updated_at FROM webhook_deliveries";

fn delivery_from_row(row: &Row<'_>, now: i64) -> rusqlite::Result<DeliveryRow> {
    let claimed_until: Option<i64> = row.get(6)?;
    Ok(DeliveryRow {
        id: row.get(0)?,
        webhook_id: row.get(1)?,
        event_id: row.get(2)?,
        action: row.get(3)?,
        status: row.get(4)?,
        next_attempt_at: row.get(5)?,
        in_flight: claimed_until.is_some_and(|until| until > now),
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        attempts: Vec::new(),
    })
}

fn with_attempts(conn: &Connection, mut delivery: DeliveryRow) -> Result<DeliveryRow, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, at, http_status, error, duration_ms FROM webhook_attempts
         WHERE delivery_id = ?1 ORDER BY attempt, id",
    )?;
    delivery.attempts = stmt
        .query_map([&delivery.id], |row| {
            Ok(AttemptRow {
                attempt: row.get(0)?,
                at: row.get(1)?,
                http_status: row.get(2)?,
                error: row.get(3)?,
                duration_ms: row.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(delivery)
}

/// A hook's deliveries, newest first, with their attempts, and the total count.
pub fn deliveries(
    conn: &Connection,
    webhook_id: i64,
    limit: u32,
    offset: u32,
    now: i64,
) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
    let total = conn.query_row(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?1",
        [webhook_id],
        |row| row.get(0),
    )?;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} WHERE webhook_id = ?1
         ORDER BY created_at DESC, event_id DESC LIMIT ?2 OFFSET ?3"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params![webhook_id, limit, offset], |row| {
            delivery_from_row(row, now)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let rows = rows
        .into_iter()
        .map(|row| with_attempts(conn, row))
        .collect::<Result<_, _>>()?;
    Ok((rows, total))
}

/// One delivery with its attempts.
pub fn delivery(conn: &Connection, id: &str, now: i64) -> Result<Option<DeliveryRow>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} WHERE id = ?1");
    conn.query_row(&sql, [id], |row| delivery_from_row(row, now))
        .optional()?
        .map(|row| with_attempts(conn, row))
        .transpose()
}

/// What a redelivery request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    /// Queued again, due now, with a fresh retry schedule.
    Queued {
        /// The hook it belongs to.
        webhook_id: i64,
        /// Its event.
        action: String,
    },
    /// No such delivery.
    NotFound,
    /// Its hook was deleted.
    HookDeleted,
    /// A worker is sending it right now.
    InFlight,
}

/// Queues a delivery again, now, whatever its status; its attempts log goes on.
pub fn requeue(conn: &Connection, id: &str, now: i64) -> Result<Requeue, StoreError> {
    let found = conn
        .query_row(
            "SELECT d.webhook_id, d.action, w.active, COALESCE(d.claimed_until, 0) > ?2
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?1",
            params![id, now],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((webhook_id, action, active, in_flight)) = found else {
        return Ok(Requeue::NotFound);
    };
    if !active {
        return Ok(Requeue::HookDeleted);
    }
    if in_flight {
        return Ok(Requeue::InFlight);
    }
    conn.execute(
        "UPDATE webhook_deliveries
         SET status = 'pending', round_start = attempts, next_attempt_at = ?2,
             claimed_until = NULL, updated_at = ?2
         WHERE id = ?1",
        params![id, now],
    )?;
    Ok(Requeue::Queued { webhook_id, action })
}
