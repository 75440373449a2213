//! Unpublish: removing versions (npm's PUT of the document minus versions, then the tarball DELETE)
//! and deleting whole packages. Removed versions are retired forever (npm-protocol.md §6.6, §17.3).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{PackageName, Registry, RegistryError, Version, packument};
use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};
use crate::clock;
use crate::store::packages::{PackageRecord, Removal, UnpublishOutcome};

/// The highest remaining version, preferring releases over prereleases (npm's choice of a new `latest`).
pub fn next_latest<'a>(remaining: impl Iterator<Item = &'a str>) -> Option<String> {
    remaining
        .filter_map(|v| Version::parse(v).ok())
        .max_by(|a, b| {
            (!a.is_prerelease(), a.as_semver()).cmp(&(!b.is_prerelease(), b.as_semver()))
        })
        .map(|v| v.to_string())
}

/// The answer to a write based on an old read: nothing was removed, and the client should read again.
fn changed_since_read(name: &PackageName) -> RegistryError {
    RegistryError::Conflict(format!(
        "{name} changed since this request's _rev was read (a version was published or the package was edited in between), so nothing was removed; run the unpublish again so it starts from the current versions"
    ))
}

/// Refuses a `_rev` from the URL that is not the package's current one (CouchDB's rule, which
/// npm relies on): a body read before another write could otherwise remove that write's version.
fn require_current_rev(
    name: &PackageName,
    record: &PackageRecord,
    rev: &str,
) -> Result<(), RegistryError> {
    if packument::rev(name.as_str(), record.rev) == rev {
        Ok(())
    } else {
        Err(changed_since_read(name))
    }
}

fn human(window: std::time::Duration) -> String {
    let hours = window.as_secs() / 3600;
    if hours >= 1 {
        format!("{hours} hours")
    } else {
        format!("{} seconds", window.as_secs())
    }
}

impl Registry {
    fn check_window(
        &self,
        caller: &Caller,
        record: &PackageRecord,
        versions: &BTreeSet<String>,
    ) -> Result<(), RegistryError> {
        if caller.is_admin() {
            return Ok(());
        }
        let window = self.settings.unpublish_window;
        let oldest_allowed =
            clock::now_ms() - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        match record
            .versions
            .iter()
            .find(|row| versions.contains(&row.version) && row.published_at < oldest_allowed)
        {
            Some(row) => Err(RegistryError::UnpublishWindow {
                package: record.name.clone(),
                version: row.version.clone(),
                window: human(window),
            }),
            None => Ok(()),
        }
    }

    async fn authorize_unpublish(
        &self,
        caller: &Caller,
        name: &PackageName,
    ) -> Result<PackageRecord, RegistryError> {
        caller.require_for(Permission::Unpublish, "unpublish", name.as_str())?;
        self.require_maintainer(caller, name).await?;
        self.load(name).await
    }

    /// Removes the versions missing from a PUT body's `versions` (npm's first unpublish request),
    /// if `rev` is still the package's `_rev`. A version the body never knew about (absent from
    /// its `time` as well) is kept, whatever the rev says.
    #[tracing::instrument(skip_all, fields(package = %name))]
    pub async fn unpublish_missing_versions(
        &self,
        caller: &Caller,
        name: &PackageName,
        rev: &str,
        body: &Value,
    ) -> Result<(), RegistryError> {
        let record = self.authorize_unpublish(caller, name).await?;
        require_current_rev(name, &record, rev)?;
        let Some(Value::Object(kept)) = body.get("versions") else {
            return Err(RegistryError::Invalid(
                "the body has no `versions` object".into(),
            ));
        };
        if let Some(added) = kept
            .keys()
            .find(|v| !record.versions.iter().any(|r| &&r.version == v))
        {
            return Err(RegistryError::Invalid(format!(
                "{name}@{added} does not exist; this request may only remove versions"
            )));
        }
        // npm sends the whole document back, `time` included, so `time` lists what its writer saw.
        let known = |version: &str| {
            body.get("time")
                .and_then(Value::as_object)
                .is_none_or(|time| time.contains_key(version))
        };
        let removed: BTreeSet<String> = record
            .versions
            .iter()
            .filter(|r| !kept.contains_key(&r.version) && known(&r.version))
            .map(|r| r.version.clone())
            .collect();
        if removed.is_empty() {
            return Err(RegistryError::Invalid(
                "the body lists every version; name the version to unpublish (npm unpublish pkg@version)".into(),
            ));
        }
        self.remove_versions(caller, name, record, removed).await
    }

    /// Removes one version by its tarball file name (npm's second unpublish request); a version
    /// that is already gone answers success, so npm's retries are harmless.
    pub async fn unpublish_tarball(
        &self,
        caller: &Caller,
        name: &PackageName,
        file: &str,
    ) -> Result<(), RegistryError> {
        let record = self.authorize_unpublish(caller, name).await?;
        let Some(version) = name.version_from_tarball_file(file) else {
            return Err(RegistryError::NotFound(format!(
                "tarball not found: {name}/-/{file}"
            )));
        };
        if !record.versions.iter().any(|r| r.version == version) {
            return Ok(());
        }
        self.remove_versions(caller, name, record, BTreeSet::from([version.to_owned()]))
            .await
    }

    async fn remove_versions(
        &self,
        caller: &Caller,
        name: &PackageName,
        record: PackageRecord,
        removed: BTreeSet<String>,
    ) -> Result<(), RegistryError> {
        self.check_window(caller, &record, &removed)?;
        if removed.len() == record.versions.len() {
            return self.delete_package_checked(caller, name, &record).await;
        }
        let latest_removed = record
            .dist_tags
            .get("latest")
            .is_none_or(|latest| removed.contains(latest));
        let new_latest = latest_removed
            .then(|| {
                next_latest(
                    record
                        .versions
                        .iter()
                        .map(|r| r.version.as_str())
                        .filter(|v| !removed.contains(*v)),
                )
            })
            .flatten();
        let versions: Vec<String> = removed.into_iter().collect();
        let audited = json!({ "versions": versions, "whole_package": false });
        let removal = Removal::Versions {
            versions,
            new_latest,
        };
        self.commit_unpublish(caller, name, record.rev, audited, removal)
            .await
    }

    /// Deletes a whole package (`npm unpublish pkg --force`), if `rev` is still its `_rev`.
    #[tracing::instrument(skip_all, fields(package = %name))]
    pub async fn unpublish_package(
        &self,
        caller: &Caller,
        name: &PackageName,
        rev: &str,
    ) -> Result<(), RegistryError> {
        let record = self.authorize_unpublish(caller, name).await?;
        require_current_rev(name, &record, rev)?;
        let all = record.versions.iter().map(|r| r.version.clone()).collect();
        self.check_window(caller, &record, &all)?;
        self.delete_package_checked(caller, name, &record).await
    }

    async fn delete_package_checked(
        &self,
        caller: &Caller,
        name: &PackageName,
        record: &PackageRecord,
    ) -> Result<(), RegistryError> {
        let versions: Vec<&str> = record.versions.iter().map(|r| r.version.as_str()).collect();
        let audited = json!({ "versions": versions, "whole_package": true });
        self.commit_unpublish(caller, name, record.rev, audited, Removal::Package)
            .await
    }

    /// Applies `removal` and records the `package.unpublished` event with `details` in one
    /// transaction, then drops the cached packument and the freed blobs. Nothing is removed
    /// unless the package is still at `read_rev`, the write count of the record the removal was
    /// decided on.
    async fn commit_unpublish(
        &self,
        caller: &Caller,
        name: &PackageName,
        read_rev: i64,
        details: Value,
        removal: Removal,
    ) -> Result<(), RegistryError> {
        let event =
            AuditEvent::by(caller, "package.unpublished", details).on_package(name.as_str());
        let outcome = self
            .store
            .commit_unpublish(name.as_str(), read_rev, removal, vec![event])
            .await?;
        let UnpublishOutcome::Removed { freed_blobs: keys } = outcome else {
            return Err(changed_since_read(name));
        };
        self.invalidate(name);
        self.delete_blobs(keys).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_latest_is_the_highest_release() {
        let versions = ["1.0.0", "2.0.0-rc.1", "1.10.0", "1.2.0"];
        assert_eq!(next_latest(versions.into_iter()).as_deref(), Some("1.10.0"));
    }

    #[test]
    fn only_prereleases_left_gives_the_highest_prerelease() {
        let versions = ["2.0.0-rc.1", "2.0.0-rc.2"];
        assert_eq!(
            next_latest(versions.into_iter()).as_deref(),
            Some("2.0.0-rc.2")
        );
    }
}
