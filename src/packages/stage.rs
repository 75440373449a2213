//! Staged publishing (npm-protocol.md §5.5): `npm stage publish` checks a version exactly as a
//! publish does and stores it aside; it is invisible to installs and reserves its version until
//! someone approves it (then it is published as if it were published then: signed, webhooks,
//! audit) or rejects it (then its record and tarball are gone).
//!
//! Who decides (README "Staged publishing and approvals"):
//! - under an org policy with `require_approval`, only a listed approver (a user, or a member of
//!   a listed team) who is not the stager approves or rejects;
//! - otherwise whoever may publish the package: its maintainers (for an org's package, whoever
//!   the org's rule lets write it), registry admins, and, for a package outside an org that
//!   does not exist yet, its stager.
//!
//! Reviewers (view, list, download) are those deciders, the stager, the package's maintainers
//! and registry admins.

use serde_json::{Map, Value, json};

use super::publish::Prepared;
use super::registry::{Tarball, may_change, may_publish, scope_to_claim};
use super::{PackageName, Registry, RegistryError, policy};
use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission, UserRole};
use crate::clock;
use crate::store::BlobKey;
use crate::store::packages::{NewVersion, PublishOutcome, VersionRow};
use crate::store::stages::{ApproveOutcome, StageOutcome, StageRow};

/// The refusal of a publish or stage of a version another stage holds.
pub fn staged_conflict(package: &str, version: &str, id: &str) -> RegistryError {
    RegistryError::Conflict(format!(
        "{package}@{version} is staged for approval with id {id}: approve it (`npm stage approve {id}`) or reject it (`npm stage reject {id}`) instead of publishing that version again; `npm stage list {package}` shows the id"
    ))
}

fn no_stage(id: &str) -> RegistryError {
    RegistryError::NotFound(format!("no staged version has the id {id}"))
}

/// A stage as `npm stage list|view` shows it.
pub fn item(stage: &StageRow) -> Value {
    json!({
        "id": stage.id,
        "packageName": stage.package,
        "version": stage.version,
        "status": "staged",
        "tag": stage.tag,
        "createdAt": clock::iso(stage.created_at),
        "actor": stage.actor_name,
        "actorType": stage.actor_type,
        "shasum": stage.shasum,
        "integrity": stage.integrity,
        "access": stage.access,
        "provenance": !stage.attestations.is_empty(),
    })
}

impl Registry {
    /// `npm stage publish`: checks the version as a publish would (and the org policy for a
    /// stage), stores its tarball and the stage; answers the stage id.
    #[tracing::instrument(skip_all, fields(package = %url_name))]
    pub async fn stage(
        &self,
        caller: &Caller,
        url_name: &PackageName,
        body: Value,
    ) -> Result<String, RegistryError> {
        caller.require_for(Permission::Publish, "stage", url_name.as_str())?;
        let Prepared {
            request,
            digests,
            manifest,
            readme,
            provenance,
            details,
            trusted_publisher,
            key,
        } = self.prepare(caller, url_name, body, true).await?;
        let (claim, shared) = self.put_claimed(&key, request.tarball.clone()).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let stage = StageRow {
            id: id.clone(),
            package: request.name.to_string(),
            version: request.version.to_string(),
            tag: request.tag.to_string(),
            access: request.access.to_owned(),
            manifest: Value::Object(manifest).to_string(),
            integrity: digests.sha512_integrity.clone(),
            shasum: digests.sha1_hex.clone(),
            blob_key: key.as_str().to_owned(),
            size: request.tarball.len() as i64,
            readme,
            attestations: provenance
                .into_iter()
                .map(|checked| crate::store::attestations::StoredAttestation {
                    predicate_type: checked.predicate_type,
                    bundle: checked.bundle,
                })
                .collect(),
            details,
            actor_id: caller.user_id,
            actor_name: caller.name.clone(),
            actor_type: if trusted_publisher {
                "trusted-publisher"
            } else {
                "user"
            }
            .to_owned(),
            created_at: clock::now_ms(),
        };
        let event = AuditEvent::by(
            caller,
            "package.staged",
            json!({ "stage_id": id, "version": stage.version, "tag": stage.tag, "integrity": stage.integrity }),
        )
        .on_package(&stage.package);
        let (actor, package) = (caller.clone(), stage.package.clone());
        let decide = Box::new(move |facts: &_| may_publish(facts, &actor, &package).map(|_| ()));
        let result = match self.store.create_stage(stage, vec![event], decide).await {
            Ok(StageOutcome::Staged) => Ok(id),
            Ok(StageOutcome::Exists { .. }) => {
                Err(RegistryError::VersionExists(request.version.to_string()))
            }
            Ok(StageOutcome::Retired) => {
                Err(RegistryError::VersionRetired(request.version.to_string()))
            }
            Ok(StageOutcome::AlreadyStaged { id }) => Err(staged_conflict(
                request.name.as_str(),
                &request.version.to_string(),
                &id,
            )),
            Err(err) => Err(err),
        };
        match &result {
            Ok(id) => {
                tracing::info!(version = %request.version, stage = %id, "staged");
                // Released once the stage is committed, so a discard elsewhere sees one or the other.
                drop(shared);
            }
            Err(_) => self.discard_blob(&claim, shared, key).await,
        }
        result
    }

    /// One stage, for a caller allowed to review it.
    pub async fn staged(&self, caller: &Caller, id: &str) -> Result<StageRow, RegistryError> {
        let stage = self.store.stage(id).await?.ok_or_else(|| no_stage(id))?;
        if self.may_review(caller, &stage).await? {
            Ok(stage)
        } else {
            Err(RegistryError::PolicyDenied(format!(
                "{} may not review the staged versions of {}: only the stager, the package's maintainers and the approvers of its org may",
                caller.name, stage.package
            )))
        }
    }

    /// The stages the caller may review, of one package or all, oldest first.
    pub async fn staged_list(
        &self,
        caller: &Caller,
        package: Option<&str>,
    ) -> Result<Vec<StageRow>, RegistryError> {
        caller.require(Permission::Read)?;
        let mut visible = Vec::new();
        for stage in self.store.list_stages(package).await? {
            if self.may_review(caller, &stage).await? {
                visible.push(stage);
            }
        }
        Ok(visible)
    }

    /// The tarball of a stage, for a caller allowed to review it.
    pub async fn staged_tarball(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Tarball, RegistryError> {
        let stage = self.staged(caller, id).await?;
        let key = BlobKey::parse(&stage.blob_key).ok_or_else(|| {
            RegistryError::Internal(format!("stored blob key is malformed: {}", stage.blob_key))
        })?;
        let blob = self.blobs.get(&key).await?.ok_or_else(|| {
            RegistryError::Internal(format!("blob {} of stage {id} is missing", stage.blob_key))
        })?;
        Ok(Tarball {
            blob,
            shasum: stage.shasum,
        })
    }

    /// `npm stage approve`: publishes the staged version as if it were published now, with the
    /// stager as `_npmUser` and the approver as `_approvedBy`.
    #[tracing::instrument(skip_all, fields(stage = %id))]
    pub async fn approve_stage(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<StageRow, RegistryError> {
        let stage = self.store.stage(id).await?.ok_or_else(|| no_stage(id))?;
        self.check_decider(caller, &stage, "approve").await?;
        self.check_stager_enabled(&stage).await?;
        let mut manifest: Map<String, Value> = serde_json::from_str(&stage.manifest)
            .map_err(|e| RegistryError::Internal(format!("stage {id} manifest: {e}")))?;
        let approver = json!({ "name": caller.name, "email": caller.email });
        manifest.insert("_approvedBy".into(), approver.clone());
        let signatures = self
            .sign_version(&stage.package, &stage.version, &stage.integrity)
            .await?;
        let stager_facts = self
            .store
            .write_facts(&stage.package, stage.actor_id)
            .await?;
        let claim_scope = (!stager_facts.exists)
            .then(|| scope_to_claim(&stager_facts, &stage.package).map(str::to_owned))
            .flatten();
        let new = NewVersion {
            package: stage.package.clone(),
            access: stage.access.clone(),
            row: VersionRow {
                version: stage.version.clone(),
                manifest: Value::Object(manifest).to_string(),
                integrity: stage.integrity.clone(),
                shasum: stage.shasum.clone(),
                blob_key: stage.blob_key.clone(),
                size: stage.size,
                deprecated: None,
                readme: stage.readme.clone(),
                published_at: clock::now_ms(),
                signatures,
            },
            tag: stage.tag.clone(),
            publisher_id: stage.actor_id,
            attestations: stage.attestations.clone(),
        };
        let mut details = stage.details.clone();
        details["stage_id"] = json!(stage.id);
        details["staged_by"] = json!(stage.actor_name);
        details["approved_by"] = json!(caller.name);
        let published = AuditEvent::by_user(
            stage.actor_id,
            &stage.actor_name,
            &caller.origin,
            "package.published",
            details,
        )
        .on_package(&stage.package);
        let approved = AuditEvent::by(
            caller,
            "package.stage_approved",
            json!({ "stage_id": stage.id, "version": stage.version, "staged_by": stage.actor_name }),
        )
        .on_package(&stage.package);
        match self
            .store
            .approve_stage(id, new, claim_scope, vec![approved, published])
            .await?
        {
            ApproveOutcome::Gone => Err(no_stage(id)),
            ApproveOutcome::Published(PublishOutcome::Committed) => {
                self.wrote(&stage.package);
                tracing::info!(package = %stage.package, version = %stage.version, approver = %caller.name, "staged version approved and published");
                Ok(stage)
            }
            ApproveOutcome::Published(PublishOutcome::Retired) => {
                Err(RegistryError::VersionRetired(stage.version))
            }
            ApproveOutcome::Published(_) => Err(RegistryError::VersionExists(stage.version)),
        }
    }

    /// `npm stage reject`: deletes the stage and its tarball.
    #[tracing::instrument(skip_all, fields(stage = %id))]
    pub async fn reject_stage(&self, caller: &Caller, id: &str) -> Result<(), RegistryError> {
        let stage = self.store.stage(id).await?.ok_or_else(|| no_stage(id))?;
        self.check_decider(caller, &stage, "reject").await?;
        let event = AuditEvent::by(
            caller,
            "package.stage_rejected",
            json!({ "stage_id": stage.id, "version": stage.version, "staged_by": stage.actor_name }),
        )
        .on_package(&stage.package);
        let removed = self
            .store
            .reject_stage(id, vec![event])
            .await?
            .ok_or_else(|| no_stage(id))?;
        if let Some(key) = BlobKey::parse(&removed.blob_key) {
            let claim = self.blob_claims.claim(key.as_str()).await;
            let shared = self.claim_shared(&key).await?;
            self.discard_blob(&claim, shared, key).await;
        }
        tracing::info!(package = %stage.package, version = %stage.version, "staged version rejected");
        Ok(())
    }

    /// The version goes out as its stager's (`_npmUser`): an account disabled since it staged
    /// (a leaked token, someone who left) publishes nothing more, approved or not.
    async fn check_stager_enabled(&self, stage: &StageRow) -> Result<(), RegistryError> {
        let standing = self.store.user_standing(stage.actor_id).await?;
        if standing.is_some_and(|standing| standing.disabled_at.is_none()) {
            return Ok(());
        }
        Err(RegistryError::Conflict(format!(
            "{} staged {}@{}, and that account is disabled now: its staged versions cannot be approved. Reject this one (npm stage reject {}) and stage the version again from an enabled account",
            stage.actor_name, stage.package, stage.version, stage.id
        )))
    }

    /// Whether the caller may approve or reject `stage` (see the module's rules).
    async fn check_decider(
        &self,
        caller: &Caller,
        stage: &StageRow,
        verb: &'static str,
    ) -> Result<(), RegistryError> {
        if caller.scopes.iter().any(|s| s.contains(':')) {
            return Err(RegistryError::PolicyDenied(format!(
                "a trusted-publishing token cannot {verb} staged versions: a person does, with their own token (npm login)"
            )));
        }
        caller.require_for(Permission::Publish, verb, &stage.package)?;
        if let Some((slug, rules)) = policy::governing(&self.store, &stage.package).await?
            && rules.require_approval
        {
            if caller.user_id == stage.actor_id {
                return Err(RegistryError::PolicyDenied(format!(
                    "{} staged {}@{} and cannot {verb} it: @{slug} requires an approver other than the stager ({})",
                    caller.name,
                    stage.package,
                    stage.version,
                    rules.approvers.join(", ")
                )));
            }
            if !policy::is_approver(&self.store, &slug, &rules, &caller.name).await? {
                return Err(RegistryError::PolicyDenied(format!(
                    "{} is not an approver of @{slug}: only {} may approve or reject its staged versions",
                    caller.name,
                    rules.approvers.join(", ")
                )));
            }
            return Ok(());
        }
        let facts = self
            .store
            .write_facts(&stage.package, caller.user_id)
            .await?;
        let exists = may_change(&facts, caller, &stage.package)?;
        // Outside an org, a package with no versions has no maintainers to decide yet.
        if !exists && facts.org.is_none() && caller.user_id != stage.actor_id && !caller.is_admin()
        {
            return Err(RegistryError::PolicyDenied(format!(
                "{} has no maintainers yet: only its stager ({}) or a registry admin may {verb} its first version",
                stage.package, stage.actor_name
            )));
        }
        Ok(())
    }

    /// Whether the caller may see `stage`: its stager, registry admins, whoever may decide on
    /// it, and the package's maintainers.
    async fn may_review(&self, caller: &Caller, stage: &StageRow) -> Result<bool, RegistryError> {
        if caller.user_id == stage.actor_id
            || caller.is_admin()
            || caller.user_role == UserRole::Admin
        {
            return Ok(true);
        }
        if caller
            .require_for(Permission::Read, "review", &stage.package)
            .is_err()
        {
            return Ok(false);
        }
        if let Some((slug, rules)) = policy::governing(&self.store, &stage.package).await?
            && rules.require_approval
            && policy::is_approver(&self.store, &slug, &rules, &caller.name).await?
        {
            return Ok(true);
        }
        let facts = self
            .store
            .write_facts(&stage.package, caller.user_id)
            .await?;
        Ok(may_change(&facts, caller, &stage.package).unwrap_or(false))
    }
}
