//! The audit log: one event per mutation, written in the same transaction as the change, with
//! the actor, token, IP and request id that caused it.

use serde::Serialize;
use serde_json::Value;

use crate::auth::{Caller, Origin};
use crate::store::audit::{AuditQuery, AuditRow};
use crate::store::{Store, StoreError};

/// One audited mutation.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// What happened: `package.published`, `token.created`, `org.member.added`...
    pub action: &'static str,
    /// The acting user's id.
    pub actor_id: Option<i64>,
    /// The acting user's name.
    pub actor_name: Option<String>,
    /// The token the actor used.
    pub token_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The package concerned.
    pub package: Option<String>,
    /// The org concerned (slug).
    pub org: Option<String>,
    /// Action-specific details (version, tag, member, ...).
    pub details: Value,
}

impl AuditEvent {
    /// An event caused by an authenticated caller.
    pub fn by(caller: &Caller, action: &'static str, details: Value) -> Self {
        Self {
            action,
            actor_id: Some(caller.user_id),
            actor_name: Some(caller.name.clone()),
            token_id: Some(caller.token_id.clone()),
            ip: caller.origin.ip.clone(),
            request_id: caller.origin.request_id.clone(),
            package: None,
            org: None,
            details,
        }
    }

    /// An event caused by a user who is not (yet) holding a token, e.g. a login.
    pub fn by_user(
        user_id: i64,
        name: &str,
        origin: &Origin,
        action: &'static str,
        details: Value,
    ) -> Self {
        Self {
            action,
            actor_id: Some(user_id),
            actor_name: Some(name.to_owned()),
            token_id: None,
            ip: origin.ip.clone(),
            request_id: origin.request_id.clone(),
            package: None,
            org: None,
            details,
        }
    }

    /// An event caused by the operator outside the server (the `packr` command line on the data
    /// directory), who has no account; `details` names what was changed.
    pub fn by_operator(action: &'static str, details: Value) -> Self {
        Self {
            action,
            actor_id: None,
            actor_name: None,
            token_id: None,
            ip: None,
            request_id: None,
            package: None,
            org: None,
            details,
        }
    }

    /// Names the package concerned.
    pub fn on_package(mut self, package: &str) -> Self {
        self.package = Some(package.to_owned());
        self
    }

    /// Names the org concerned.
    pub fn on_org(mut self, org: &str) -> Self {
        self.org = Some(org.to_owned());
        self
    }
}

/// Reads the audit log.
#[derive(Clone)]
pub struct AuditLog {
    store: Store,
}

impl AuditLog {
    /// The audit log of a metadata store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Records one event on its own (for changes that touch no other table, such as a sign-in).
    pub async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.store.record_events(vec![event]).await
    }

    /// Events matching `query`, newest first, with the total number of matches.
    pub async fn query(&self, query: AuditQuery) -> Result<(Vec<AuditRow>, i64), StoreError> {
        self.store.query_audit_log(query).await
    }
}
