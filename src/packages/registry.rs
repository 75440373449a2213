//! The `Registry` service: the stores it works on, and the read operations (packuments, tarballs).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::blob_claims::{BlobClaims, Claim, SharedClaim};
use super::cache::{CacheStats, PackumentCache, Rendered, Siblings, Source, Variant};
use super::tarball::TarballLimits;
use super::tarball_cache::{CachedTarball, SMALL_TARBALL_BYTES, TarballCache};
use super::{PackageName, RegistryError, packument};

use crate::auth::Caller;
use crate::orgs::{self, OrgDecision};
use crate::store::blob::Blob;
use crate::store::packages::{PackageRecord, PublishPlan, WriteFacts};
use crate::store::{BlobKey, BlobStore, Store};

/// Packages whose stored manifests add up to at most this many bytes are rendered on the async
/// thread that missed them (tens of microseconds at most); bigger ones on a blocking thread.
const INLINE_RENDER_BYTES: usize = 16 * 1024;

/// Runs `work` on this thread when `small` (a few KB of JSON copied and compressed cost less
/// than the handoff to a blocking thread and back), else on a blocking thread.
async fn inline_if<T: Send + 'static>(
    small: bool,
    work: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    if small {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?
}

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
    /// Sigstore trust root provenance bundles are verified against; `None`: stored unverified.
    pub sigstore_trust_root: Option<Arc<super::provenance::TrustRoot>>,
}

/// The registry: publishes, reads and edits packages.
#[derive(Clone)]
pub struct Registry {
    pub(super) store: Store,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) cache: Arc<PackumentCache>,
    pub(super) tarballs: Arc<TarballCache>,
    pub(super) visibility: Arc<super::visibility::VisibilityCache>,
    /// Packages whose stored rendering is to be made (see [`super::renderer`]).
    pub(super) render_queue: Arc<super::renderer::RenderQueue>,
    pub(super) blob_claims: Arc<BlobClaims>,
    /// Claims other instances see too, when the store is shared.
    pub(super) shared_claims: Option<Arc<dyn crate::store::blob_claims::SharedBlobClaims>>,
    pub(super) settings: Arc<RegistrySettings>,
    /// Signs each version at publish; `None` where nothing is signed (CLI-only registries).
    pub(super) signing: Option<crate::signing::Signing>,
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

/// Whether the caller may change `package`, given the [`WriteFacts`] loaded for them: under an
/// org's scope the org rule decides, elsewhere the package's maintainers (admins may change
/// everything). Answers whether the package exists.
pub(super) fn may_change(
    facts: &WriteFacts,
    caller: &Caller,
    package: &str,
) -> Result<bool, RegistryError> {
    may_write(facts, caller, package, false)
}

/// What a publish may do: [`may_change`], where a name whose every version was unpublished goes
/// back only to its former maintainers (or its org, or an admin), and a first publish claims
/// its scope when it is free ([`scope_to_claim`]).
pub(super) fn may_publish(
    facts: &WriteFacts,
    caller: &Caller,
    package: &str,
) -> Result<PublishPlan, RegistryError> {
    let existed = may_write(facts, caller, package, true)?;
    Ok(PublishPlan {
        claim_scope: if existed {
            None
        } else {
            scope_to_claim(facts, package).map(str::to_owned)
        },
    })
}

fn may_write(
    facts: &WriteFacts,
    caller: &Caller,
    package: &str,
    creating: bool,
) -> Result<bool, RegistryError> {
    let exists = facts.exists;
    match orgs::decide(facts.org.as_ref(), caller, package) {
        OrgDecision::Denied(message) => return Err(RegistryError::OrgDenied(message)),
        OrgDecision::Allowed => return Ok(exists),
        OrgDecision::NotAnOrg => {}
    }
    if caller.is_admin() {
        return Ok(exists);
    }
    if exists {
        return if facts.is_maintainer {
            Ok(true)
        } else {
            Err(RegistryError::NotMaintainer {
                user: caller.name.clone(),
                package: package.to_owned(),
            })
        };
    }
    let new_name = facts.new_name.as_ref();
    if creating && new_name.and_then(|n| n.retired) == Some(false) {
        return Err(RegistryError::NameRetired(package.to_owned()));
    }
    if let Some(message) = scope_owner_refusal(facts, caller, package) {
        return Err(RegistryError::OrgDenied(message));
    }
    Ok(false)
}

/// The slug of a scope that is not an org's, if `package` has one.
fn plain_scope<'a>(facts: &WriteFacts, package: &'a str) -> Option<&'a str> {
    orgs::scope_slug(package).filter(|_| facts.org.is_none())
}

/// Why the caller may not create a new package under a scope someone owns (claimed by its first
/// publish or reserved by an admin), or `None` when they may.
fn scope_owner_refusal(facts: &WriteFacts, caller: &Caller, package: &str) -> Option<String> {
    let slug = plain_scope(facts, package)?;
    let scope = format!("@{slug}");
    if caller.overrides_scope_owner(&scope) {
        return None;
    }
    match facts.new_name.as_ref().and_then(|n| n.scope_owner.as_ref()) {
        Some((owner_id, owner)) if *owner_id != caller.user_id => Some(format!(
            "{scope} belongs to {owner}: only {owner} creates new packages under it; ask {owner} to publish {package} or to add you as an owner of one (npm owner add)"
        )),
        _ => None,
    }
}

/// The scope a first publish of `package` claims for its publisher: a scope that is not an org,
/// has no owner yet and holds no package. Scopes shared before claims existed stay open.
pub(super) fn scope_to_claim<'a>(facts: &WriteFacts, package: &'a str) -> Option<&'a str> {
    let slug = plain_scope(facts, package)?;
    let new_name = facts.new_name.as_ref()?;
    (new_name.scope_owner.is_none() && !new_name.scope_has_packages).then_some(slug)
}

impl Registry {
    /// The registry on its stores.
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>, settings: RegistrySettings) -> Self {
        // Packuments and tarballs share one cache, and so `PACKR_CACHE_BYTES`.
        let cache = PackumentCache::new(settings.packument_cache_bytes);
        Self {
            shared_claims: blobs.shared().then(|| store.shared_blob_claims()).flatten(),
            store,
            blobs,
            tarballs: Arc::new(cache.tarballs()),
            cache: Arc::new(cache),
            visibility: Arc::default(),
            render_queue: Arc::default(),
            blob_claims: Arc::new(BlobClaims::default()),
            settings: Arc::new(settings),
            signing: None,
        }
    }

    /// The registry signing every version it publishes with `signing`'s active key.
    pub fn with_signing(mut self, signing: crate::signing::Signing) -> Self {
        self.signing = Some(signing);
        self
    }

    /// The registry's signing service, if it signs.
    pub fn signing(&self) -> Option<&crate::signing::Signing> {
        self.signing.as_ref()
    }

    /// One rendered representation of a package's packument for a public base URL, from the
    /// cache when fresh.
    pub async fn packument(
        &self,
        name: &PackageName,
        base_url: &str,
        variant: Variant,
    ) -> Result<Arc<Rendered>, RegistryError> {
        let siblings = match self.cache.get(name.as_str(), base_url, variant) {
            Ok(rendered) => return Ok(rendered),
            Err(siblings) => siblings,
        };
        let epoch = self.cache.epoch(name.as_str());
        let (rendered, costly) = self.make(name, base_url, variant, &siblings, epoch).await?;
        let rendered = Arc::new(rendered);
        let costly = costly || rendered.body.len() > INLINE_RENDER_BYTES;
        if self.cache.keeps(name.as_str(), base_url, variant, costly) {
            self.cache
                .insert(name.as_str(), base_url, epoch, siblings, variant, &rendered);
        }
        Ok(rendered)
    }

    /// A missed representation, made the cheapest way there is: from a cached plain sibling (a
    /// splice), from the stored document (one read and a splice), from a cached gzip sibling
    /// (decompressed first), else from the rows (then the package is queued for rendering).
    /// Answers whether it came from the rows.
    async fn make(
        &self,
        name: &PackageName,
        base_url: &str,
        variant: Variant,
        siblings: &Siblings,
        epoch: u64,
    ) -> Result<(Rendered, bool), RegistryError> {
        let (plain, gzip) = match siblings.source(variant.form, epoch) {
            Some(source) if source.rendered.gzip => (None, Some(source)),
            source => (source, None),
        };
        if let Some(rendered) = self.rebased(plain, base_url, variant).await? {
            return Ok((rendered, false));
        }
        if let Some(rendered) = self.stored(name, base_url, variant).await? {
            return Ok((rendered, false));
        }
        if let Some(rendered) = self.rebased(gzip, base_url, variant).await? {
            return Ok((rendered, false));
        }
        self.render_queue.missed(name.as_str());
        Ok((self.rendered(name, base_url, variant).await?, true))
    }

    /// A miss made from a cached representation of the same document and data (another
    /// encoding, or another base URL spliced in): no store read and no rendering.
    async fn rebased(
        &self,
        source: Option<Source>,
        base_url: &str,
        variant: Variant,
    ) -> Result<Option<Rendered>, RegistryError> {
        let Some(source) = source else {
            return Ok(None);
        };
        let small = source.rendered.body.len() <= INLINE_RENDER_BYTES;
        let base = base_url.to_owned();
        inline_if(small, move || {
            packument::rebase(&source.rendered, &source.base_url, &base, variant.gzip)
        })
        .await
    }

    /// A miss served from the package's stored rendering, when one of its current rev is
    /// stored: one keyed read, and the base URL spliced in.
    async fn stored(
        &self,
        name: &PackageName,
        base_url: &str,
        variant: Variant,
    ) -> Result<Option<Rendered>, RegistryError> {
        let Some(document) = self
            .store
            .stored_document(name.as_str(), variant.form)
            .await?
        else {
            return Ok(None);
        };
        let small = document.plain.len() <= INLINE_RENDER_BYTES;
        let base = base_url.to_owned();
        inline_if(small, move || {
            packument::from_stored(&document, &base, variant.gzip)
        })
        .await
    }

    /// A miss rendered from the package's rows.
    async fn rendered(
        &self,
        name: &PackageName,
        base_url: &str,
        variant: Variant,
    ) -> Result<Rendered, RegistryError> {
        let record = self.load(name).await?;
        let stored: usize = record.versions.iter().map(|v| v.manifest.len()).sum();
        let base = base_url.to_owned();
        inline_if(stored <= INLINE_RENDER_BYTES, move || {
            packument::render(&record, &base, variant)
        })
        .await
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
        let Some(found) = self.store.find_tarball(name.as_str(), version).await? else {
            return Ok(None);
        };
        let (key, size, shasum) = (found.blob_key, found.size, found.shasum);
        let small = u64::try_from(size).is_ok_and(|s| s <= SMALL_TARBALL_BYTES);
        let bytes = match BlobKey::parse(&key) {
            Some(blob_key) if small && !self.settings.tarball_redirect => {
                self.read_small(&blob_key).await?
            }
            _ => None,
        };
        let tarball = CachedTarball { key, shasum, bytes };
        // An entry read before a write carries the older epoch and is never served.
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
    pub(super) async fn load(&self, name: &PackageName) -> Result<PackageRecord, RegistryError> {
        self.store
            .load_package(name.as_str())
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("package not found: {name}")))
    }

    /// Requires the caller to maintain an existing package (admins maintain everything).
    pub(super) async fn require_maintainer(
        &self,
        caller: &Caller,
        name: &PackageName,
    ) -> Result<(), RegistryError> {
        let facts = self
            .store
            .write_facts(name.as_str(), caller.user_id)
            .await?;
        let exists = may_change(&facts, caller, name.as_str())?;
        if exists {
            Ok(())
        } else {
            Err(RegistryError::NotFound(format!(
                "package not found: {name}"
            )))
        }
    }

    /// Forgets what this instance holds about a package: after its own write to it, or one
    /// another instance announced. Tarballs share the packument cache and its epochs, so one
    /// invalidation covers both.
    pub fn forget_package(&self, name: &str) {
        self.cache.invalidate(name);
        self.visibility.forget(name);
    }

    /// Forgets every cached packument, tarball and visibility: another instance changed an org,
    /// or its changes may have been missed.
    pub fn forget_everything(&self) {
        self.cache.invalidate_all();
        self.visibility.forget_all();
    }

    /// After this instance's own write to a package: forgets what is cached of it and queues
    /// its stored rendering to be made again.
    pub fn wrote(&self, name: &str) {
        self.forget_package(name);
        self.render_queue.wanted(name);
    }

    pub(super) fn invalidate(&self, name: &PackageName) {
        self.wrote(name.as_str());
    }

    /// Deletes blobs no version references any more; failures only leave garbage, so they are logged.
    pub(super) async fn delete_blobs(&self, keys: Vec<String>) {
        for key in keys.iter().filter_map(|k| BlobKey::parse(k)) {
            if let Err(err) = self.blobs.delete(&key).await {
                tracing::warn!(error = %err, key = key.as_str(), "could not delete an unreferenced blob");
            }
        }
    }

    /// Claims `key` for a publish in the store instances share, if they share one.
    pub(super) async fn claim_shared(
        &self,
        key: &BlobKey,
    ) -> Result<Option<SharedClaim>, RegistryError> {
        match &self.shared_claims {
            Some(claims) => Ok(Some(SharedClaim::take(claims, key.as_str()).await?)),
            None => Ok(None),
        }
    }

    /// Writes a new version's (or stage's) tarball under claims on its key, this instance's and,
    /// on a shared store, every instance's: until they are released, a refused publish of the
    /// same bytes elsewhere cannot delete them. The blob goes first: a crash after it leaves an
    /// unreferenced file, never a version without bytes.
    pub(super) async fn put_claimed(
        &self,
        key: &BlobKey,
        bytes: Bytes,
    ) -> Result<(Claim, Option<SharedClaim>), RegistryError> {
        let claim = self.blob_claims.claim(key.as_str()).await;
        let shared = self.claim_shared(key).await?;
        self.blobs.put(key, bytes).await?;
        Ok((claim, shared))
    }

    /// Deletes the blob of a refused publish unless another publish of the same bytes is in
    /// flight or a version references it, checked in a write transaction after the discard began,
    /// so any publish that committed before is seen and any that starts later waits for the delete.
    /// With a `shared` claim, publishes on every instance sharing the store count.
    pub(super) async fn discard_blob(
        &self,
        claim: &Claim,
        shared: Option<SharedClaim>,
        key: BlobKey,
    ) {
        let Some(_discarding) = claim.discard() else {
            return;
        };
        if let Some(shared) = shared {
            let delete = self.delete_blobs(vec![key.as_str().to_owned()]);
            if let Err(err) = shared.discard(delete).await {
                tracing::warn!(error = %err, "could not check whether a blob is still used");
            }
            return;
        }
        let candidate = vec![key.as_str().to_owned()];
        match self.store.unreferenced_blobs(candidate).await {
            Ok(free) => self.delete_blobs(free).await,
            Err(err) => {
                tracing::warn!(error = %err, "could not check whether a blob is still used")
            }
        }
    }

    /// Answers whether both stores work (for `/health/ready`).
    pub async fn check(&self) -> Result<(), RegistryError> {
        self.store.check().await?;
        self.blobs.check().await?;
        Ok(())
    }
}
