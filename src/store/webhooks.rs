//! The webhooks part of the metadata store seam: hooks, and their delivery outbox (claiming due
//! deliveries, logging attempts, listing and redelivering). Deliveries are queued by
//! [`crate::store::AuditStore`] and every change's own event recording, in the change's
//! transaction; the rules of who gets what, and when a failure is retried, stay in
//! [`crate::webhooks`].

use super::StoreError;
use crate::audit::AuditEvent;
use crate::webhooks::{Owner, Sealed};

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

/// A hook to create.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Its owner, by name; the store resolves it in the creating transaction.
    pub owner: Owner,
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

/// What creating a hook came to.
#[derive(Debug, Clone)]
pub enum HookCreated {
    /// Created, and its event recorded.
    Created(WebhookRow),
    /// The owning user or org does not exist; nothing was written.
    NoSuchOwner,
}

/// Builds the audit event of a change from the row the change produced (which holds ids only
/// the store assigns); called inside the change's transaction.
pub type EventFor<T> = Box<dyn FnOnce(&T) -> AuditEvent + Send>;

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

/// What a redelivery request came to.
#[derive(Debug, Clone)]
pub enum Requeue {
    /// Queued again, due now, with a fresh retry schedule; its event is recorded.
    Queued(DeliveryRow),
    /// No such delivery.
    NotFound,
    /// Its hook was deleted.
    HookDeleted,
    /// A worker is sending it right now.
    InFlight,
}

/// Webhook and outbox operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates a hook for its owner and records `event` of the new row, in one transaction.
    async fn create_webhook(
        &self,
        hook: NewWebhook,
        event: EventFor<WebhookRow>,
    ) -> Result<HookCreated, StoreError>;

    /// Every hook not deleted, oldest first.
    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>, StoreError>;

    /// Deletes an active hook (it stays, inactive, for its delivery log), fails its pending
    /// deliveries and records `event` of it, in one transaction; false when there is no such
    /// active hook.
    async fn delete_webhook(
        &self,
        id: i64,
        now: i64,
        event: EventFor<WebhookRow>,
    ) -> Result<bool, StoreError>;

    /// A hook's deliveries, newest first, with their attempts, and the total count; `None` when
    /// there is no such hook (deleted ones still have their log).
    async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        limit: u32,
        offset: u32,
        now: i64,
    ) -> Result<Option<(Vec<DeliveryRow>, i64)>, StoreError>;

    /// Queues a delivery again, due `now`, whatever its status (its attempts log goes on), and
    /// records `event` of it, in one transaction.
    async fn redeliver(
        &self,
        delivery_id: &str,
        now: i64,
        event: EventFor<DeliveryRow>,
    ) -> Result<Requeue, StoreError>;

    /// Claims up to `limit` deliveries due at `now` until `lease_until`: no other worker, on this
    /// instance or another, gets them meanwhile. A worker that dies lets its claims lapse, and
    /// they are sent again.
    async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// When the next pending delivery falls due or its claim lapses (ms), if any.
    async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError>;

    /// Logs an attempt and moves the delivery on as `after` says; releases its claim.
    async fn record_delivery_attempt(
        &self,
        delivery_id: &str,
        attempt: AttemptRow,
        after: AfterAttempt,
        now: i64,
    ) -> Result<(), StoreError>;
}
