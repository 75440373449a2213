//! What admins see of hooks and deliveries; secrets appear only in [`CreatedWebhook`].

use serde::Serialize;
use serde_json::{Value, json};

use crate::clock;
use crate::store::webhooks::{DeliveryRow, WebhookRow};

/// A hook as shown to admins; never carries the secret.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// Where deliveries go.
    pub url: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// `{"user": name}` or `{"org": slug}`.
    pub owner: Value,
    /// Creation time (ISO-8601).
    pub created: String,
    /// Who created it.
    pub created_by: Option<String>,
    /// False once deleted.
    pub active: bool,
}

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        let owner = match (row.owner_user, row.owner_org) {
            (Some(user), _) => json!({ "user": user }),
            (None, Some(org)) => json!({ "org": org }),
            (None, None) => Value::Null,
        };
        Self {
            id: row.id,
            url: row.url,
            events: row.events,
            owner,
            created: clock::iso(row.created_at),
            created_by: row.created_by,
            active: row.active,
        }
    }
}

/// A delivery and its attempts, as shown to admins.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The delivery id (`X-Packr-Delivery`).
    pub id: String,
    /// The hook.
    pub webhook_id: i64,
    /// The audit event id (`X-Packr-Event-Id`).
    pub event_id: i64,
    /// The event name.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// When the next attempt is due, while pending.
    pub next_attempt: Option<String>,
    /// Whether a worker is sending it right now.
    pub in_flight: bool,
    /// Queued at.
    pub created: String,
    /// Last changed at.
    pub updated: String,
    /// Every attempt, first first.
    pub attempts: Vec<Attempt>,
}

/// One logged attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: u32,
    /// When it started.
    pub at: String,
    /// The receiver's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Self {
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            event: row.action,
            status: row.status,
            next_attempt: row.next_attempt_at.map(clock::iso),
            in_flight: row.in_flight,
            created: clock::iso(row.created_at),
            updated: clock::iso(row.updated_at),
            attempts: row
                .attempts
                .into_iter()
                .map(|a| Attempt {
                    attempt: a.attempt,
                    at: clock::iso(a.at),
                    http_status: a.http_status,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

/// A new hook and its secret, which is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedWebhook {
    /// The hook.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret.
    pub secret: String,
}
