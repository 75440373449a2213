//! Webhooks (SPEC §7): hooks owned by a user or an org, signed JSON deliveries, and a durable
//! retry queue.
//!
//! Deliveries are an outbox: the metadata store queues them with every recorded event, in the same
//! transaction as the change it audits, so a crash can lose neither. The [`Worker`] sends what is
//! due, logs every attempt, and retries failures on the configured schedule.

pub mod schedule;
mod secret;
pub mod signature;
pub mod target;
mod views;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

pub use secret::{Sealed, SecretBox};
pub use target::TargetPolicy;
pub use views::{Attempt, CreatedWebhook, Delivery, Webhook};
pub use worker::Worker;

use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};
use crate::clock;
use crate::store::webhooks::{DeliveryRow, HookCreated, NewWebhook, Requeue, WebhookRow};
use crate::store::{Store, StoreError};

/// The events a hook may subscribe to; other audited actions are never delivered.
pub const EVENTS: [&str; 6] = [
    "package.published",
    "package.unpublished",
    "package.deprecated",
    "dist-tag.changed",
    "token.created",
    "token.revoked",
];

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Input that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// No such hook, delivery, user or org.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something on the server side failed.
    #[error("{0}")]
    Internal(String),
}

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Waits before each retry; N waits allow N + 1 attempts.
    pub retry_schedule: Vec<Duration>,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// The addresses deliveries may reach.
    pub targets: TargetPolicy,
}

/// Who owns a new hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A user, by name.
    User(String),
    /// An org, by slug.
    Org(String),
}

/// The JSON body of a delivery: `{id, event, created, actor, package, org, data}`.
pub fn payload(event: &AuditEvent, event_id: i64, at_ms: i64) -> String {
    json!({
        "id": event_id,
        "event": event.action,
        "created": clock::iso(at_ms),
        "actor": event.actor_name.as_ref().map(|name| json!({ "name": name })),
        "package": event.package,
        "org": event.org,
        "data": event.details,
    })
    .to_string()
}

/// Checks and normalises event names: at least one, each one of [`EVENTS`], in that order.
fn validate_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(WebhookError::Invalid(format!(
            "unknown event `{unknown}`; hooks can subscribe to {}",
            EVENTS.join(", ")
        )));
    }
    let chosen: Vec<String> = EVENTS
        .iter()
        .filter(|name| events.iter().any(|e| e == *name))
        .map(|name| (*name).to_owned())
        .collect();
    if chosen.is_empty() {
        return Err(WebhookError::Invalid(format!(
            "`events` must name at least one of {}",
            EVENTS.join(", ")
        )));
    }
    Ok(chosen)
}

/// Creates, lists and deletes hooks; lists and redelivers deliveries.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    secrets: SecretBox,
    settings: Arc<WebhookSettings>,
}

impl Webhooks {
    /// The webhook service over a metadata store, sealing secrets with `secrets`.
    pub fn new(store: Store, secrets: SecretBox, settings: WebhookSettings) -> Self {
        Self {
            store,
            secrets,
            settings: Arc::new(settings),
        }
    }

    /// A worker that sends due deliveries.
    pub fn worker(&self) -> anyhow::Result<Worker> {
        Worker::new(
            self.store.clone(),
            self.secrets.clone(),
            Arc::clone(&self.settings),
        )
    }

    /// Creates a hook for `owner` (the caller when `None`); returns it with its new secret.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        caller: &Caller,
        url: &str,
        events: &[String],
        owner: Option<Owner>,
    ) -> Result<CreatedWebhook, WebhookError> {
        require_admin(caller)?;
        worker::validate_url(url, &self.settings.targets)?;
        let events = validate_events(events)?;
        let owner = owner.unwrap_or_else(|| Owner::User(caller.name.clone()));
        let secret = secret::generate();
        let sealed = self.secrets.seal(&secret).map_err(WebhookError::Internal)?;
        let hook = NewWebhook {
            owner: owner.clone(),
            url: url.to_owned(),
            events: events.clone(),
            secret: sealed,
            created_by: caller.user_id,
            now: clock::now_ms(),
        };
        let (caller, event_owner) = (caller.clone(), owner.clone());
        let event = move |row: &WebhookRow| {
            let (owner_json, org) = match &event_owner {
                Owner::User(name) => (json!({ "user": name }), None),
                Owner::Org(slug) => (json!({ "org": slug }), Some(slug)),
            };
            let details = json!({
                "webhook_id": row.id, "url": row.url, "events": events, "owner": owner_json,
            });
            let event = AuditEvent::by(&caller, "webhook.created", details);
            match org {
                Some(slug) => event.on_org(slug),
                None => event,
            }
        };
        let row = match self.store.create_webhook(hook, Box::new(event)).await? {
            HookCreated::Created(row) => row,
            HookCreated::NoSuchOwner => return Err(no_such_owner(&owner)),
        };
        tracing::info!(webhook = row.id, "webhook created");
        Ok(CreatedWebhook {
            webhook: row.into(),
            secret,
        })
    }

    /// Every hook not deleted.
    pub async fn list(&self) -> Result<Vec<Webhook>, WebhookError> {
        let rows = self.store.list_webhooks().await?;
        Ok(rows.into_iter().map(Webhook::from).collect())
    }

    /// Deletes a hook; its pending deliveries are marked failed, its log is kept.
    pub async fn delete(&self, caller: &Caller, id: i64) -> Result<(), WebhookError> {
        require_admin(caller)?;
        let caller = caller.clone();
        let event = move |hook: &WebhookRow| {
            let details = json!({ "webhook_id": hook.id, "url": hook.url });
            let event = AuditEvent::by(&caller, "webhook.deleted", details);
            match &hook.owner_org {
                Some(slug) => event.on_org(slug),
                None => event,
            }
        };
        let deleted = self
            .store
            .delete_webhook(id, clock::now_ms(), Box::new(event))
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(not_found_hook(id))
        }
    }

    /// A hook's deliveries, newest first, with every attempt, and the total count.
    pub async fn deliveries(
        &self,
        id: i64,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<Delivery>, i64), WebhookError> {
        let found = self
            .store
            .webhook_deliveries(id, limit, offset, clock::now_ms())
            .await?;
        let (rows, total) = found.ok_or_else(|| not_found_hook(id))?;
        Ok((rows.into_iter().map(Delivery::from).collect(), total))
    }

    /// Queues a delivery again, due now, with a fresh retry schedule.
    pub async fn redeliver(&self, caller: &Caller, id: &str) -> Result<Delivery, WebhookError> {
        require_admin(caller)?;
        let caller = caller.clone();
        let event = move |delivery: &DeliveryRow| {
            let details = json!({
                "webhook_id": delivery.webhook_id, "delivery_id": delivery.id,
                "event": delivery.action,
            });
            AuditEvent::by(&caller, "webhook.redelivered", details)
        };
        match self
            .store
            .redeliver(id, clock::now_ms(), Box::new(event))
            .await?
        {
            Requeue::Queued(row) => Ok(Delivery::from(row)),
            Requeue::NotFound => Err(WebhookError::NotFound(format!("no delivery {id}"))),
            Requeue::HookDeleted => Err(WebhookError::Conflict(format!(
                "delivery {id} belongs to a deleted webhook; create a new hook instead"
            ))),
            Requeue::InFlight => Err(WebhookError::Conflict(format!(
                "delivery {id} is being sent right now; look at its attempts in a moment"
            ))),
        }
    }
}

fn no_such_owner(owner: &Owner) -> WebhookError {
    WebhookError::NotFound(match owner {
        Owner::User(name) => {
            format!("no user named {name}; create the account before its webhook")
        }
        Owner::Org(slug) => {
            format!("no org named {slug}; create it with POST /api/v1/admin/orgs first")
        }
    })
}

fn require_admin(caller: &Caller) -> Result<(), WebhookError> {
    caller
        .require(Permission::Admin)
        .map_err(|e| WebhookError::Forbidden(e.to_string()))
}

fn not_found_hook(id: i64) -> WebhookError {
    WebhookError::NotFound(format!(
        "no webhook {id}; GET /api/v1/admin/webhooks lists them"
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn events_are_checked_deduplicated_and_ordered() {
        let events = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            validate_events(&events(&[
                "token.revoked",
                "package.published",
                "token.revoked"
            ]))
            .unwrap(),
            events(&["package.published", "token.revoked"])
        );
        assert!(validate_events(&[]).is_err());
        let err = validate_events(&events(&["user.login"])).unwrap_err();
        assert!(err.to_string().contains("package.published"), "{err}");
    }

    #[test]
    fn the_payload_names_the_event_actor_package_and_details() {
        let event = AuditEvent {
            action: "dist-tag.changed",
            actor_id: Some(3),
            actor_name: Some("alice".into()),
            token_id: Some("t1".into()),
            ip: Some("127.0.0.1".into()),
            request_id: None,
            package: Some("@acme/widget".into()),
            org: None,
            details: json!({ "tag": "beta", "version": "1.0.0" }),
        };
        let body: Value = serde_json::from_str(&payload(&event, 42, 0)).unwrap();
        assert_eq!(
            body,
            json!({
                "id": 42, "event": "dist-tag.changed", "created": "1970-01-01T00:00:00.000Z",
                "actor": { "name": "alice" }, "package": "@acme/widget", "org": null,
                "data": { "tag": "beta", "version": "1.0.0" },
            })
        );
    }
}
