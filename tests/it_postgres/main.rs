//! Packr's integration suite again, with every server on PostgreSQL and S3: the same test
//! modules as `tests/it`, compiled a second time with [`METADATA`] set to PostgreSQL. The store
//! contract suites (`tests/it/store_*.rs`) already run on both stores and are not repeated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../it/advisories.rs"]
mod advisories;
#[path = "../it/fly_replay.rs"]
mod fly_replay;
#[path = "../it/memory.rs"]
mod memory;
#[path = "../it/namespace.rs"]
mod namespace;
#[path = "../it/npm_client.rs"]
mod npm_client;
#[path = "../it/oauth.rs"]
mod oauth;
#[path = "../it/orgs.rs"]
mod orgs;
#[path = "../it/packument_misses.rs"]
mod packument_misses;
#[path = "../it/pnpm_client.rs"]
mod pnpm_client;
#[path = "../it/properties.rs"]
mod properties;
#[path = "../it/protocol.rs"]
mod protocol;
#[path = "../it/provenance.rs"]
mod provenance;
#[path = "../it/security_accounts.rs"]
mod security_accounts;
#[path = "../it/security_authz.rs"]
mod security_authz;
#[path = "../it/security_bodies.rs"]
mod security_bodies;
#[path = "../it/security_edge.rs"]
mod security_edge;
#[path = "../it/security_packages.rs"]
mod security_packages;
#[path = "../it/security_store.rs"]
mod security_store;
#[path = "../it/security_webhooks.rs"]
mod security_webhooks;
#[path = "../it/signatures.rs"]
mod signatures;
#[path = "../it/staging.rs"]
mod staging;
#[path = "../it/stored_renderings.rs"]
mod stored_renderings;
#[path = "../it/support/mod.rs"]
// Shared with `tests/it`, which uses parts this binary does not.
#[allow(dead_code, unused_macros, unused_imports)]
mod support;
#[path = "../it/tokens.rs"]
mod tokens;
#[path = "../it/trusted_publishing.rs"]
mod trusted_publishing;
#[path = "../it/web_login.rs"]
mod web_login;
#[path = "../it/webhooks.rs"]
mod webhooks;
#[path = "../it/yarn_client.rs"]
mod yarn_client;
#[path = "../it/yarn_login.rs"]
mod yarn_login;

/// The metadata store this binary's servers run on.
const METADATA: support::server::Metadata = support::server::Metadata::Postgres;
