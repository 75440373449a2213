//! PostgreSQL queries for the logins part of the store seam.

#[async_trait::async_trait]
impl crate::store::LoginStore for super::Postgres {}
