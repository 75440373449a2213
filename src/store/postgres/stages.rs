//! PostgreSQL side of [`crate::store::StageStore`]. Creating, approving and rejecting a stage
//! take the package's advisory lock (`package:<name>`) like a publish does, so a stage and a
//! publish of one version cannot both land; two approvals of one stage race on its `DELETE`,
//! which only one of them finds.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::packages::{
    exec, insert_version, lock, opt, package_lock, record_landing, rows, write_facts,
};
use crate::audit::AuditEvent;
use crate::clock;
use crate::packages::RegistryError;
use crate::store::StoreError;
use crate::store::packages::{Decide, NewVersion, PublishOutcome};
use crate::store::stages::{
    ApproveOutcome, OrgPolicy, StageOutcome, StageRow, attestations_json, parse_attestations,
};

const COLUMNS: &str = "id, package, version, tag, access, manifest, integrity, shasum, blob_key, \
                       size, readme, attestations, details, actor_id, actor_name, actor_type, created_at";

/// The stage holding `package@version`, if one does.
pub async fn staged_id<C: GenericClient>(
    client: &C,
    package: &str,
    version: &str,
) -> Result<Option<String>, StoreError> {
    Ok(opt(
        client,
        "SELECT id FROM stages WHERE package = $1 AND version = $2",
        &[&package, &version],
    )
    .await?
    .map(|row| row.get(0)))
}

fn from_row(row: &Row) -> Result<StageRow, StoreError> {
    let attestations: String = row.get(11);
    let details: String = row.get(12);
    Ok(StageRow {
        id: row.get(0),
        package: row.get(1),
        version: row.get(2),
        tag: row.get(3),
        access: row.get(4),
        manifest: row.get(5),
        integrity: row.get(6),
        shasum: row.get(7),
        blob_key: row.get(8),
        size: row.get(9),
        readme: row.get(10),
        attestations: parse_attestations(&attestations)?,
        details: serde_json::from_str(&details)?,
        actor_id: row.get(13),
        actor_name: row.get(14),
        actor_type: row.get(15),
        created_at: row.get(16),
    })
}

/// What stands in the way of staging `package@version`, if anything.
async fn reserved<C: GenericClient>(
    client: &C,
    package: &str,
    version: &str,
) -> Result<Option<StageOutcome>, StoreError> {
    let retired = opt(
        client,
        "SELECT 1 FROM retired_versions WHERE package = $1 AND version = $2",
        &[&package, &version],
    )
    .await?;
    if retired.is_some() {
        return Ok(Some(StageOutcome::Retired));
    }
    let published = opt(
        client,
        "SELECT integrity FROM versions WHERE package = $1 AND version = $2",
        &[&package, &version],
    )
    .await?;
    if let Some(row) = published {
        return Ok(Some(StageOutcome::Exists {
            integrity: row.get(0),
        }));
    }
    Ok(staged_id(client, package, version)
        .await?
        .map(|id| StageOutcome::AlreadyStaged { id }))
}

/// Deletes a stage and answers it, or `None` when another transaction took it first.
async fn take<C: GenericClient>(client: &C, id: &str) -> Result<Option<StageRow>, StoreError> {
    let row = opt(
        client,
        &format!("DELETE FROM stages WHERE id = $1 RETURNING {COLUMNS}"),
        &[&id],
    )
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The package a stage is of, to take its lock before touching it.
async fn package_of<C: GenericClient>(client: &C, id: &str) -> Result<Option<String>, StoreError> {
    Ok(
        opt(client, "SELECT package FROM stages WHERE id = $1", &[&id])
            .await?
            .map(|row| row.get(0)),
    )
}

#[async_trait::async_trait]
impl crate::store::StageStore for super::Postgres {
    async fn create_stage(
        &self,
        stage: StageRow,
        events: Vec<AuditEvent>,
        decide: Decide<()>,
    ) -> Result<StageOutcome, RegistryError> {
        let mut client = self.pool().get().await.map_err(StoreError::from)?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let facts = write_facts(&tx, &stage.package, stage.actor_id, true).await?;
        decide(&facts)?;
        if let Some(outcome) = reserved(&tx, &stage.package, &stage.version).await? {
            return Ok(outcome);
        }
        exec(
            &tx,
            &format!(
                "INSERT INTO stages ({COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
            ),
            &[
                &stage.id,
                &stage.package,
                &stage.version,
                &stage.tag,
                &stage.access,
                &stage.manifest,
                &stage.integrity,
                &stage.shasum,
                &stage.blob_key,
                &stage.size,
                &stage.readme,
                &attestations_json(&stage.attestations),
                &stage.details.to_string(),
                &stage.actor_id,
                &stage.actor_name,
                &stage.actor_type,
                &stage.created_at,
            ],
        )
        .await?;
        super::events::record_all(&tx, &events).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(StageOutcome::Staged)
    }

    async fn stage(&self, id: &str) -> Result<Option<StageRow>, StoreError> {
        let client = self.pool().get().await?;
        let row = opt(
            &client,
            &format!("SELECT {COLUMNS} FROM stages WHERE id = $1"),
            &[&id],
        )
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn list_stages(&self, package: Option<&str>) -> Result<Vec<StageRow>, StoreError> {
        let client = self.pool().get().await?;
        let found =
            match package {
                Some(name) => rows(
                    &client,
                    &format!(
                        "SELECT {COLUMNS} FROM stages WHERE package = $1 ORDER BY created_at, id"
                    ),
                    &[&name],
                )
                .await?,
                None => {
                    rows(
                        &client,
                        &format!("SELECT {COLUMNS} FROM stages ORDER BY created_at, id"),
                        &[],
                    )
                    .await?
                }
            };
        found.iter().map(from_row).collect()
    }

    async fn approve_stage(
        &self,
        id: &str,
        new: NewVersion,
        claim_scope: Option<String>,
        events: Vec<AuditEvent>,
    ) -> Result<ApproveOutcome, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, &package_lock(&new.package)).await?;
        if take(&tx, id).await?.is_none() {
            return Ok(ApproveOutcome::Gone);
        }
        let outcome = insert_version(&tx, &new).await?;
        if outcome == PublishOutcome::Committed {
            record_landing(&tx, &new, claim_scope.as_deref(), &events).await?;
        }
        tx.commit().await?;
        drop(client);
        self.wrote_package(&new.package).await;
        Ok(ApproveOutcome::Published(outcome))
    }

    async fn reject_stage(
        &self,
        id: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<StageRow>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let Some(package) = package_of(&tx, id).await? else {
            return Ok(None);
        };
        lock(&tx, &package_lock(&package)).await?;
        let removed = take(&tx, id).await?;
        if removed.is_some() {
            super::events::record_all(&tx, &events).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn org_policy(&self, slug: &str) -> Result<Option<OrgPolicy>, StoreError> {
        let client = self.pool().get().await?;
        let row = opt(
            &client,
            "SELECT p.org_id, p.require_approval, p.approvers, p.require_provenance,
                    p.require_trusted_publishing
             FROM orgs o LEFT JOIN org_policies p ON p.org_id = o.id WHERE o.slug = $1",
            &[&slug],
        )
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.get::<_, Option<i64>>(0).is_none() {
            return Ok(Some(OrgPolicy::default()));
        }
        let approvers: String = row.get(2);
        Ok(Some(OrgPolicy {
            require_approval: row.get(1),
            approvers: serde_json::from_str(&approvers)?,
            require_provenance: row.get(3),
            require_trusted_publishing: row.get(4),
        }))
    }

    async fn set_org_policy(
        &self,
        slug: &str,
        policy: OrgPolicy,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let approvers = serde_json::to_string(&policy.approvers)?;
        let changed = exec(
            &tx,
            "INSERT INTO org_policies (org_id, require_approval, approvers, require_provenance,
                                       require_trusted_publishing, updated_at)
             SELECT id, $2, $3, $4, $5, $6 FROM orgs WHERE slug = $1
             ON CONFLICT (org_id) DO UPDATE SET
                require_approval = excluded.require_approval,
                approvers = excluded.approvers,
                require_provenance = excluded.require_provenance,
                require_trusted_publishing = excluded.require_trusted_publishing,
                updated_at = excluded.updated_at",
            &[
                &slug,
                &policy.require_approval,
                &approvers,
                &policy.require_provenance,
                &policy.require_trusted_publishing,
                &clock::now_ms(),
            ],
        )
        .await?;
        if changed == 0 {
            return Ok(false);
        }
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        Ok(true)
    }
}
