//! Security advisories (issue 11 §5): admins record them against versions of a package, and
//! `npm audit`, `pnpm audit` and `yarn npm audit` report them ([`report`]). Names Packr does not
//! host can be forwarded to an upstream audit endpoint ([`upstream`]).
//!
//! Ranges use npm's syntax (`<1.2.3 || >=2.0.0 <2.1.0`, `^`, `~`, x-ranges, a bare version
//! meaning exactly it), parsed by the `node-semver` crate. Cargo's `semver` crate reads another
//! syntax: no `||`, comparators joined by commas rather than spaces, and a bare `1.2.3` meaning
//! `^1.2.3`, so it would flag the wrong versions.

mod report;
pub mod upstream;

use node_semver::{Range, Version};
use serde::Deserialize;
use serde_json::json;

pub use report::BulkReport;
pub use upstream::Upstream;

use crate::audit::AuditEvent;
use crate::auth::Caller;
use crate::clock;
use crate::packages::PackageName;
pub use crate::store::advisories::AdvisoryRow as Advisory;
use crate::store::advisories::{AdvisoryRow, Cvss, NewAdvisory};
use crate::store::{Store, StoreError};

/// The severities an advisory may have, mildest first (npm's names).
pub const SEVERITIES: [&str; 4] = ["low", "moderate", "high", "critical"];

/// Why an advisory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    /// Input that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// No such advisory.
    #[error("{0}")]
    NotFound(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Whether a reader may see a package could not be decided.
    #[error(transparent)]
    Registry(#[from] crate::packages::RegistryError),
}

/// A CVSS rating as given: `{score, vectorString}` (npm's spelling) or `{score, vector}`.
#[derive(Debug, Clone, Deserialize)]
pub struct CvssInput {
    /// Base score.
    pub score: f64,
    /// Vector string.
    #[serde(alias = "vectorString")]
    pub vector: Option<String>,
}

/// What an admin gives to record an advisory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryInput {
    /// Package name.
    pub package: String,
    /// Affected versions (npm range).
    pub vulnerable_versions: String,
    /// Fixed versions (npm range).
    #[serde(default)]
    pub patched_versions: Option<String>,
    /// Severity.
    pub severity: String,
    /// Title.
    pub title: String,
    /// Link.
    #[serde(default)]
    pub url: Option<String>,
    /// CWE ids.
    #[serde(default)]
    pub cwe: Vec<String>,
    /// CVSS rating.
    #[serde(default)]
    pub cvss: Option<CvssInput>,
}

/// Parses an npm range; the message says which field and why.
fn parse_range(field: &str, text: &str) -> Result<Range, AdvisoryError> {
    if text.trim().is_empty() {
        return Err(AdvisoryError::Invalid(format!(
            "`{field}` must be an npm semver range, such as \"<1.2.3\" or \">=2.0.0 <2.1.0\""
        )));
    }
    Range::parse(text).map_err(|err| {
        AdvisoryError::Invalid(format!(
            "`{field}` is not an npm semver range ({err}): use npm's syntax, such as \"<1.2.3 || >=2.0.0 <2.1.0\""
        ))
    })
}

/// Whether `version` is one of `range`'s; a version that does not parse is in none.
///
/// Prereleases count wherever they fall in the range, as npm's audit (`includePrerelease`) and
/// yarn's (`satisfiesWithPrereleases`) match them: `1.1.0-beta.1` is `<1.1.0`. Plain
/// `satisfies` would admit a prerelease only beside a comparator with the same prerelease tuple.
pub fn affects(range: &str, version: &str) -> bool {
    let (Ok(range), Ok(parsed)) = (Range::parse(range), Version::parse(version)) else {
        return false;
    };
    if range.satisfies(&parsed) {
        return true;
    }
    parsed.is_prerelease()
        && Range::parse(format!("={parsed}"))
            .ok()
            .and_then(|exact| range.intersect(&exact))
            .is_some()
}

fn plain_text(field: &str, text: &str, max: usize) -> Result<(), AdvisoryError> {
    if text.trim().is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(AdvisoryError::Invalid(format!(
            "`{field}` must be one line of at most {max} bytes"
        )));
    }
    Ok(())
}

impl AdvisoryInput {
    /// Checks every field; the advisory to store.
    fn validate(self, by: Option<&Caller>) -> Result<NewAdvisory, AdvisoryError> {
        let package = PackageName::parse(self.package.trim())
            .map_err(|err| AdvisoryError::Invalid(format!("`package`: {err}")))?;
        parse_range("vulnerable_versions", &self.vulnerable_versions)?;
        if let Some(patched) = &self.patched_versions {
            parse_range("patched_versions", patched)?;
        }
        let severity = self.severity.trim().to_ascii_lowercase();
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(AdvisoryError::Invalid(format!(
                "`severity` must be one of {}, not `{}`",
                SEVERITIES.join(", "),
                self.severity
            )));
        }
        plain_text("title", &self.title, 500)?;
        if let Some(url) = &self.url {
            plain_text("url", url, 2000)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(AdvisoryError::Invalid(
                    "`url` must be an http:// or https:// address".into(),
                ));
            }
        }
        for cwe in &self.cwe {
            let number = cwe.strip_prefix("CWE-").unwrap_or_default();
            if number.is_empty() || number.len() > 6 || !number.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(AdvisoryError::Invalid(format!(
                    "`cwe` lists CWE ids such as \"CWE-79\", not `{cwe}`"
                )));
            }
        }
        let cvss = match self.cvss {
            None => None,
            Some(cvss) => {
                if !(0.0..=10.0).contains(&cvss.score) {
                    return Err(AdvisoryError::Invalid(
                        "`cvss.score` must be between 0.0 and 10.0".into(),
                    ));
                }
                if let Some(vector) = &cvss.vector {
                    plain_text("cvss.vectorString", vector, 200)?;
                }
                Some(Cvss {
                    score: cvss.score,
                    vector: cvss.vector,
                })
            }
        };
        Ok(NewAdvisory {
            package: package.as_str().to_owned(),
            vulnerable_versions: self.vulnerable_versions.trim().to_owned(),
            patched_versions: self.patched_versions.map(|p| p.trim().to_owned()),
            severity,
            title: self.title.trim().to_owned(),
            url: self.url,
            cwe: self.cwe,
            cvss,
            created_at: clock::now_ms(),
            created_by: by.map(|caller| caller.name.clone()),
        })
    }
}

/// The audit event of a change to `row`: by the caller, or by the operator's command line.
fn event(by: Option<&Caller>, action: &'static str, row: &AdvisoryRow) -> AuditEvent {
    let details = json!({
        "advisory_id": row.id,
        "vulnerable_versions": row.vulnerable_versions,
        "patched_versions": row.patched_versions,
        "severity": row.severity,
        "title": row.title,
    });
    match by {
        Some(caller) => AuditEvent::by(caller, action, details),
        None => AuditEvent::by_operator(action, details),
    }
    .on_package(&row.package)
}

/// Records, lists and deletes advisories, and answers audits.
#[derive(Clone)]
pub struct Advisories {
    store: Store,
    upstream: Option<Upstream>,
}

impl Advisories {
    /// The advisories of a metadata store; names Packr does not host go to `upstream`, if any.
    pub fn new(store: Store, upstream: Option<Upstream>) -> Self {
        Self { store, upstream }
    }

    /// Records an advisory; `by` is the admin, `None` the operator's command line.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        by: Option<&Caller>,
        input: AdvisoryInput,
    ) -> Result<Advisory, AdvisoryError> {
        let advisory = input.validate(by)?;
        let by = by.cloned();
        let row = self
            .store
            .create_advisory(
                advisory,
                Box::new(move |row| event(by.as_ref(), "advisory.created", row)),
            )
            .await?;
        tracing::info!(advisory = row.id, package = %row.package, "advisory created");
        Ok(row)
    }

    /// Every advisory, or those of one package.
    pub async fn list(&self, package: Option<&str>) -> Result<Vec<Advisory>, AdvisoryError> {
        Ok(self
            .store
            .list_advisories(package.map(str::to_owned))
            .await?)
    }

    /// Deletes an advisory; `by` as for [`Self::create`].
    #[tracing::instrument(skip_all)]
    pub async fn delete(&self, by: Option<&Caller>, id: i64) -> Result<Advisory, AdvisoryError> {
        let by = by.cloned();
        let deleted = self
            .store
            .delete_advisory(
                id,
                Box::new(move |row| event(by.as_ref(), "advisory.deleted", row)),
            )
            .await?;
        let row = deleted.ok_or_else(|| {
            AdvisoryError::NotFound(format!(
                "no advisory {id}; GET /api/v1/admin/advisories (or `packr advisory list`) lists them"
            ))
        })?;
        tracing::info!(advisory = row.id, package = %row.package, "advisory deleted");
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_ranges_match_as_npm_matches_them() {
        let cases = [
            ("<1.2.3 || >=2.0.0 <2.1.0", "1.2.2", true),
            ("<1.2.3 || >=2.0.0 <2.1.0", "1.2.3", false),
            ("<1.2.3 || >=2.0.0 <2.1.0", "2.0.5", true),
            ("<1.2.3 || >=2.0.0 <2.1.0", "2.1.0", false),
            ("^1.2.0", "1.9.9", true),
            ("^1.2.0", "2.0.0", false),
            ("^0.2.0", "0.3.0", false),
            ("~1.2", "1.2.7", true),
            ("~1.2", "1.3.0", false),
            ("1.x", "1.4.0", true),
            ("1.x", "2.0.0", false),
            ("1.2.3", "1.2.3", true),
            ("1.2.3", "1.2.4", false),
            ("1.0.0 - 1.2.0", "1.1.0", true),
            ("*", "3.0.0", true),
            ("<1.1.0", "1.1.0-beta.1", true),
            ("<1.1.0", "1.1.0", false),
            (">=1.0.0 <1.1.0", "0.9.0-beta.1", false),
            (">=2.0.0", "2.0.0-rc.1", false),
            ("^1.0.0", "2.0.0-rc.1", false),
            ("^1.0.0", "1.5.0-rc.1", true),
        ];
        for (range, version, expected) in cases {
            assert_eq!(affects(range, version), expected, "{version} in {range}");
        }
    }

    fn input(range: &str) -> AdvisoryInput {
        AdvisoryInput {
            package: "@acme/vuln".into(),
            vulnerable_versions: range.into(),
            patched_versions: Some(">=1.1.0".into()),
            severity: "High".into(),
            title: "Prototype pollution".into(),
            url: Some("https://example.com/a/1".into()),
            cwe: vec!["CWE-1321".into()],
            cvss: Some(CvssInput {
                score: 7.5,
                vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N".into()),
            }),
        }
    }

    #[test]
    fn a_valid_advisory_is_normalised_and_bad_fields_are_named() {
        let advisory = input("<1.1.0").validate(None).unwrap();
        assert_eq!(advisory.severity, "high");
        assert_eq!(advisory.created_by, None);
        let refused = |mut change: Box<dyn FnMut(&mut AdvisoryInput)>, field: &str| {
            let mut bad = input("<1.1.0");
            change(&mut bad);
            let message = bad.validate(None).unwrap_err().to_string();
            assert!(message.contains(field), "{field}: {message}");
        };
        refused(
            Box::new(|a| a.vulnerable_versions = ">>1".into()),
            "vulnerable_versions",
        );
        refused(
            Box::new(|a| a.vulnerable_versions = " ".into()),
            "vulnerable_versions",
        );
        refused(
            Box::new(|a| a.patched_versions = Some("nope!".into())),
            "patched_versions",
        );
        refused(Box::new(|a| a.severity = "info".into()), "severity");
        refused(Box::new(|a| a.package = "Bad Name".into()), "package");
        refused(Box::new(|a| a.title = "two\nlines".into()), "title");
        refused(Box::new(|a| a.url = Some("ftp://x".into())), "url");
        refused(Box::new(|a| a.cwe = vec!["79".into()]), "cwe");
        refused(
            Box::new(|a| {
                a.cvss = Some(CvssInput {
                    score: 11.0,
                    vector: None,
                })
            }),
            "cvss.score",
        );
    }
}
