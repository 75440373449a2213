//! Attestations of versions on SQLite.

use rusqlite::{Connection, params};

use super::Sqlite;
use crate::store::StoreError;
use crate::store::attestations::{AttestationStore, StoredAttestation};
use crate::store::packages::NewVersion;

/// Inserts the bundles of a version being published, inside its transaction.
pub fn insert(conn: &Connection, new: &NewVersion) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO version_attestations (package, version, predicate_type, bundle)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for attestation in &new.attestations {
        stmt.execute(params![
            new.package,
            new.row.version,
            attestation.predicate_type,
            attestation.bundle
        ])?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl AttestationStore for Sqlite {
    async fn attestations(
        &self,
        package: &str,
        version: &str,
    ) -> Result<Vec<StoredAttestation>, StoreError> {
        let (package, version) = (package.to_owned(), version.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT predicate_type, bundle FROM version_attestations
                 WHERE package = ?1 AND version = ?2 ORDER BY predicate_type",
            )?;
            let rows = stmt.query_map(params![package, version], |row| {
                Ok(StoredAttestation {
                    predicate_type: row.get(0)?,
                    bundle: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
