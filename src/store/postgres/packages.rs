//! PostgreSQL queries for the packages part of the store seam.

#[async_trait::async_trait]
impl crate::store::PackageStore for super::Postgres {}
