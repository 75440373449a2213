//! PostgreSQL queries for the orgs part of the store seam.

#[async_trait::async_trait]
impl crate::store::OrgStore for super::Postgres {}
