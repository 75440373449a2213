//! Attestations of versions on PostgreSQL.

use super::Postgres;
use super::packages::rows;
use crate::store::StoreError;
use crate::store::attestations::{AttestationStore, StoredAttestation};

#[async_trait::async_trait]
impl AttestationStore for Postgres {
    async fn attestations(
        &self,
        package: &str,
        version: &str,
    ) -> Result<Vec<StoredAttestation>, StoreError> {
        let client = self.pool().get().await?;
        Ok(rows(
            &client,
            "SELECT predicate_type, bundle FROM version_attestations
             WHERE package = $1 AND version = $2 ORDER BY predicate_type",
            &[&package, &version],
        )
        .await?
        .iter()
        .map(|row| StoredAttestation {
            predicate_type: row.get(0),
            bundle: row.get(1),
        })
        .collect())
    }
}
