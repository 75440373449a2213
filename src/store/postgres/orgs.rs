//! PostgreSQL side of [`crate::store::OrgStore`]: orgs, members, teams, grants, scope owners.
//!
//! A change to an org runs in one transaction that first locks the org's row (`FOR UPDATE`), so
//! the check of the acting user and the change cannot interleave with another change to it.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::packages::{exec, lock, opt, rows};
use crate::audit::AuditEvent;
use crate::clock;
use crate::orgs::OrgError;
use crate::store::StoreError;
use crate::store::orgs::{
    Authorize, ListedPackage, OrgAnswer, OrgChange, OrgFacts, OrgOutcome, OrgQuery, OrgRow,
    ReserveEvent, ReserveOutcome, ScopeStanding,
};

fn org_from_row(row: &Row) -> OrgRow {
    OrgRow {
        id: row.get(0),
        slug: row.get(1),
        display_name: row.get(2),
        created_at: row.get(3),
    }
}

/// The standing of `user_id` towards `package` when `slug` is an org's, else `None`.
pub(super) async fn org_facts<C: GenericClient>(
    client: &C,
    slug: &str,
    package: &str,
    user_id: i64,
) -> Result<Option<OrgFacts>, StoreError> {
    // 'write' sorts after 'read', so MAX is the strongest grant.
    Ok(opt(
        client,
        "SELECT (SELECT m.role FROM org_members m WHERE m.org_id = o.id AND m.user_id = $3),
                (SELECT MAX(tp.permission) FROM team_packages tp
                 JOIN team_members tm ON tm.team_id = tp.team_id
                 WHERE tp.package = $2 AND tm.user_id = $3)
         FROM orgs o WHERE o.slug = $1",
        &[&slug, &package, &user_id],
    )
    .await?
    .map(|row| OrgFacts {
        slug: slug.to_owned(),
        member_role: row.get(0),
        team_grant: row.get(1),
    }))
}

async fn user_id<C: GenericClient>(client: &C, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        opt(client, "SELECT id FROM users WHERE name = $1", &[&name])
            .await?
            .map(|row| row.get(0)),
    )
}

async fn find_team<C: GenericClient>(
    client: &C,
    org_id: i64,
    team: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(opt(
        client,
        "SELECT id FROM teams WHERE org_id = $1 AND name = $2",
        &[&org_id, &team],
    )
    .await?
    .map(|row| row.get(0)))
}

async fn members<C: GenericClient>(
    client: &C,
    org_id: i64,
) -> Result<BTreeMap<String, String>, StoreError> {
    Ok(rows(
        client,
        "SELECT u.name, m.role FROM org_members m JOIN users u ON u.id = m.user_id
         WHERE m.org_id = $1",
        &[&org_id],
    )
    .await?
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect())
}

async fn member_role<C: GenericClient>(
    client: &C,
    org_id: i64,
    user_id: i64,
) -> Result<Option<String>, StoreError> {
    Ok(opt(
        client,
        "SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2",
        &[&org_id, &user_id],
    )
    .await?
    .map(|row| row.get(0)))
}

fn names(rows: Vec<Row>) -> Vec<String> {
    rows.into_iter().map(|row| row.get(0)).collect()
}

fn listed(rows: Vec<Row>) -> Vec<ListedPackage> {
    rows.into_iter()
        .map(|row| {
            let slug: Option<String> = row.get(2);
            ListedPackage {
                name: row.get(0),
                access: row.get(1),
                org: slug.map(|slug| OrgFacts {
                    slug,
                    member_role: row.get(3),
                    team_grant: row.get(4),
                }),
            }
        })
        .collect()
}

/// Applies an authorized change to `org` (see the SQLite twin).
async fn apply<C: GenericClient>(
    client: &C,
    org: &OrgRow,
    change: &OrgChange,
) -> Result<OrgOutcome, StoreError> {
    Ok(match change {
        OrgChange::SetMember { user, role } => {
            let Some(user_id) = user_id(client, user).await? else {
                return Ok(OrgOutcome::NoUser);
            };
            exec(
                client,
                "INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3)
                 ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
                &[&org.id, &user_id, role],
            )
            .await?;
            OrgOutcome::MemberSet {
                members: members(client, org.id).await?.len(),
            }
        }
        OrgChange::RemoveMember { user } => {
            let Some(user_id) = user_id(client, user).await? else {
                return Ok(OrgOutcome::NoUser);
            };
            exec(
                client,
                "DELETE FROM team_members WHERE user_id = $2
                 AND team_id IN (SELECT id FROM teams WHERE org_id = $1)",
                &[&org.id, &user_id],
            )
            .await?;
            let removed = exec(
                client,
                "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2",
                &[&org.id, &user_id],
            )
            .await?;
            if removed > 0 {
                OrgOutcome::Done
            } else {
                OrgOutcome::NotAMember
            }
        }
        OrgChange::CreateTeam { team, description } => {
            let created = exec(
                client,
                "INSERT INTO teams (org_id, name, description) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&org.id, team, description],
            )
            .await?;
            if created > 0 {
                OrgOutcome::Done
            } else {
                OrgOutcome::TeamExists
            }
        }
        OrgChange::DeleteTeam { team } => {
            let deleted = exec(
                client,
                "DELETE FROM teams WHERE org_id = $1 AND name = $2",
                &[&org.id, team],
            )
            .await?;
            if deleted > 0 {
                OrgOutcome::Done
            } else {
                OrgOutcome::NoTeam
            }
        }
        OrgChange::AddTeamMember { team, user } | OrgChange::RemoveTeamMember { team, user } => {
            let Some(team_id) = find_team(client, org.id, team).await? else {
                return Ok(OrgOutcome::NoTeam);
            };
            let Some(user_id) = user_id(client, user).await? else {
                return Ok(OrgOutcome::NoUser);
            };
            if matches!(change, OrgChange::AddTeamMember { .. }) {
                if member_role(client, org.id, user_id).await?.is_none() {
                    return Ok(OrgOutcome::NotAMember);
                }
                exec(
                    client,
                    "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&team_id, &user_id],
                )
                .await?;
                OrgOutcome::Done
            } else {
                let removed = exec(
                    client,
                    "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2",
                    &[&team_id, &user_id],
                )
                .await?;
                if removed > 0 {
                    OrgOutcome::Done
                } else {
                    OrgOutcome::NotInTeam
                }
            }
        }
        OrgChange::Grant {
            team,
            package,
            permission,
        } => {
            let Some(team_id) = find_team(client, org.id, team).await? else {
                return Ok(OrgOutcome::NoTeam);
            };
            exec(
                client,
                "INSERT INTO team_packages (team_id, package, permission) VALUES ($1, $2, $3)
                 ON CONFLICT (team_id, package) DO UPDATE SET permission = excluded.permission",
                &[&team_id, package, permission],
            )
            .await?;
            OrgOutcome::Done
        }
        OrgChange::Revoke { team, package } => {
            let Some(team_id) = find_team(client, org.id, team).await? else {
                return Ok(OrgOutcome::NoTeam);
            };
            let revoked = exec(
                client,
                "DELETE FROM team_packages WHERE team_id = $1 AND package = $2",
                &[&team_id, package],
            )
            .await?;
            if revoked > 0 {
                OrgOutcome::Done
            } else {
                OrgOutcome::NoGrant
            }
        }
    })
}

/// Answers an authorized query about `org`.
async fn answer<C: GenericClient>(
    client: &C,
    org: &OrgRow,
    query: &OrgQuery,
) -> Result<OrgAnswer, StoreError> {
    Ok(match query {
        OrgQuery::Members => OrgAnswer::Map(members(client, org.id).await?),
        OrgQuery::Teams => OrgAnswer::List(names(
            rows(
                client,
                "SELECT name FROM teams WHERE org_id = $1 ORDER BY name COLLATE \"C\"",
                &[&org.id],
            )
            .await?,
        )),
        OrgQuery::TeamMembers(team) => match find_team(client, org.id, team).await? {
            Some(id) => OrgAnswer::List(names(
                rows(
                    client,
                    "SELECT u.name FROM team_members t JOIN users u ON u.id = t.user_id
                     WHERE t.team_id = $1 ORDER BY u.name COLLATE \"C\"",
                    &[&id],
                )
                .await?,
            )),
            None => OrgAnswer::NoTeam,
        },
        OrgQuery::TeamPackages(team) => match find_team(client, org.id, team).await? {
            Some(id) => OrgAnswer::Map(
                rows(
                    client,
                    "SELECT package, permission FROM team_packages WHERE team_id = $1",
                    &[&id],
                )
                .await?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect(),
            ),
            None => OrgAnswer::NoTeam,
        },
    })
}

const ORG_COLUMNS: &str = "id, slug, display_name, created_at";

#[async_trait::async_trait]
impl crate::store::OrgStore for super::Postgres {
    async fn scope_standing(&self, slug: &str, user_id: i64) -> Result<ScopeStanding, StoreError> {
        let client = self.pool().get().await?;
        let org = opt(
            &client,
            "SELECT
               (SELECT m.role FROM org_members m WHERE m.org_id = o.id AND m.user_id = $2),
               EXISTS (SELECT 1 FROM team_packages tp
                       JOIN team_members tm ON tm.team_id = tp.team_id
                       JOIN teams t ON t.id = tp.team_id
                       WHERE t.org_id = o.id AND tm.user_id = $2 AND tp.permission = 'write')
             FROM orgs o WHERE o.slug = $1",
            &[&slug, &user_id],
        )
        .await?;
        if let Some(org) = org {
            return Ok(ScopeStanding::Org {
                member_role: org.get(0),
                writes_a_package: org.get(1),
            });
        }
        let owner = opt(
            &client,
            "SELECT s.user_id, u.name FROM scope_owners s JOIN users u ON u.id = s.user_id
             WHERE s.scope = $1",
            &[&slug],
        )
        .await?;
        Ok(match owner {
            Some(row) => ScopeStanding::Owned {
                owner_id: row.get(0),
                owner: row.get(1),
            },
            None => ScopeStanding::Free,
        })
    }

    async fn create_org(
        &self,
        slug: &str,
        display_name: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<OrgRow>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        let now = clock::now_ms();
        let Some(row) = opt(
            &tx,
            "INSERT INTO orgs (slug, display_name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (slug) DO NOTHING RETURNING id",
            &[&slug, &display_name, &now],
        )
        .await?
        else {
            return Ok(None);
        };
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        self.wrote_everything();
        Ok(Some(OrgRow {
            id: row.get(0),
            slug: slug.to_owned(),
            display_name: display_name.to_owned(),
            created_at: now,
        }))
    }

    async fn reserve_scope(
        &self,
        slug: &str,
        owner: &str,
        reserved_by: &str,
        event: ReserveEvent,
    ) -> Result<ReserveOutcome, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        // The same lock a first publish claiming the scope takes.
        lock(&tx, &format!("scope:{slug}")).await?;
        if opt(&tx, "SELECT 1 FROM orgs WHERE slug = $1", &[&slug])
            .await?
            .is_some()
        {
            return Ok(ReserveOutcome::IsOrg);
        }
        let Some(owner_id) = user_id(&tx, owner).await? else {
            return Ok(ReserveOutcome::NoUser);
        };
        exec(
            &tx,
            "INSERT INTO scope_owners (scope, user_id, reserved_by, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope) DO UPDATE SET user_id = excluded.user_id,
                 reserved_by = excluded.reserved_by, created_at = excluded.created_at",
            &[&slug, &owner_id, &reserved_by, &clock::now_ms()],
        )
        .await?;
        super::events::record(&tx, &event(owner_id, owner)).await?;
        tx.commit().await?;
        Ok(ReserveOutcome::Reserved)
    }

    async fn list_orgs(&self) -> Result<Vec<OrgRow>, StoreError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY slug COLLATE \"C\"");
        Ok(rows(&client, &sql, &[])
            .await?
            .iter()
            .map(org_from_row)
            .collect())
    }

    async fn user_orgs(&self, user_id: i64) -> Result<Vec<(OrgRow, String)>, StoreError> {
        let client = self.pool().get().await?;
        Ok(rows(
            &client,
            "SELECT o.id, o.slug, o.display_name, o.created_at, m.role
             FROM org_members m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1
             ORDER BY o.slug COLLATE \"C\"",
            &[&user_id],
        )
        .await?
        .iter()
        .map(|row| (org_from_row(row), row.get(4)))
        .collect())
    }

    async fn org_packages(
        &self,
        slug: &str,
        reader_id: Option<i64>,
    ) -> Result<Option<Vec<ListedPackage>>, StoreError> {
        let client = self.pool().get().await?;
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE slug = $1");
        let Some(org) = opt(&client, &sql, &[&slug]).await? else {
            return Ok(None);
        };
        let org = org_from_row(&org);
        // '0' follows '/' in byte order: the range holds exactly the names under `@slug/`.
        let (from, to) = (format!("@{slug}/"), format!("@{slug}0"));
        let found = rows(
            &client,
            "SELECT p.name, p.access, $3::text,
                    (SELECT m.role FROM org_members m WHERE m.org_id = $4 AND m.user_id = $5),
                    (SELECT MAX(tp.permission) FROM team_packages tp
                     JOIN team_members tm ON tm.team_id = tp.team_id
                     WHERE tp.package = p.name AND tm.user_id = $5)
             FROM packages p WHERE p.name COLLATE \"C\" >= $1 AND p.name COLLATE \"C\" < $2",
            &[&from, &to, &org.slug, &org.id, &reader_id],
        )
        .await?;
        Ok(Some(listed(found)))
    }

    async fn maintained_packages(
        &self,
        user: &str,
        reader_id: Option<i64>,
    ) -> Result<Option<Vec<ListedPackage>>, StoreError> {
        let client = self.pool().get().await?;
        let Some(id) = user_id(&client, user).await? else {
            return Ok(None);
        };
        let found = rows(
            &client,
            "SELECT p.name, p.access, o.slug,
                    (SELECT m.role FROM org_members m WHERE m.org_id = o.id AND m.user_id = $2),
                    (SELECT MAX(tp.permission) FROM team_packages tp
                     JOIN team_members tm ON tm.team_id = tp.team_id
                     WHERE tp.package = p.name AND tm.user_id = $2)
             FROM maintainers mt JOIN packages p ON p.name = mt.package
             LEFT JOIN orgs o ON left(p.name, 1) = '@'
                             AND o.slug = split_part(substr(p.name, 2), '/', 1)
             WHERE mt.user_id = $1",
            &[&id, &reader_id],
        )
        .await?;
        Ok(Some(listed(found)))
    }

    async fn org_facts(
        &self,
        slug: &str,
        package: &str,
        user_id: i64,
    ) -> Result<OrgFacts, StoreError> {
        let client = self.pool().get().await?;
        Ok(org_facts(&client, slug, package, user_id)
            .await?
            .unwrap_or(OrgFacts {
                slug: slug.to_owned(),
                member_role: None,
                team_grant: None,
            }))
    }

    async fn change_org(
        &self,
        slug: &str,
        actor_id: i64,
        change: OrgChange,
        authorize: Authorize,
        events: Vec<AuditEvent>,
    ) -> Result<OrgOutcome, OrgError> {
        let mut client = self.pool().get().await.map_err(StoreError::from)?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE slug = $1 FOR UPDATE");
        let Some(org) = opt(&tx, &sql, &[&slug]).await? else {
            return Ok(OrgOutcome::NoOrg);
        };
        let org = org_from_row(&org);
        let role = member_role(&tx, org.id, actor_id).await?;
        authorize(&org, role.as_deref())?;
        let outcome = apply(&tx, &org, &change).await?;
        if matches!(outcome, OrgOutcome::Done | OrgOutcome::MemberSet { .. }) {
            super::events::record_all(&tx, &events).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.wrote_everything();
        Ok(outcome)
    }

    async fn query_org(
        &self,
        slug: &str,
        actor_id: i64,
        query: OrgQuery,
        authorize: Authorize,
    ) -> Result<OrgAnswer, OrgError> {
        let client = self.pool().get().await.map_err(StoreError::from)?;
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE slug = $1");
        let Some(org) = opt(&client, &sql, &[&slug]).await? else {
            return Ok(OrgAnswer::NoOrg);
        };
        let org = org_from_row(&org);
        let role = member_role(&client, org.id, actor_id).await?;
        authorize(&org, role.as_deref())?;
        Ok(answer(&client, &org, &query).await?)
    }
}
