//! The trusted-publishing part of the metadata store seam: which CI identities may publish a
//! package (or every package of an org) without a stored token, and the ID tokens already
//! exchanged, so that one is never exchanged twice.

use serde::Serialize;

use super::StoreError;
use crate::audit::AuditEvent;

/// A trusted publisher: a CI identity (repository and workflow file, or project and pipeline
/// file) allowed to exchange its ID token for a short-lived publish token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedPublisherRow {
    /// Random id, as `npm trust revoke --id` names it.
    pub id: String,
    /// The package it applies to, or `None` for an org-wide one.
    pub package: Option<String>,
    /// The org (slug) whose every package it applies to, or `None` for a package's own.
    pub org: Option<String>,
    /// `github` or `gitlab`.
    pub kind: String,
    /// The claims as npm sends them (JSON object).
    pub claims: serde_json::Value,
    /// `createPackage` and/or `createStagedPackage`.
    pub permissions: Vec<String>,
    /// Who configured it (user id), whose account the exchanged tokens belong to.
    pub created_by: i64,
    /// Creation time (ms).
    pub created_at: i64,
}

/// An ID token being exchanged: the key that may be used once, and what it identified.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The ID token's issuer.
    pub issuer: String,
    /// The ID token's `jti`.
    pub jti: String,
    /// The ID token's expiry (ms): the row may go once it is past.
    pub expires_at: i64,
    /// The package the token was exchanged for.
    pub package: String,
    /// The identity (repository, workflow, ref, run id...) recorded on what the token publishes.
    pub identity: serde_json::Value,
}

/// Trusted-publisher operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait TrustStore: Send + Sync {
    /// Adds trusted publishers with their audit events, in one transaction.
    async fn add_trusted_publishers(
        &self,
        rows: Vec<TrustedPublisherRow>,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError>;

    /// The trusted publishers of one package (its own, not its org's), oldest first.
    async fn package_trusted_publishers(
        &self,
        package: &str,
    ) -> Result<Vec<TrustedPublisherRow>, StoreError>;

    /// The org-wide trusted publishers of an org, oldest first.
    async fn org_trusted_publishers(
        &self,
        org: &str,
    ) -> Result<Vec<TrustedPublisherRow>, StoreError>;

    /// Removes the trusted publisher `id` of `package` (or of `org` when `package` is `None`),
    /// recording `event` with it; `false` when there is none.
    async fn remove_trusted_publisher(
        &self,
        id: &str,
        package: Option<&str>,
        org: Option<&str>,
        event: AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Records an exchange with its audit event unless its `(issuer, jti)` was exchanged
    /// before and has not expired: `false` then (a replay), and nothing is recorded. Rows of
    /// expired ID tokens are dropped on the way, `now` (ms) deciding.
    async fn record_exchange(
        &self,
        exchange: Exchange,
        now: i64,
        event: AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Links a recorded exchange to the publish token issued for it.
    async fn link_exchange(
        &self,
        issuer: &str,
        jti: &str,
        token_id: &str,
    ) -> Result<(), StoreError>;

    /// The identity recorded for the publish token `token_id`, if it came from an exchange.
    async fn exchange_identity(
        &self,
        token_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;
}
