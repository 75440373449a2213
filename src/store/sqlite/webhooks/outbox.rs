//! The delivery outbox: claiming due deliveries, logging attempts, listing and requeueing.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::StoreError;
use crate::store::webhooks::{AfterAttempt, AttemptRow, DeliveryRow, DueDelivery, Requeue};
use crate::webhooks::Sealed;

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

/// Queues a delivery again, now, whatever its status; its attempts log goes on. Returns it as
/// queued.
pub fn requeue(conn: &Connection, id: &str, now: i64) -> Result<Requeue, StoreError> {
    let found = conn
        .query_row(
            "SELECT w.active, COALESCE(d.claimed_until, 0) > ?2
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?1",
            params![id, now],
            |row| Ok((row.get::<_, bool>(0)?, row.get::<_, bool>(1)?)),
        )
        .optional()?;
    let Some((active, in_flight)) = found else {
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
    let queued = delivery(conn, id, now)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Requeue::Queued(queued))
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
        let Requeue::Queued(queued) = requeue(&conn, &due.id, 7).unwrap() else {
            panic!("not queued again");
        };
        assert_eq!((queued.webhook_id, queued.status.as_str()), (id, "pending"));
        assert_eq!(queued.action, "token.revoked");
        let again = claim_due(&conn, 7, 100, 10).unwrap().remove(0);
        assert_eq!((again.attempts, again.round_start), (1, 1));
        assert!(matches!(
            requeue(&conn, "nope", 7).unwrap(),
            Requeue::NotFound
        ));
        assert!(matches!(
            requeue(&conn, &due.id, 8).unwrap(),
            Requeue::InFlight
        ));
    }
}
