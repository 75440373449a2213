//! Queries on `webhooks`; the delivery outbox (`webhook_deliveries`, `webhook_attempts`) is in
//! [`outbox`].

mod outbox;

use rusqlite::{Connection, OptionalExtension, Row, params};

pub use crate::store::webhooks::{
    AfterAttempt, AttemptRow, DeliveryRow, DueDelivery, EventFor, HookCreated, NewWebhook, Requeue,
    WebhookRow,
};
pub use outbox::{claim_due, deliveries, next_due, record_attempt, requeue};

use super::events;
use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::webhooks::{self, EVENTS, Owner};

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

/// A hook's owner as its columns `(owner_user_id, owner_org_id)`: exactly one is set.
type OwnerIds = (Option<i64>, Option<i64>);

/// The ids of a hook's owner, as `(owner_user_id, owner_org_id)`; `None` when there is no such
/// user or org.
pub fn owner_ids(conn: &Connection, owner: &Owner) -> Result<Option<OwnerIds>, StoreError> {
    Ok(match owner {
        Owner::User(name) => conn
            .query_row("SELECT id FROM users WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?
            .map(|id| (Some(id), None)),
        Owner::Org(slug) => conn
            .query_row("SELECT id FROM orgs WHERE slug = ?1", [slug], |row| {
                row.get(0)
            })
            .optional()?
            .map(|id| (None, Some(id))),
    })
}

/// Inserts a hook for the owner with these ids; returns its id.
pub fn insert(
    conn: &Connection,
    (owner_user_id, owner_org_id): OwnerIds,
    hook: &NewWebhook,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO webhooks (owner_user_id, owner_org_id, url, events, secret_ciphertext,
                               secret_nonce, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            owner_user_id,
            owner_org_id,
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
/// the org. Only the webhook events ([`EVENTS`]) are delivered. Maintainers are looked up as the
/// transaction sees them, so a change that removes them (a whole-package unpublish) records its
/// event before removing them.
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

#[async_trait::async_trait]
impl crate::store::WebhookStore for super::Sqlite {
    async fn create_webhook(
        &self,
        hook: NewWebhook,
        event: EventFor<WebhookRow>,
    ) -> Result<HookCreated, StoreError> {
        self.write(move |tx| {
            let Some(owner) = owner_ids(tx, &hook.owner)? else {
                return Ok(HookCreated::NoSuchOwner);
            };
            let id = insert(tx, owner, &hook)?;
            let row = find(tx, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            events::record(tx, &event(&row))?;
            Ok(HookCreated::Created(row))
        })
        .await
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        self.read(list).await
    }

    async fn delete_webhook(
        &self,
        id: i64,
        now: i64,
        event: EventFor<WebhookRow>,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| {
            if !deactivate(tx, id, now)? {
                return Ok(false);
            }
            let hook = find(tx, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            events::record(tx, &event(&hook))?;
            Ok(true)
        })
        .await
    }

    async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        limit: u32,
        offset: u32,
        now: i64,
    ) -> Result<Option<(Vec<DeliveryRow>, i64)>, StoreError> {
        self.read(move |conn| {
            if find(conn, webhook_id)?.is_none() {
                return Ok(None);
            }
            deliveries(conn, webhook_id, limit, offset, now).map(Some)
        })
        .await
    }

    async fn redeliver(
        &self,
        delivery_id: &str,
        now: i64,
        event: EventFor<DeliveryRow>,
    ) -> Result<Requeue, StoreError> {
        let delivery_id = delivery_id.to_owned();
        self.write(move |tx| {
            let outcome = requeue(tx, &delivery_id, now)?;
            if let Requeue::Queued(row) = &outcome {
                events::record(tx, &event(row))?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.write(move |tx| claim_due(tx, now, lease_until, limit))
            .await
    }

    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(next_due).await
    }

    async fn record_delivery_attempt(
        &self,
        delivery_id: &str,
        attempt: AttemptRow,
        after: AfterAttempt,
        now: i64,
    ) -> Result<(), StoreError> {
        let delivery_id = delivery_id.to_owned();
        self.write(move |tx| record_attempt(tx, &delivery_id, &attempt, after, now))
            .await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::webhooks::Sealed;

    pub(super) fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::sqlite::SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, name, role, created_at) VALUES
                 (1, 'alice', 'maintainer', 0), (2, 'bob', 'maintainer', 0);
             INSERT INTO orgs (id, slug, display_name, created_at) VALUES (1, 'acme', 'Acme', 0);
             INSERT INTO packages (name, created_at, modified_at) VALUES ('left-pad', 0, 0);
             INSERT INTO maintainers (package, user_id) VALUES ('left-pad', 2);",
        )
        .unwrap();
        conn
    }

    pub(super) fn hook(
        conn: &Connection,
        user: Option<i64>,
        org: Option<i64>,
        events: &[&str],
    ) -> i64 {
        insert(
            conn,
            (user, org),
            &NewWebhook {
                owner: Owner::User("unused: the ids are given".into()),
                url: "http://127.0.0.1:1/hook".into(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                secret: Sealed {
                    ciphertext: vec![1, 2, 3],
                    nonce: vec![0; 12],
                },
                created_by: 1,
                now: 0,
            },
        )
        .unwrap()
    }

    pub(super) fn event(action: &'static str, actor: i64, package: Option<&str>) -> AuditEvent {
        AuditEvent {
            action,
            actor_id: Some(actor),
            actor_name: None,
            token_id: None,
            ip: None,
            request_id: None,
            package: package.map(str::to_owned),
            org: None,
            details: json!({}),
        }
    }

    /// Records `event` as the audit log does; returns the hooks that got a delivery.
    pub(super) fn hooks_reached(conn: &Connection, event: &AuditEvent) -> Vec<i64> {
        let id = events::record(conn, event).unwrap();
        let mut stmt = conn
            .prepare("SELECT webhook_id FROM webhook_deliveries WHERE event_id = ?1 ORDER BY 1")
            .unwrap();
        stmt.query_map([id], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn deliveries_go_to_the_actor_the_maintainers_and_the_scope_org() {
        let conn = db();
        let alice = hook(&conn, Some(1), None, &["package.published"]);
        let bob = hook(&conn, Some(2), None, &["package.published"]);
        let acme = hook(&conn, None, Some(1), &["package.published"]);
        let published = |package| event("package.published", 1, Some(package));
        assert_eq!(hooks_reached(&conn, &published("left-pad")), [alice, bob]);
        assert_eq!(
            hooks_reached(&conn, &published("@acme/widget")),
            [alice, acme]
        );
        assert_eq!(
            hooks_reached(&conn, &event("package.published", 2, Some("@acmex/w"))),
            [bob]
        );
    }

    #[test]
    fn only_subscribed_webhook_events_are_queued_and_deleted_hooks_get_nothing() {
        let conn = db();
        let tokens = hook(&conn, Some(1), None, &["token.created"]);
        assert!(hooks_reached(&conn, &event("package.published", 1, None)).is_empty());
        assert!(hooks_reached(&conn, &event("user.login", 1, None)).is_empty());
        assert_eq!(
            hooks_reached(&conn, &event("token.created", 1, None)),
            [tokens]
        );
        assert!(deactivate(&conn, tokens, 1).unwrap());
        assert!(!deactivate(&conn, tokens, 1).unwrap());
        assert!(hooks_reached(&conn, &event("token.created", 1, None)).is_empty());
    }
}
