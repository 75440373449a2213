//! The advisories part of the metadata store seam: security advisories an admin records against
//! versions of a package (what `npm audit` reports), and which package names the registry hosts
//! (what the audit forwarding must never send upstream). Ranges are stored as written; matching
//! them against versions is the core's job ([`crate::advisories`]).

use serde::{Deserialize, Serialize, Serializer};

use super::StoreError;
pub use super::webhooks::EventFor;
use crate::clock;

/// A CVSS rating: the base score and, when known, its vector string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cvss {
    /// Base score, 0.0 to 10.0.
    pub score: f64,
    /// The vector, such as `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`.
    #[serde(rename = "vectorString")]
    pub vector: Option<String>,
}

/// A stored advisory, as the admin API and the command line show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisoryRow {
    /// Database id, also the id npm shows.
    pub id: i64,
    /// The package it concerns.
    pub package: String,
    /// The affected versions, an npm semver range.
    pub vulnerable_versions: String,
    /// The fixed versions, an npm semver range, when a fix exists.
    pub patched_versions: Option<String>,
    /// `low`, `moderate`, `high` or `critical`.
    pub severity: String,
    /// One line saying what is wrong.
    pub title: String,
    /// Where to read more.
    pub url: Option<String>,
    /// CWE ids, such as `CWE-79`.
    pub cwe: Vec<String>,
    /// The CVSS rating, when one was given.
    pub cvss: Option<Cvss>,
    /// Creation time (ms; shown as ISO-8601).
    #[serde(serialize_with = "iso")]
    pub created_at: i64,
    /// Who recorded it (a user name; `None` for the operator's command line).
    pub created_by: Option<String>,
}

fn iso<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&clock::iso(*ms))
}

/// An advisory to record; the store assigns its id.
#[derive(Debug, Clone)]
pub struct NewAdvisory {
    /// The package it concerns.
    pub package: String,
    /// The affected versions.
    pub vulnerable_versions: String,
    /// The fixed versions.
    pub patched_versions: Option<String>,
    /// Severity.
    pub severity: String,
    /// Title.
    pub title: String,
    /// Link.
    pub url: Option<String>,
    /// CWE ids.
    pub cwe: Vec<String>,
    /// CVSS rating.
    pub cvss: Option<Cvss>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Who records it.
    pub created_by: Option<String>,
}

/// Advisory operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait AdvisoryStore: Send + Sync {
    /// Records an advisory and `event` of the new row, in one transaction.
    async fn create_advisory(
        &self,
        advisory: NewAdvisory,
        event: EventFor<AdvisoryRow>,
    ) -> Result<AdvisoryRow, StoreError>;

    /// Every advisory (of `package` only, when given), oldest first.
    async fn list_advisories(
        &self,
        package: Option<String>,
    ) -> Result<Vec<AdvisoryRow>, StoreError>;

    /// Deletes an advisory and records `event` of it, in one transaction; `None` when there is
    /// no such advisory.
    async fn delete_advisory(
        &self,
        id: i64,
        event: EventFor<AdvisoryRow>,
    ) -> Result<Option<AdvisoryRow>, StoreError>;

    /// The advisories of any of `packages`, by package then id.
    async fn advisories_of(&self, packages: Vec<String>) -> Result<Vec<AdvisoryRow>, StoreError>;

    /// Those of `names` this registry hosts or may come to host: a package here (published, or
    /// unpublished whole), or a name under an org's scope or a claimed or reserved scope.
    async fn hosted_names(&self, names: Vec<String>) -> Result<Vec<String>, StoreError>;
}
