//! PostgreSQL queries for the tokens part of the store seam.

#[async_trait::async_trait]
impl crate::store::TokenStore for super::Postgres {}
