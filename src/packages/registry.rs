//! The `Registry` service: the stores it works on, and the read operations (packuments, tarballs).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::blob_claims::{BlobClaims, Claim};
use super::cache::{CacheStats, PackumentCache, PackumentSet};
use super::tarball::TarballLimits;
use super::tarball_cache::{CachedTarball, SMALL_TARBALL_BYTES, TarballCache};
use super::{PackageName, RegistryError, packument};
use rusqlite::Connection;

use crate::auth::Caller;
use crate::orgs::{self, OrgDecision};
use crate::store::StoreError;
use crate::store::blob::Blob;
use crate::store::sqlite::orgs as org_rows;
use crate::store::sqlite::packages as rows;
use crate::store::{BlobKey, BlobStore, Sqlite};

/// Policy settings of the registry core.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Unpublish is refused for versions older than this (admins excepted).
    pub unpublish_window: Duration,
    /// Limits on published tarballs.
    pub tarball_limits: TarballLimits,
    /// Memory bound of the rendered-packument cache.
    pub packument_cache_bytes: usize,
    /// Send downloads to a presigned URL of the blob store when it has one, instead of streaming.
    pub tarball_redirect: bool,
}

/// The registry: publishes, reads and edits packages.
#[derive(Clone)]
pub struct Registry {
    pub(super) db: Sqlite,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) cache: Arc<PackumentCache>,
    pub(super) tarballs: Arc<TarballCache>,
    pub(super) visibility: Arc<super::visibility::VisibilityCache>,
    pub(super) blob_claims: Arc<BlobClaims>,
    pub(super) settings: Arc<RegistrySettings>,
}

/// A tarball ready to stream.
pub struct Tarball {
    /// The bytes.
    pub blob: Blob,
    /// Hex SHA-1, used as the ETag.
    pub shasum: String,
}

/// Where a tarball download is served from.
pub enum TarballSource {
    /// Packr streams the bytes.
    Stream(Tarball),
    /// The client fetches the bytes from a short-lived URL of the blob store.
    Redirect {
        /// The presigned URL.
        url: String,
        /// Hex SHA-1, used as the ETag.
        shasum: String,
    },
}

impl TarballSource {
    /// Hex SHA-1 of the tarball.
    pub fn shasum(&self) -> &str {
        match self {
            Self::Stream(tarball) => &tarball.shasum,
            Self::Redirect { shasum, .. } => shasum,
        }
    }
}

/// Whether the caller may change `package`: under an org's scope the org rule decides, elsewhere
/// the package's maintainers (admins may change everything). Answers whether the package exists.
pub(super) fn may_change(
    conn: &Connection,
    caller: &Caller,
    package: &str,
) -> Result<Result<bool, RegistryError>, StoreError> {
    may_write(conn, caller, package, false)
}

/// [`may_change`] for a publish, which may also create the package: a name whose every version
/// was unpublished goes back only to its former maintainers (or its org, or an admin).
pub(super) fn may_publish(
    conn: &Connection,
    caller: &Caller,
    package: &str,
) -> Result<Result<bool, RegistryError>, StoreError> {
    may_write(conn, caller, package, true)
}

fn may_write(
    conn: &Connection,
    caller: &Caller,
    package: &str,
    creating: bool,
) -> Result<Result<bool, RegistryError>, StoreError> {
    let exists = rows::exists(conn, package)?;
    match orgs::decide(conn, caller, package)? {
        OrgDecision::Denied(message) => return Ok(Err(RegistryError::OrgDenied(message))),
        OrgDecision::Allowed => return Ok(Ok(exists)),
        OrgDecision::NotAnOrg => {}
    }
    if caller.is_admin() {
        return Ok(Ok(exists));
    }
    if exists {
        return Ok(if rows::is_maintainer(conn, package, caller.user_id)? {
            Ok(true)
        } else {
            Err(RegistryError::NotMaintainer {
                user: caller.name.clone(),
                package: package.to_owned(),
            })
        });
    }
    if creating && rows::may_reclaim(conn, package, caller.user_id)? == Some(false) {
        return Ok(Err(RegistryError::NameRetired(package.to_owned())));
    }
    if let Some(message) = scope_owner_refusal(conn, caller, package)? {
        return Ok(Err(RegistryError::OrgDenied(message)));
    }
    Ok(Ok(false))
}

/// The slug of a scope that is not an org's, if `package` has one.
fn plain_scope<'a>(conn: &Connection, package: &'a str) -> Result<Option<&'a str>, StoreError> {
    let Some(slug) = orgs::scope_slug(package) else {
        return Ok(None);
    };
    Ok(org_rows::find(conn, slug)?.is_none().then_some(slug))
}

/// Why the caller may not create a new package under a scope someone owns (claimed by its first
/// publish or reserved by an admin), or `None` when they may.
fn scope_owner_refusal(
    conn: &Connection,
    caller: &Caller,
    package: &str,
) -> Result<Option<String>, StoreError> {
    let Some(slug) = plain_scope(conn, package)? else {
        return Ok(None);
    };
    let scope = format!("@{slug}");
    if caller.overrides_scope_owner(&scope) {
        return Ok(None);
    }
    Ok(match org_rows::scope_owner(conn, slug)? {
        Some((owner_id, owner)) if owner_id != caller.user_id => Some(format!(
            "{scope} belongs to {owner}: only {owner} creates new packages under it; ask {owner} to publish {package} or to add you as an owner of one (npm owner add)"
        )),
        _ => None,
    })
}

/// The scope a first publish of `package` claims for its publisher: a scope that is not an org,
/// has no owner yet and holds no package. Scopes shared before claims existed stay open.
pub(super) fn scope_to_claim<'a>(
    conn: &Connection,
    package: &'a str,
) -> Result<Option<&'a str>, StoreError> {
    let Some(slug) = plain_scope(conn, package)? else {
        return Ok(None);
    };
    let unclaimed =
        org_rows::scope_owner(conn, slug)?.is_none() && !org_rows::scope_has_packages(conn, slug)?;
    Ok(unclaimed.then_some(slug))
}

impl Registry {
    /// The registry on its stores.
    pub fn new(db: Sqlite, blobs: Arc<dyn BlobStore>, settings: RegistrySettings) -> Self {
        // Packuments and tarballs share one cache, and so `PACKR_CACHE_BYTES`.
        let cache = PackumentCache::new(settings.packument_cache_bytes);
        Self {
            db,
            blobs,
            tarballs: Arc::new(cache.tarballs()),
            cache: Arc::new(cache),
            visibility: Arc::default(),
            blob_claims: Arc::new(BlobClaims::default()),
            settings: Arc::new(settings),
        }
    }

    /// The rendered packuments of a package for a public base URL, from the cache when fresh.
    pub async fn packuments(
        &self,
        name: &PackageName,
        base_url: &str,
    ) -> Result<Arc<PackumentSet>, RegistryError> {
        if let Some(set) = self.cache.get(name.as_str(), base_url) {
            return Ok(set);
        }
        let epoch = self.cache.epoch(name.as_str());
        let record = self.load(name).await?;
        let base = base_url.to_owned();
        let set = tokio::task::spawn_blocking(move || packument::render(&record, &base))
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))??;
        let set = Arc::new(set);
        self.cache
            .insert(name.as_str(), base_url, epoch, Arc::clone(&set));
        Ok(set)
    }

    /// What the read cache holds, and its packument misses so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// One version object (full form) by version or dist-tag.
    pub async fn version_document(
        &self,
        name: &PackageName,
        version_or_tag: &str,
        base_url: &str,
    ) -> Result<serde_json::Value, RegistryError> {
        let record = self.load(name).await?;
        let version = record
            .dist_tags
            .get(version_or_tag)
            .map_or(version_or_tag, String::as_str);
        let row = record
            .versions
            .iter()
            .find(|v| v.version == version)
            .ok_or_else(|| {
                RegistryError::NotFound(format!("version not found: {name}@{version_or_tag}"))
            })?;
        packument::version_object(&record.name, row, base_url)
    }

    /// Opens the tarball named `file` of a package, or presigns a URL for it when redirects are on.
    pub async fn tarball(
        &self,
        name: &PackageName,
        file: &str,
    ) -> Result<TarballSource, RegistryError> {
        let not_found = || RegistryError::NotFound(format!("tarball not found: {name}/-/{file}"));
        let version = name.version_from_tarball_file(file).ok_or_else(not_found)?;
        let cached = match self.tarballs.get(name.as_str(), version) {
            Some(cached) => cached,
            None => self
                .locate_tarball(name, version)
                .await?
                .ok_or_else(not_found)?,
        };
        let key = BlobKey::parse(&cached.key).ok_or_else(|| {
            RegistryError::Internal(format!("stored blob key is malformed: {}", cached.key))
        })?;
        let shasum = cached.shasum.clone();
        if self.settings.tarball_redirect
            && let Some(url) = self.blobs.presigned_get(&key).await?
        {
            return Ok(TarballSource::Redirect { url, shasum });
        }
        if let Some(bytes) = &cached.bytes {
            let length = bytes.len() as u64;
            let body = futures_util::stream::once(std::future::ready(Ok(bytes.clone()))).boxed();
            return Ok(TarballSource::Stream(Tarball {
                blob: Blob { length, body },
                shasum,
            }));
        }
        let blob = self.blobs.get(&key).await?.ok_or_else(|| {
            RegistryError::Internal(format!(
                "blob {} is missing for {name}/-/{file}",
                key.as_str()
            ))
        })?;
        Ok(TarballSource::Stream(Tarball { blob, shasum }))
    }

    /// Looks a version's tarball up in the database and remembers it, with its bytes when small.
    async fn locate_tarball(
        &self,
        name: &PackageName,
        version: &str,
    ) -> Result<Option<Arc<CachedTarball>>, RegistryError> {
        // Taken before the read, so a write racing this lookup cannot leave a stale entry behind.
        let epoch = self.cache.epoch(name.as_str());
        let (package, version_owned) = (name.as_str().to_owned(), version.to_owned());
        let found = self
            .db
            .read(move |conn| rows::find_tarball(conn, &package, &version_owned))
            .await?;
        let Some((key, size, shasum)) = found else {
            return Ok(None);
        };
        let small = u64::try_from(size).is_ok_and(|s| s <= SMALL_TARBALL_BYTES);
        let bytes = match BlobKey::parse(&key) {
            Some(blob_key) if small && !self.settings.tarball_redirect => {
                self.read_small(&blob_key).await?
            }
            _ => None,
        };
        let tarball = CachedTarball { key, shasum, bytes };
        if self.cache.epoch(name.as_str()) != epoch {
            return Ok(Some(Arc::new(tarball)));
        }
        Ok(Some(self.tarballs.insert(
            name.as_str(),
            version,
            epoch,
            tarball,
        )))
    }

    async fn read_small(&self, key: &BlobKey) -> Result<Option<Bytes>, RegistryError> {
        let Some(blob) = self.blobs.get(key).await? else {
            return Ok(None);
        };
        let chunks: Vec<Bytes> = blob
            .body
            .try_collect()
            .await
            .map_err(crate::store::BlobError::Io)?;
        Ok(Some(chunks.concat().into()))
    }

    /// Loads a package's record, or a not-found error naming it.
    pub(super) async fn load(
        &self,
        name: &PackageName,
    ) -> Result<rows::PackageRecord, RegistryError> {
        let package = name.as_str().to_owned();
        self.db
            .read(move |conn| rows::load(conn, &package))
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("package not found: {name}")))
    }

    /// Requires the caller to maintain an existing package (admins maintain everything).
    pub(super) async fn require_maintainer(
        &self,
        caller: &Caller,
        name: &PackageName,
    ) -> Result<(), RegistryError> {
        let (package, actor) = (name.as_str().to_owned(), caller.clone());
        let exists = self
            .db
            .read(move |conn| may_change(conn, &actor, &package))
            .await??;
        if exists {
            Ok(())
        } else {
            Err(RegistryError::NotFound(format!(
                "package not found: {name}"
            )))
        }
    }

    /// Forgets cached packuments of a package after a write.
    pub(super) fn invalidate(&self, name: &PackageName) {
        self.cache.invalidate(name.as_str());
        self.visibility.forget(name.as_str());
        self.tarballs.invalidate(name.as_str());
    }

    /// Deletes blobs no version references any more; failures only leave garbage, so they are logged.
    pub(super) async fn delete_blobs(&self, keys: Vec<String>) {
        for key in keys.iter().filter_map(|k| BlobKey::parse(k)) {
            if let Err(err) = self.blobs.delete(&key).await {
                tracing::warn!(error = %err, key = key.as_str(), "could not delete an unreferenced blob");
            }
        }
    }

    /// Deletes the blob of a refused publish unless another publish of the same bytes is in
    /// flight or a version references it, checked in a write transaction after the discard began,
    /// so any publish that committed before is seen and any that starts later waits for the delete.
    pub(super) async fn discard_blob(&self, claim: &Claim, key: BlobKey) {
        let Some(_discarding) = claim.discard() else {
            return;
        };
        let candidate = vec![key.as_str().to_owned()];
        match self
            .db
            .write(move |tx| rows::unreferenced(tx, candidate))
            .await
        {
            Ok(free) => self.delete_blobs(free).await,
            Err(err) => {
                tracing::warn!(error = %err, "could not check whether a blob is still used")
            }
        }
    }

    /// Answers whether both stores work (for `/health/ready`).
    pub async fn check(&self) -> Result<(), RegistryError> {
        self.db.check().await?;
        self.blobs.check().await?;
        Ok(())
    }
}
