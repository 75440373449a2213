//! Attestations (Sigstore bundles) published with a version: written by
//! [`super::PackageStore::commit_publish`] in the publish's transaction, removed with the version.

use super::StoreError;

/// One stored bundle of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttestation {
    /// The in-toto statement's `predicateType`.
    pub predicate_type: String,
    /// The bundle JSON as published.
    pub bundle: String,
}

/// Reading the attestations of a version.
#[async_trait::async_trait]
pub trait AttestationStore: Send + Sync {
    /// The bundles of `package@version`, ordered by predicate type; empty when it has none or
    /// does not exist.
    async fn attestations(
        &self,
        package: &str,
        version: &str,
    ) -> Result<Vec<StoredAttestation>, StoreError>;
}
