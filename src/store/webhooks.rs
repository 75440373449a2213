//! The webhooks part of the metadata store seam. Webhooks and their outbox: hooks, deliveries, attempts, claiming due deliveries.

/// Webhooks and their outbox operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {}
