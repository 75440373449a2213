//! The packages part of the metadata store seam: publish, reads for packuments and tarballs,
//! dist-tags, deprecation, unpublish, owners and access. Every write bumps `packages.rev` and
//! `modified_at`, which become `_rev` and `time.modified`.
//!
//! Who may change a package is decided by the core ([`crate::packages::registry`]) over
//! [`WriteFacts`] the store loads inside the change's own transaction, so two first publishes of
//! one name cannot both win on either store.

use std::collections::BTreeMap;

use super::StoreError;
use super::orgs::OrgFacts;
use crate::audit::AuditEvent;
use crate::packages::RegistryError;

/// One stored version.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// The version string.
    pub version: String,
    /// The version object as JSON text (server fields applied, no `dist.tarball`).
    pub manifest: String,
    /// `sha512-<base64>`.
    pub integrity: String,
    /// Hex SHA-1.
    pub shasum: String,
    /// Content address of the tarball in the blob store.
    pub blob_key: String,
    /// Tarball size in bytes.
    pub size: i64,
    /// Deprecation message.
    pub deprecated: Option<String>,
    /// README text.
    pub readme: Option<String>,
    /// Publish time (ms).
    pub published_at: i64,
    /// Registry signatures (`dist.signatures`); empty until the version is signed.
    pub signatures: Vec<Signature>,
}

/// One registry signature of a version, as `dist.signatures` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signature {
    /// The signing key's id.
    pub keyid: String,
    /// Base64 DER ECDSA signature over `<name>@<version>:<integrity>`.
    pub sig: String,
}

/// Parses the JSON array of signatures the stores aggregate per version (`None`: no rows).
pub fn parse_signatures(json: Option<&str>) -> Result<Vec<Signature>, StoreError> {
    match json {
        None => Ok(Vec::new()),
        Some(text) => Ok(serde_json::from_str(text)?),
    }
}

/// Everything a packument is built from.
#[derive(Debug, Clone)]
pub struct PackageRecord {
    /// Package name.
    pub name: String,
    /// `public` or `restricted`.
    pub access: String,
    /// Write counter, for `_rev`.
    pub rev: i64,
    /// First publish (ms).
    pub created_at: i64,
    /// Last write (ms).
    pub modified_at: i64,
    /// All versions, in publish order.
    pub versions: Vec<VersionRow>,
    /// Tag → version.
    pub dist_tags: BTreeMap<String, String>,
    /// `(name, email)` of each maintainer, by name.
    pub maintainers: Vec<(String, String)>,
}

/// A version to insert.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Package name.
    pub package: String,
    /// Access for a new package.
    pub access: String,
    /// The row itself.
    pub row: VersionRow,
    /// Dist-tag the publish moves.
    pub tag: String,
    /// Publisher's user id, who becomes the first maintainer of a new package.
    pub publisher_id: i64,
    /// Sigstore bundles published with the version (provenance), stored in the same transaction.
    pub attestations: Vec<super::attestations::StoredAttestation>,
}

/// What happened to a publish the core allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The version landed.
    Committed,
    /// The version exists already, with this integrity.
    Exists {
        /// Integrity of the stored tarball.
        integrity: String,
    },
    /// The version was published once and unpublished; it can never come back.
    Retired,
}

/// Where a version's tarball is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarballRow {
    /// Content address in the blob store.
    pub blob_key: String,
    /// Size in bytes.
    pub size: i64,
    /// Hex SHA-1.
    pub shasum: String,
}

/// What the rules on changing a package decide on, loaded for one user inside the change's
/// transaction (see `crate::packages::registry::may_write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFacts {
    /// Whether the package exists.
    pub exists: bool,
    /// Whether the user maintains it.
    pub is_maintainer: bool,
    /// The user's standing in the org, when the package's scope is an org's.
    pub org: Option<OrgFacts>,
    /// Loaded only when the package does not exist: what creating it depends on.
    pub new_name: Option<NewNameFacts>,
}

/// What creating a package of a name depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNameFacts {
    /// `None` when the name was never retired (every version unpublished), else whether the
    /// user maintained it then.
    pub retired: Option<bool>,
    /// Owner `(id, name)` of the package's scope, when it has one that is not an org's.
    pub scope_owner: Option<(i64, String)>,
    /// Whether any package exists under that scope.
    pub scope_has_packages: bool,
}

/// What the core allows a publish to do besides inserting the version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishPlan {
    /// A scope (without `@`) the publish claims for its publisher when it commits.
    pub claim_scope: Option<String>,
}

/// The core's decision over the facts of a change, run inside the change's transaction.
pub type Decide<T> = Box<dyn FnOnce(&WriteFacts) -> Result<T, RegistryError> + Send>;

/// What an unpublish removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// These versions, retired forever; `latest` moves to `new_latest` when it was removed.
    Versions {
        /// The versions.
        versions: Vec<String>,
        /// The version `latest` points at afterwards, when it pointed at a removed one.
        new_latest: Option<String>,
    },
    /// The whole package: its versions and its name are retired, remembering its maintainers.
    Package,
}

/// What an unpublish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnpublishOutcome {
    /// Removed; these blob keys are no longer referenced by any version.
    Removed {
        /// Blob keys to delete.
        freed_blobs: Vec<String>,
    },
    /// The package changed since the read the removal was decided on; nothing was removed.
    Changed,
}

/// Who may read a scoped package: its access and whether its scope is an org's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    /// `public` or `restricted`.
    pub access: String,
    /// Whether the package's scope is an org.
    pub org_scope: bool,
}

/// Adds a team grant to a collaborator map (user → `read`/`write`): a user's strongest grant wins.
pub fn add_grant(out: &mut BTreeMap<String, String>, user: String, permission: String) {
    let entry = out.entry(user).or_insert_with(|| permission.clone());
    if permission == "write" {
        *entry = permission;
    }
}

/// Package operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait PackageStore: Send + Sync {
    /// Everything about one package (versions fetched in one query), or `None`.
    async fn load_package(&self, name: &str) -> Result<Option<PackageRecord>, StoreError>;

    /// The dist-tags of a package, or `None` when it does not exist.
    async fn dist_tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, StoreError>;

    /// Where the tarball of `name@version` is.
    async fn find_tarball(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<TarballRow>, StoreError>;

    /// The facts deciding whether `user_id` may change `name` (outside any change).
    async fn write_facts(&self, name: &str, user_id: i64) -> Result<WriteFacts, StoreError>;

    /// Publishes a version in one transaction: loads the [`WriteFacts`] of the publisher, lets
    /// `decide` refuse or plan, inserts the version (creating the package with the publisher as
    /// maintainer on first publish), moves the dist-tag (and `latest` when the package has
    /// none), claims the planned scope and records `events`, all only when the version is new.
    async fn commit_publish(
        &self,
        new: NewVersion,
        events: Vec<AuditEvent>,
        decide: Decide<PublishPlan>,
    ) -> Result<PublishOutcome, RegistryError>;

    /// Points a dist-tag at a version and records `events`; returns the new tags.
    async fn set_dist_tag(
        &self,
        name: &str,
        tag: &str,
        version: &str,
        events: Vec<AuditEvent>,
    ) -> Result<BTreeMap<String, String>, StoreError>;

    /// Removes a dist-tag and records `events`; returns the new tags, or `None` (nothing
    /// recorded) when the package had no such tag.
    async fn remove_dist_tag(
        &self,
        name: &str,
        tag: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError>;

    /// Sets (`Some`) or clears (`None`) the deprecation message of each listed version, and
    /// records `events`.
    async fn set_deprecations(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError>;

    /// Replaces the maintainers with the users named and records `events`; answers the first
    /// name with no account (then nothing changes), or `None`.
    async fn set_maintainers(
        &self,
        name: &str,
        users: Vec<String>,
        events: Vec<AuditEvent>,
    ) -> Result<Option<String>, StoreError>;

    /// Removes versions or the whole package if it is still at `read_rev`, recording `events`
    /// first (their deliveries go to the maintainers' hooks, which a whole-package removal
    /// deletes).
    async fn commit_unpublish(
        &self,
        name: &str,
        read_rev: i64,
        removal: Removal,
        events: Vec<AuditEvent>,
    ) -> Result<UnpublishOutcome, StoreError>;

    /// The keys among `keys` that no version references, checked in a write transaction so a
    /// publish that committed before is seen.
    async fn unreferenced_blobs(&self, keys: Vec<String>) -> Result<Vec<String>, StoreError>;

    /// A package's access (`public`/`restricted`), if it exists.
    async fn package_access(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Sets a package's access and records `events`; answers whether the package exists.
    async fn set_access(
        &self,
        name: &str,
        access: &str,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError>;

    /// Who may do what with a package: maintainers `write`; team grants add their members.
    async fn collaborators(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError>;

    /// The visibility of a package whose scope is `slug`, if the package exists.
    async fn visibility(&self, name: &str, slug: &str) -> Result<Option<Visibility>, StoreError>;
}
