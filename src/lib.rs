//! Packr: a private package registry that speaks the npm wire protocol.
//!
//! # Layout
//!
//! Dependencies go one way: the edges call the core, and the core calls the stores.
//!
//! - edges: [`cli`] (the `packr` subcommands) and [`npm`] (the npm wire protocol over HTTP);
//!   [`server`] wires them together, [`error`] is the only place that turns failures into HTTP answers,
//!   [`rate_limit`] throttles the login, device-code and token endpoints per client address, and
//!   [`client_ip`] decides that address (the peer, or what a trusted proxy forwarded), and
//!   [`fly_replay`] sends writes that land outside Fly's primary region back there.
//! - core: [`auth`] (who is calling and what they may do) and [`packages`] (the registry's rules:
//!   names, versions, tarballs, publish, dist-tags, packuments). The core never imports axum or hyper.
//!   [`webhooks`] is core too; only its delivery worker speaks HTTP, through [`outbound`].
//!   [`advisories`] (security advisories and the audits npm, pnpm and yarn send) is core as well;
//!   only its upstream forwarding speaks HTTP, through [`outbound`].
//! - [`store`]: the metadata store (SQLite) and the blob store (filesystem). SQL appears only there.
//! - [`config`], [`telemetry`] and [`clock`] are used by all of the above.

pub mod advisories;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod error;
pub mod fly_replay;
pub mod health;
pub mod npm;
pub mod orgs;
pub mod outbound;
pub mod packages;
pub mod rate_limit;
pub mod server;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod trust;
pub mod web;
pub mod webhooks;
