//! The delivery outbox: claiming due deliveries, logging attempts, listing and requeueing.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::StoreError;
use crate::webhooks::Sealed;

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

#[cfg(test)]
mod tests {
    use super::super::tests::{db, event, hook, hooks_reached};
    use super::*;

    #[test]
    fn a_claimed_delivery_is_not_claimed_again_until_its_lease_lapses() {
        let conn = db();
        hook(&conn, Some(1), None, &["token.revoked"]);
        hooks_reached(&conn, &event("token.revoked", 1, None));
        let now = crate::clock::now_ms();
        let claimed = claim_due(&conn, now, now + 1000, 10).unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(claim_due(&conn, now, now + 1000, 10).unwrap().is_empty());
        assert_eq!(next_due(&conn).unwrap(), Some(now + 1000));
        assert_eq!(
            claim_due(&conn, now + 1000, now + 2000, 10).unwrap().len(),
            1
        );
    }

    #[test]
    fn attempts_are_logged_and_a_redelivery_starts_a_new_round() {
        let conn = db();
        let id = hook(&conn, Some(1), None, &["token.revoked"]);
        hooks_reached(&conn, &event("token.revoked", 1, None));
        let due = claim_due(&conn, i64::MAX - 1, i64::MAX, 10)
            .unwrap()
            .remove(0);
        let failed = AttemptRow {
            attempt: 1,
            at: 5,
            http_status: Some(500),
            error: Some("the receiver answered 500".into()),
            duration_ms: 3,
        };
        record_attempt(&conn, &due.id, &failed, AfterAttempt::Failed, 6).unwrap();
        let (rows, total) = deliveries(&conn, id, 10, 0, 6).unwrap();
        assert_eq!(total, 1);
        assert_eq!(rows[0].status, "failed");
        assert_eq!(rows[0].attempts, [failed]);
        assert_eq!(
            requeue(&conn, &due.id, 7).unwrap(),
            Requeue::Queued {
                webhook_id: id,
                action: "token.revoked".into()
            }
        );
        let again = claim_due(&conn, 7, 100, 10).unwrap().remove(0);
        assert_eq!((again.attempts, again.round_start), (1, 1));
        assert_eq!(requeue(&conn, "nope", 7).unwrap(), Requeue::NotFound);
        assert_eq!(requeue(&conn, &due.id, 8).unwrap(), Requeue::InFlight);
    }
}
