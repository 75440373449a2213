//! Packr's integration tests, in one binary: the real server on an ephemeral port, driven by raw
//! HTTP (`protocol`), by real npm 11, pnpm 10, yarn 1 and yarn 4 processes, and through the
//! `packr` command line.

// Tests report failures by panicking; clippy.toml's allow-*-in-tests covers `#[test]` bodies but not
// the helpers they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod advisories;
mod blob_claims;
mod blob_store;
mod cli_contract;
mod cluster;
mod fly_replay;
mod helm_chart;
mod memory;
mod migrate_store;
mod namespace;
mod npm_client;
mod oauth;
mod orgs;
mod packument_cache;
mod packument_misses;
mod pnpm_client;
mod postgres_migrate;
mod properties;
mod protocol;
mod provenance;
mod replicas;
mod security_accounts;
mod security_authz;
mod security_bodies;
mod security_edge;
mod security_packages;
mod security_store;
mod security_webhooks;
mod signatures;
mod staging;
mod store_accounts;
mod store_advisories;
mod store_attestations;
mod store_audit;
mod store_changes;
mod store_keys;
mod store_logins;
mod store_orgs;
mod store_packages;
mod store_renderings;
mod store_stages;
mod store_tokens;
mod store_trust;
mod store_webhooks;
mod stored_renderings;
mod support;
mod tokens;
mod trusted_publishing;
mod web_login;
mod webhooks;
mod yarn_client;
mod yarn_login;

/// The metadata store this binary's servers run on.
const METADATA: support::server::Metadata = support::server::Metadata::Sqlite;
