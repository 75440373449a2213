//! The staged-publishing part of the metadata store seam (npm-protocol.md §5.5): versions
//! validated and stored at `npm stage publish`, waiting for an approval, and the org policies
//! that decide who approves and what a publish must carry.
//!
//! A stage reserves its version: [`StageStore::create_stage`] refuses a version that is
//! published, retired or staged already, and `commit_publish` refuses a staged one, each checked
//! under the package's lock in the change's own transaction.

use serde_json::Value;

use super::StoreError;
use super::attestations::StoredAttestation;
use super::packages::{Decide, NewVersion, PublishOutcome};
use crate::audit::AuditEvent;
use crate::packages::RegistryError;

/// One staged version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRow {
    /// The stage id (a UUID).
    pub id: String,
    /// Package name.
    pub package: String,
    /// The version.
    pub version: String,
    /// The dist-tag the approval moves.
    pub tag: String,
    /// Access for a new package.
    pub access: String,
    /// The version object as it will be published (JSON text, `_npmUser` the stager).
    pub manifest: String,
    /// `sha512-<base64>`.
    pub integrity: String,
    /// Hex SHA-1.
    pub shasum: String,
    /// Content address of the tarball in the blob store.
    pub blob_key: String,
    /// Tarball size in bytes.
    pub size: i64,
    /// README text.
    pub readme: Option<String>,
    /// Sigstore bundles sent with the stage.
    pub attestations: Vec<StoredAttestation>,
    /// Details the `package.published` event will carry (version, tag, provenance).
    pub details: Value,
    /// The stager's user id.
    pub actor_id: i64,
    /// The stager's name.
    pub actor_name: String,
    /// `user` or `trusted-publisher`.
    pub actor_type: String,
    /// When it was staged (ms).
    pub created_at: i64,
}

/// What creating a stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageOutcome {
    /// Staged.
    Staged,
    /// The version is published already, with this integrity.
    Exists {
        /// Integrity of the published tarball.
        integrity: String,
    },
    /// The version was published once and unpublished.
    Retired,
    /// Another stage holds the version.
    AlreadyStaged {
        /// That stage's id.
        id: String,
    },
}

/// What approving a stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveOutcome {
    /// No such stage (approved or rejected meanwhile): nothing changed.
    Gone,
    /// The stage is gone and its version went through the publish commit with this outcome.
    Published(PublishOutcome),
}

/// An org's publishing policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrgPolicy {
    /// A plain publish under the scope is refused; versions are staged and approved.
    pub require_approval: bool,
    /// Users or teams of the org who may approve and reject.
    pub approvers: Vec<String>,
    /// Every publish or stage must carry a provenance bundle matching its tarball.
    pub require_provenance: bool,
    /// Every publish or stage must come through a trusted-publisher token.
    pub require_trusted_publishing: bool,
}

/// Staged versions and org policies, implemented by every metadata store.
#[async_trait::async_trait]
pub trait StageStore: Send + Sync {
    /// Stores a stage in one transaction under the package's lock: loads the stager's write
    /// facts, lets `decide` refuse, then inserts the stage and records `events` only when the
    /// version is neither published, retired nor staged.
    async fn create_stage(
        &self,
        stage: StageRow,
        events: Vec<AuditEvent>,
        decide: Decide<()>,
    ) -> Result<StageOutcome, RegistryError>;

    /// One stage by id.
    async fn stage(&self, id: &str) -> Result<Option<StageRow>, StoreError>;

    /// Every stage, or one package's, oldest first.
    async fn list_stages(&self, package: Option<&str>) -> Result<Vec<StageRow>, StoreError>;

    /// Deletes stage `id` and publishes `new` in the same transaction (as `commit_publish` does,
    /// claiming `claim_scope` for a first publish), recording `events` when the version lands.
    /// Of two approvals of one stage, exactly one finds it.
    async fn approve_stage(
        &self,
        id: &str,
        new: NewVersion,
        claim_scope: Option<String>,
        events: Vec<AuditEvent>,
    ) -> Result<ApproveOutcome, StoreError>;

    /// Deletes stage `id` and records `events`; answers the removed stage, or `None` (nothing
    /// recorded) when there was none.
    async fn reject_stage(
        &self,
        id: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<StageRow>, StoreError>;

    /// The policy of org `slug` (the default when none was set), or `None` when there is no
    /// such org.
    async fn org_policy(&self, slug: &str) -> Result<Option<OrgPolicy>, StoreError>;

    /// Replaces the policy of org `slug` and records `events`; answers whether the org exists.
    async fn set_org_policy(
        &self,
        slug: &str,
        policy: OrgPolicy,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError>;
}

/// The attestations of a stage as stored (a JSON array).
pub fn attestations_json(list: &[StoredAttestation]) -> String {
    Value::Array(
        list.iter()
            .map(|a| serde_json::json!({ "predicate_type": a.predicate_type, "bundle": a.bundle }))
            .collect(),
    )
    .to_string()
}

/// Parses [`attestations_json`]'s text.
pub fn parse_attestations(text: &str) -> Result<Vec<StoredAttestation>, StoreError> {
    let list: Vec<Value> = serde_json::from_str(text)?;
    Ok(list
        .into_iter()
        .map(|a| StoredAttestation {
            predicate_type: a["predicate_type"].as_str().unwrap_or_default().to_owned(),
            bundle: a["bundle"].as_str().unwrap_or_default().to_owned(),
        })
        .collect())
}
