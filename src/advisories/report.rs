//! Answering audits (npm-protocol.md §11): the bulk form npm 7+ and yarn 4 send (name →
//! versions in, name → advisories out), and the npm 6 form pnpm and npm 10's fallback send (a
//! dependency tree in, a report keyed by advisory id out), both from the same findings.
//!
//! A restricted package's advisories are shown only to those who may read the package. Only
//! names Packr does not host (see [`crate::store::AdvisoryStore::hosted_names`]) are forwarded
//! upstream, so an internal name never leaves the registry.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{Advisories, AdvisoryError, SEVERITIES, affects};
use crate::auth::Caller;
use crate::packages::{PackageName, Registry};
use crate::store::advisories::AdvisoryRow;

/// Advisories by package name: the bulk answer. Packages without any are left out.
pub type BulkReport = BTreeMap<String, Vec<Value>>;

/// The versions of each package an npm 6 tree holds, with the dependency paths to each.
#[derive(Debug, Default)]
struct Findings {
    /// name → version → paths (`a>b>c`).
    versions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    dependencies: u64,
    dev_dependencies: u64,
}

/// Paths kept per version: enough to show where it comes from, bounded for huge trees.
const PATHS_PER_VERSION: usize = 20;

impl Findings {
    /// Reads an npm 6 audit body: nested `dependencies` objects of `{version, dev, dependencies}`
    /// (pnpm roots its tree at its importers, such as `"."`).
    fn of_tree(tree: &Value) -> Self {
        let mut findings = Self::default();
        let mut path = Vec::new();
        findings.walk(tree, &mut path);
        findings
    }

    fn walk(&mut self, node: &Value, path: &mut Vec<String>) {
        let Some(dependencies) = node.get("dependencies").and_then(Value::as_object) else {
            return;
        };
        for (name, dependency) in dependencies {
            let Some(version) = dependency.get("version").and_then(Value::as_str) else {
                continue;
            };
            if dependency.get("dev").and_then(Value::as_bool) == Some(true) {
                self.dev_dependencies += 1;
            } else {
                self.dependencies += 1;
            }
            path.push(name.clone());
            let paths = self
                .versions
                .entry(name.clone())
                .or_default()
                .entry(version.to_owned())
                .or_default();
            if paths.len() < PATHS_PER_VERSION {
                paths.push(path.join(">"));
            }
            self.walk(dependency, path);
            path.pop();
        }
    }

    fn asked(&self) -> BTreeMap<String, Vec<String>> {
        self.versions
            .iter()
            .map(|(name, versions)| (name.clone(), versions.keys().cloned().collect()))
            .collect()
    }
}

/// Whether `name` could be a package name anywhere. Not Packr's own rules: old public names
/// such as `JSONStream` break them, and their audits must still reach the upstream.
fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 214
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A local advisory in the bulk form npm and yarn read.
fn bulk_form(row: &AdvisoryRow) -> Value {
    json!({
        "id": row.id,
        "url": row.url.as_deref().unwrap_or_default(),
        "title": row.title,
        "severity": row.severity,
        "vulnerable_versions": row.vulnerable_versions,
        "patched_versions": row.patched_versions,
        "cwe": row.cwe,
        "cvss": row.cvss.as_ref().map_or_else(
            || json!({ "score": 0, "vectorString": null }),
            |cvss| json!({ "score": cvss.score, "vectorString": cvss.vector }),
        ),
    })
}

impl Advisories {
    /// The bulk answer for `asked` (name → installed versions): every advisory affecting one of
    /// the versions, Packr's own (to those who may read the package) and the upstream's.
    #[tracing::instrument(skip_all, fields(packages = asked.len()))]
    pub async fn bulk(
        &self,
        registry: &Registry,
        reader: Option<&Caller>,
        asked: BTreeMap<String, Vec<String>>,
    ) -> Result<BulkReport, AdvisoryError> {
        let asked: BTreeMap<String, Vec<String>> = asked
            .into_iter()
            .filter(|(name, _)| plausible_name(name))
            .collect();
        let names: Vec<String> = asked.keys().cloned().collect();
        let mut report = BulkReport::new();
        let mut readable: BTreeMap<String, bool> = BTreeMap::new();
        for row in self.store.advisories_of(names.clone()).await? {
            let Some(versions) = asked.get(&row.package) else {
                continue;
            };
            if !versions
                .iter()
                .any(|v| affects(&row.vulnerable_versions, v))
            {
                continue;
            }
            if !self
                .may_read(registry, reader, &row.package, &mut readable)
                .await?
            {
                continue;
            }
            report
                .entry(row.package.clone())
                .or_default()
                .push(bulk_form(&row));
        }
        if let Some(upstream) = &self.upstream {
            let hosted: BTreeSet<String> =
                self.store.hosted_names(names).await?.into_iter().collect();
            let foreign: BTreeMap<String, Vec<String>> = asked
                .into_iter()
                .filter(|(name, _)| !hosted.contains(name))
                .collect();
            if !foreign.is_empty() {
                match upstream.bulk(&foreign).await {
                    Ok(answer) => {
                        for (name, advisories) in answer {
                            report.entry(name).or_default().extend(advisories);
                        }
                    }
                    // The audit goes on with Packr's own advisories; the log says what was missed.
                    Err(err) => tracing::warn!(
                        error = format!("{err:#}"),
                        packages = foreign.len(),
                        "the upstream audit endpoint failed; answering with Packr's advisories only"
                    ),
                }
            }
        }
        Ok(report)
    }

    /// The npm 6 report for a dependency tree (`/-/npm/v1/security/audits[/quick]`).
    pub async fn npm6_report(
        &self,
        registry: &Registry,
        reader: Option<&Caller>,
        tree: &Value,
    ) -> Result<Value, AdvisoryError> {
        let findings = Findings::of_tree(tree);
        let bulk = self.bulk(registry, reader, findings.asked()).await?;
        let mut advisories = Map::new();
        let mut counts: BTreeMap<&str, u64> = ["info"]
            .iter()
            .chain(&SEVERITIES)
            .map(|s| (*s, 0))
            .collect();
        for (name, list) in &bulk {
            let Some(installed) = findings.versions.get(name) else {
                continue;
            };
            for advisory in list {
                let range = advisory["vulnerable_versions"].as_str().unwrap_or("*");
                let hits: Vec<Value> = installed
                    .iter()
                    .filter(|(version, _)| affects(range, version))
                    .map(|(version, paths)| json!({ "version": version, "paths": paths }))
                    .collect();
                if hits.is_empty() {
                    continue;
                }
                let severity = advisory["severity"].as_str().unwrap_or("high");
                if let Some(count) = counts.get_mut(severity) {
                    *count += hits.len() as u64;
                }
                let entry = npm6_form(name, advisory, range, severity, hits);
                let id = advisory["id"].to_string();
                let key = if advisories.contains_key(&id) {
                    format!("{id}-{name}")
                } else {
                    id
                };
                advisories.insert(key, entry);
            }
        }
        Ok(json!({
            "actions": [],
            "advisories": advisories,
            "muted": [],
            "metadata": {
                "vulnerabilities": counts,
                "dependencies": findings.dependencies,
                "devDependencies": findings.dev_dependencies,
                "optionalDependencies": 0,
                "totalDependencies": findings.dependencies + findings.dev_dependencies,
            },
        }))
    }

    /// Whether `reader` may see the package's advisories, asked once per package per audit.
    async fn may_read(
        &self,
        registry: &Registry,
        reader: Option<&Caller>,
        package: &str,
        known: &mut BTreeMap<String, bool>,
    ) -> Result<bool, AdvisoryError> {
        if let Some(known) = known.get(package) {
            return Ok(*known);
        }
        let readable = match PackageName::parse(package) {
            Ok(name) => registry.may_read(reader, &name).await?,
            Err(_) => false,
        };
        known.insert(package.to_owned(), readable);
        Ok(readable)
    }
}

/// An advisory in the npm 6 report's form (what pnpm prints and fixes from). An advisory
/// without a known fix gets npm 6's `<0.0.0`, which pnpm reads as "no patched version".
fn npm6_form(name: &str, advisory: &Value, range: &str, severity: &str, hits: Vec<Value>) -> Value {
    let patched = advisory["patched_versions"].as_str().unwrap_or("<0.0.0");
    let cwe = match &advisory["cwe"] {
        Value::Array(ids) => ids
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(id) => id.clone(),
        _ => String::new(),
    };
    let recommendation = if patched == "<0.0.0" {
        "None".to_owned()
    } else {
        format!("Upgrade to version {patched}")
    };
    json!({
        "id": advisory["id"],
        "module_name": name,
        "title": advisory["title"],
        "severity": severity,
        "url": advisory["url"],
        "vulnerable_versions": range,
        "patched_versions": patched,
        "overview": advisory["title"],
        "recommendation": recommendation,
        "cwe": cwe,
        "cves": [],
        "github_advisory_id": null,
        "cvss": advisory["cvss"],
        "access": "public",
        "findings": hits,
    })
}
