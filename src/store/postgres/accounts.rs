//! PostgreSQL queries for the accounts part of the store seam.

#[async_trait::async_trait]
impl crate::store::AccountStore for super::Postgres {}
