//! Packr's integration tests, in one binary: the real server on an ephemeral port, driven by raw
//! HTTP (`protocol`), by real npm 11, pnpm 10, yarn 1 and yarn 4 processes, and through the
//! `packr` command line.

// Tests report failures by panicking; clippy.toml's allow-*-in-tests covers `#[test]` bodies but not
// the helpers they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod blob_store;
mod cli_contract;
mod npm_client;
mod oauth;
mod orgs;
mod pnpm_client;
mod protocol;
mod security_bodies;
mod support;
mod tokens;
mod web_login;
mod webhooks;
mod yarn_client;
mod yarn_login;
