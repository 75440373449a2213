//! Queries on `stages` and `org_policies`, and the SQLite side of
//! [`crate::store::StageStore`]. SQLite has one writer, so each change is race-free as one
//! write transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::{events, orgs as org_rows, packages};
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
pub fn staged_id(
    conn: &Connection,
    package: &str,
    version: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM stages WHERE package = ?1 AND version = ?2")?
        .query_row(params![package, version], |row| row.get(0))
        .optional()?)
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(StageRow, String, String)> {
    Ok((
        StageRow {
            id: row.get(0)?,
            package: row.get(1)?,
            version: row.get(2)?,
            tag: row.get(3)?,
            access: row.get(4)?,
            manifest: row.get(5)?,
            integrity: row.get(6)?,
            shasum: row.get(7)?,
            blob_key: row.get(8)?,
            size: row.get(9)?,
            readme: row.get(10)?,
            attestations: Vec::new(),
            details: serde_json::Value::Null,
            actor_id: row.get(13)?,
            actor_name: row.get(14)?,
            actor_type: row.get(15)?,
            created_at: row.get(16)?,
        },
        row.get(11)?,
        row.get(12)?,
    ))
}

fn finish(
    (mut stage, attestations, details): (StageRow, String, String),
) -> Result<StageRow, StoreError> {
    stage.attestations = parse_attestations(&attestations)?;
    stage.details = serde_json::from_str(&details)?;
    Ok(stage)
}

fn select(conn: &Connection, filter: &str, key: &str) -> Result<Vec<StageRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM stages {filter} ORDER BY created_at, id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let raw = if filter.is_empty() {
        stmt.query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?
    } else {
        stmt.query_map([key], from_row)?
            .collect::<Result<Vec<_>, _>>()?
    };
    raw.into_iter().map(finish).collect()
}

fn insert(conn: &Connection, stage: &StageRow) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO stages ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?
    .execute(params![
        stage.id,
        stage.package,
        stage.version,
        stage.tag,
        stage.access,
        stage.manifest,
        stage.integrity,
        stage.shasum,
        stage.blob_key,
        stage.size,
        stage.readme,
        attestations_json(&stage.attestations),
        stage.details.to_string(),
        stage.actor_id,
        stage.actor_name,
        stage.actor_type,
        stage.created_at
    ])?;
    Ok(())
}

/// Deletes a stage and answers it, or `None`.
fn take(conn: &Connection, id: &str) -> Result<Option<StageRow>, StoreError> {
    let Some(stage) = select(conn, "WHERE id = ?1", id)?.into_iter().next() else {
        return Ok(None);
    };
    conn.execute("DELETE FROM stages WHERE id = ?1", [id])?;
    Ok(Some(stage))
}

/// What stands in the way of staging `package@version`, if anything.
fn reserved(
    conn: &Connection,
    package: &str,
    version: &str,
) -> Result<Option<StageOutcome>, StoreError> {
    let retired = conn
        .prepare_cached("SELECT 1 FROM retired_versions WHERE package = ?1 AND version = ?2")?
        .query_row(params![package, version], |_| Ok(()))
        .optional()?;
    if retired.is_some() {
        return Ok(Some(StageOutcome::Retired));
    }
    let published: Option<String> = conn
        .prepare_cached("SELECT integrity FROM versions WHERE package = ?1 AND version = ?2")?
        .query_row(params![package, version], |row| row.get(0))
        .optional()?;
    if let Some(integrity) = published {
        return Ok(Some(StageOutcome::Exists { integrity }));
    }
    Ok(staged_id(conn, package, version)?.map(|id| StageOutcome::AlreadyStaged { id }))
}

fn org_id(conn: &Connection, slug: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM orgs WHERE slug = ?1")?
        .query_row([slug], |row| row.get(0))
        .optional()?)
}

#[async_trait::async_trait]
impl crate::store::StageStore for super::Sqlite {
    async fn create_stage(
        &self,
        stage: StageRow,
        events: Vec<AuditEvent>,
        decide: Decide<()>,
    ) -> Result<StageOutcome, RegistryError> {
        self.write(move |tx| {
            let facts = packages::write_facts(tx, &stage.package, stage.actor_id)?;
            if let Err(refused) = decide(&facts) {
                return Ok(Err(refused));
            }
            if let Some(outcome) = reserved(tx, &stage.package, &stage.version)? {
                return Ok(Ok(outcome));
            }
            insert(tx, &stage)?;
            events::record_all(tx, &events)?;
            Ok(Ok(StageOutcome::Staged))
        })
        .await?
    }

    async fn stage(&self, id: &str) -> Result<Option<StageRow>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| Ok(select(conn, "WHERE id = ?1", &id)?.into_iter().next()))
            .await
    }

    async fn list_stages(&self, package: Option<&str>) -> Result<Vec<StageRow>, StoreError> {
        let package = package.map(str::to_owned);
        self.read(move |conn| match &package {
            Some(name) => select(conn, "WHERE package = ?1", name),
            None => select(conn, "", ""),
        })
        .await
    }

    async fn approve_stage(
        &self,
        id: &str,
        new: NewVersion,
        claim_scope: Option<String>,
        events: Vec<AuditEvent>,
    ) -> Result<ApproveOutcome, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            if take(tx, &id)?.is_none() {
                return Ok(ApproveOutcome::Gone);
            }
            let outcome = packages::commit_publish(tx, &new)?;
            if outcome == PublishOutcome::Committed {
                super::attestations::insert(tx, &new)?;
                if let Some(slug) = &claim_scope {
                    org_rows::set_scope_owner(tx, slug, new.publisher_id, None, clock::now_ms())?;
                }
                events::record_all(tx, &events)?;
            }
            Ok(ApproveOutcome::Published(outcome))
        })
        .await
    }

    async fn reject_stage(
        &self,
        id: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<StageRow>, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let removed = take(tx, &id)?;
            if removed.is_some() {
                events::record_all(tx, &events)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn org_policy(&self, slug: &str) -> Result<Option<OrgPolicy>, StoreError> {
        let slug = slug.to_owned();
        self.read(move |conn| {
            let Some(org) = org_id(conn, &slug)? else {
                return Ok(None);
            };
            let row = conn
                .prepare_cached(
                    "SELECT require_approval, approvers, require_provenance, require_trusted_publishing
                     FROM org_policies WHERE org_id = ?1",
                )?
                .query_row([org], |row| {
                    Ok((
                        row.get::<_, bool>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, bool>(2)?,
                        row.get::<_, bool>(3)?,
                    ))
                })
                .optional()?;
            let Some((require_approval, approvers, require_provenance, require_trusted_publishing)) =
                row
            else {
                return Ok(Some(OrgPolicy::default()));
            };
            Ok(Some(OrgPolicy {
                require_approval,
                approvers: serde_json::from_str(&approvers)?,
                require_provenance,
                require_trusted_publishing,
            }))
        })
        .await
    }

    async fn set_org_policy(
        &self,
        slug: &str,
        policy: OrgPolicy,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let slug = slug.to_owned();
        self.write(move |tx| {
            let Some(org) = org_id(tx, &slug)? else {
                return Ok(false);
            };
            tx.execute(
                "INSERT INTO org_policies (org_id, require_approval, approvers, require_provenance,
                                           require_trusted_publishing, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(org_id) DO UPDATE SET
                    require_approval = excluded.require_approval,
                    approvers = excluded.approvers,
                    require_provenance = excluded.require_provenance,
                    require_trusted_publishing = excluded.require_trusted_publishing,
                    updated_at = excluded.updated_at",
                params![
                    org,
                    policy.require_approval,
                    serde_json::to_string(&policy.approvers)?,
                    policy.require_provenance,
                    policy.require_trusted_publishing,
                    clock::now_ms()
                ],
            )?;
            events::record_all(tx, &events)?;
            Ok(true)
        })
        .await
    }
}
