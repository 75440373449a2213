//! Who may read a package. Unscoped packages and packages of scopes that are not orgs are open to
//! every reader; an org package whose access is `restricted` (npm access set status=private) is
//! readable only by registry admins, the org's members and teams granted it. Anyone else is told
//! the package does not exist, so its existence does not leak.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{PackageName, Registry, RegistryError};
use crate::auth::Caller;
use crate::orgs;

/// How long a package's visibility is trusted without asking the database again. Writes on this
/// instance forget it at once; this bounds how long another instance's change takes.
const VISIBILITY_TTL: Duration = Duration::from_secs(10);
/// Packages remembered at most; the memory is dropped wholesale past it.
const VISIBILITY_CAPACITY: usize = 10_000;

/// Recently looked-up visibilities of scoped packages: the org slug of a restricted org package,
/// `None` for an open one.
#[derive(Default)]
pub(super) struct VisibilityCache {
    entries: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl VisibilityCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Option<String>, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, package: &str) -> Option<Option<String>> {
        let entries = self.lock();
        let (org, at) = entries.get(package)?;
        (at.elapsed() < VISIBILITY_TTL).then(|| org.clone())
    }

    fn put(&self, package: &str, org: Option<String>) {
        let mut entries = self.lock();
        if entries.len() >= VISIBILITY_CAPACITY {
            entries.clear();
        }
        entries.insert(package.to_owned(), (org, Instant::now()));
    }

    pub(super) fn forget_all(&self) {
        self.lock().clear();
    }

    pub(super) fn forget(&self, package: &str) {
        self.lock().remove(package);
    }
}

impl Registry {
    /// Whether `reader` (`None`: an anonymous read) may read the package. A package that does not
    /// exist counts as readable: the caller's own lookup then answers not found.
    pub async fn may_read(
        &self,
        reader: Option<&Caller>,
        name: &PackageName,
    ) -> Result<bool, RegistryError> {
        let Some(slug) = name.scope().map(|scope| scope.trim_start_matches('@')) else {
            return Ok(true);
        };
        let restricted_org = match self.visibility.get(name.as_str()) {
            Some(org) => org,
            None => {
                let found = self.store.visibility(name.as_str(), slug).await?;
                let org = match found {
                    Some(found) if found.org_scope && found.access != "public" => {
                        Some(slug.to_owned())
                    }
                    _ => None,
                };
                self.visibility.put(name.as_str(), org.clone());
                org
            }
        };
        let Some(slug) = restricted_org else {
            return Ok(true);
        };
        if reader.is_some_and(Caller::is_admin) {
            return Ok(true);
        }
        let Some(caller) = reader else {
            return Ok(false);
        };
        let standing = self
            .store
            .org_facts(&slug, name.as_str(), caller.user_id)
            .await?;
        Ok(orgs::may_read_restricted(reader, &standing))
    }

    /// Answers `not_found` unless `reader` may read the package.
    pub async fn require_read(
        &self,
        reader: Option<&Caller>,
        name: &PackageName,
        not_found: impl FnOnce() -> String,
    ) -> Result<(), RegistryError> {
        if self.may_read(reader, name).await? {
            Ok(())
        } else {
            Err(RegistryError::NotFound(not_found()))
        }
    }
}
