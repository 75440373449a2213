//! Attestations of versions on PostgreSQL.

use deadpool_postgres::GenericClient;

use super::Postgres;
use super::packages::{exec, rows};
use crate::store::StoreError;
use crate::store::attestations::{AttestationStore, StoredAttestation};
use crate::store::packages::NewVersion;

/// Inserts the bundles of a version being published, inside its transaction.
pub async fn insert<C: GenericClient>(client: &C, new: &NewVersion) -> Result<(), StoreError> {
    for attestation in &new.attestations {
        exec(
            client,
            "INSERT INTO version_attestations (package, version, predicate_type, bundle)
             VALUES ($1, $2, $3, $4)",
            &[
                &new.package,
                &new.row.version,
                &attestation.predicate_type,
                &attestation.bundle,
            ],
        )
        .await?;
    }
    Ok(())
}

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
