//! Test support: the in-process server, real client processes and package fixtures.

pub mod clients;
pub mod fixtures;
pub mod server;
