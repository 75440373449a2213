//! Queries on orgs, members, teams and team grants.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::events;
use crate::audit::AuditEvent;
use crate::clock;
use crate::orgs::OrgError;
use crate::store::StoreError;
pub use crate::store::orgs::OrgRow;
use crate::store::orgs::{
    Authorize, ListedPackage, OrgAnswer, OrgChange, OrgFacts, OrgOutcome, OrgQuery, ReserveEvent,
    ReserveOutcome, ScopeStanding,
};

fn org_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OrgRow> {
    Ok(OrgRow {
        id: row.get(0)?,
        slug: row.get(1)?,
        display_name: row.get(2)?,
        created_at: row.get(3)?,
    })
}

/// Creates an org; `None` when the slug is taken.
pub fn create(
    conn: &Connection,
    slug: &str,
    display_name: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "INSERT INTO orgs (slug, display_name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(slug) DO NOTHING RETURNING id",
            params![slug, display_name, now],
            |row| row.get(0),
        )
        .optional()?)
}

/// Looks an org up by slug.
pub fn find(conn: &Connection, slug: &str) -> Result<Option<OrgRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, slug, display_name, created_at FROM orgs WHERE slug = ?1",
            [slug],
            org_from_row,
        )
        .optional()?)
}

/// Every org, by slug.
pub fn list(conn: &Connection) -> Result<Vec<OrgRow>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT id, slug, display_name, created_at FROM orgs ORDER BY slug")?;
    let rows = stmt
        .query_map([], org_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Members of an org: user name → role.
pub fn members(conn: &Connection, org_id: i64) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.name, m.role FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org_id = ?1",
    )?;
    let rows = stmt
        .query_map([org_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The role of a user in the org whose slug is given, if a member.
pub fn member_role(
    conn: &Connection,
    slug: &str,
    user_id: i64,
) -> Result<Option<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.role FROM org_members m JOIN orgs o ON o.id = m.org_id WHERE o.slug = ?1 AND m.user_id = ?2",
    )?;
    Ok(stmt
        .query_row(params![slug, user_id], |row| row.get(0))
        .optional()?)
}

/// Adds a member or changes their role.
pub fn set_member(
    conn: &Connection,
    org_id: i64,
    user_id: i64,
    role: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO org_members (org_id, user_id, role) VALUES (?1, ?2, ?3)
         ON CONFLICT(org_id, user_id) DO UPDATE SET role = excluded.role",
        params![org_id, user_id, role],
    )?;
    Ok(())
}

/// Removes a member from the org and all its teams; answers whether they were a member.
pub fn remove_member(conn: &Connection, org_id: i64, user_id: i64) -> Result<bool, StoreError> {
    conn.execute(
        "DELETE FROM team_members WHERE user_id = ?2 AND team_id IN (SELECT id FROM teams WHERE org_id = ?1)",
        params![org_id, user_id],
    )?;
    let removed = conn.execute(
        "DELETE FROM org_members WHERE org_id = ?1 AND user_id = ?2",
        params![org_id, user_id],
    )?;
    Ok(removed > 0)
}

/// The orgs a user belongs to, with their role.
pub fn user_orgs(conn: &Connection, user_id: i64) -> Result<Vec<(OrgRow, String)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.id, o.slug, o.display_name, o.created_at, m.role
         FROM org_members m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = ?1 ORDER BY o.slug",
    )?;
    let rows = stmt
        .query_map([user_id], |row| Ok((org_from_row(row)?, row.get(4)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Packages under `@slug/` of the org `org`, with the standing of `reader_id` towards each.
pub fn packages(
    conn: &Connection,
    org: &OrgRow,
    reader_id: Option<i64>,
) -> Result<Vec<ListedPackage>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.name, p.access,
                (SELECT m.role FROM org_members m WHERE m.org_id = ?2 AND m.user_id = ?3),
                (SELECT MAX(tp.permission) FROM team_packages tp
                 JOIN team_members tm ON tm.team_id = tp.team_id
                 WHERE tp.package = p.name AND tm.user_id = ?3)
         FROM packages p WHERE p.name LIKE ?1 ESCAPE '\\'",
    )?;
    let pattern = format!(
        "@{}/%",
        org.slug
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = stmt
        .query_map(params![pattern, org.id, reader_id], |row| {
            Ok(ListedPackage {
                name: row.get(0)?,
                access: row.get(1)?,
                org: Some(OrgFacts {
                    slug: org.slug.clone(),
                    member_role: row.get(2)?,
                    team_grant: row.get(3)?,
                }),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Creates a team; answers false when the name is taken.
pub fn create_team(
    conn: &Connection,
    org_id: i64,
    name: &str,
    description: &str,
) -> Result<bool, StoreError> {
    let created = conn.execute(
        "INSERT INTO teams (org_id, name, description) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![org_id, name, description],
    )?;
    Ok(created > 0)
}

/// Deletes a team; answers whether it existed.
pub fn delete_team(conn: &Connection, org_id: i64, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM teams WHERE org_id = ?1 AND name = ?2",
        params![org_id, name],
    )? > 0)
}

/// The team id of `org_id`'s team `name`.
pub fn find_team(conn: &Connection, org_id: i64, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id FROM teams WHERE org_id = ?1 AND name = ?2",
            params![org_id, name],
            |row| row.get(0),
        )
        .optional()?)
}

/// Team names of an org.
pub fn teams(conn: &Connection, org_id: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM teams WHERE org_id = ?1 ORDER BY name")?;
    let rows = stmt
        .query_map([org_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// User names in a team.
pub fn team_members(conn: &Connection, team_id: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT u.name FROM team_members t JOIN users u ON u.id = t.user_id WHERE t.team_id = ?1 ORDER BY u.name",
    )?;
    let rows = stmt
        .query_map([team_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Adds a user to a team.
pub fn add_team_member(conn: &Connection, team_id: i64, user_id: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO team_members (team_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![team_id, user_id],
    )?;
    Ok(())
}

/// Removes a user from a team; answers whether they were in it.
pub fn remove_team_member(
    conn: &Connection,
    team_id: i64,
    user_id: i64,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM team_members WHERE team_id = ?1 AND user_id = ?2",
        params![team_id, user_id],
    )? > 0)
}

/// Grants a team `read` or `write` on a package.
pub fn grant(
    conn: &Connection,
    team_id: i64,
    package: &str,
    permission: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO team_packages (team_id, package, permission) VALUES (?1, ?2, ?3)
         ON CONFLICT(team_id, package) DO UPDATE SET permission = excluded.permission",
        params![team_id, package, permission],
    )?;
    Ok(())
}

/// Revokes a team's grant on a package; answers whether there was one.
pub fn revoke(conn: &Connection, team_id: i64, package: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM team_packages WHERE team_id = ?1 AND package = ?2",
        params![team_id, package],
    )? > 0)
}

/// A team's grants: package → `read`/`write`.
pub fn team_packages(
    conn: &Connection,
    team_id: i64,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT package, permission FROM team_packages WHERE team_id = ?1")?;
    let rows = stmt
        .query_map([team_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Packages `user_id` maintains, with the standing of `reader_id` towards each.
pub fn user_packages(
    conn: &Connection,
    user_id: i64,
    reader_id: Option<i64>,
) -> Result<Vec<ListedPackage>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.name, p.access, o.slug,
                (SELECT m.role FROM org_members m WHERE m.org_id = o.id AND m.user_id = ?2),
                (SELECT MAX(tp.permission) FROM team_packages tp
                 JOIN team_members tm ON tm.team_id = tp.team_id
                 WHERE tp.package = p.name AND tm.user_id = ?2)
         FROM maintainers mt JOIN packages p ON p.name = mt.package
         LEFT JOIN orgs o ON substr(p.name, 1, 1) = '@'
                         AND o.slug = substr(p.name, 2, instr(p.name, '/') - 2)
         WHERE mt.user_id = ?1",
    )?;
    let rows = stmt
        .query_map(params![user_id, reader_id], |row| {
            let slug: Option<String> = row.get(2)?;
            Ok(ListedPackage {
                name: row.get(0)?,
                access: row.get(1)?,
                org: match slug {
                    Some(slug) => Some(OrgFacts {
                        slug,
                        member_role: row.get(3)?,
                        team_grant: row.get(4)?,
                    }),
                    None => None,
                },
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The standing of `user_id` towards `package` when `slug` is an org's, else `None`.
pub fn org_facts(
    conn: &Connection,
    slug: &str,
    package: &str,
    user_id: i64,
) -> Result<Option<OrgFacts>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT m.role FROM org_members m WHERE m.org_id = o.id AND m.user_id = ?3),
                (SELECT MAX(tp.permission) FROM team_packages tp
                 JOIN team_members tm ON tm.team_id = tp.team_id
                 WHERE tp.package = ?2 AND tm.user_id = ?3)
         FROM orgs o WHERE o.slug = ?1",
    )?;
    // 'write' sorts after 'read', so MAX is the strongest grant.
    Ok(stmt
        .query_row(params![slug, package, user_id], |row| {
            Ok(OrgFacts {
                slug: slug.to_owned(),
                member_role: row.get(0)?,
                team_grant: row.get(1)?,
            })
        })
        .optional()?)
}

/// The id of the user named `name`.
fn user_id(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM users WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?)
}

/// Whether a user holds a `write` team grant on any package of an org.
pub fn writes_any_org_package(
    conn: &Connection,
    slug: &str,
    user_id: i64,
) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM team_packages tp
             JOIN team_members tm ON tm.team_id = tp.team_id
             JOIN teams t ON t.id = tp.team_id JOIN orgs o ON o.id = t.org_id
             WHERE o.slug = ?1 AND tm.user_id = ?2 AND tp.permission = 'write')",
        params![slug, user_id],
        |row| row.get(0),
    )?)
}

/// The owner of a scope that is not an org (claimed or reserved), by user id and name.
pub fn scope_owner(conn: &Connection, scope: &str) -> Result<Option<(i64, String)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT s.user_id, u.name FROM scope_owners s JOIN users u ON u.id = s.user_id
             WHERE s.scope = ?1",
            [scope],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

/// Records a scope's owner: `reserved_by` names the admin who reserved it, `None` when the
/// first publish claimed it. A reservation replaces an earlier owner; a claim never does.
pub fn set_scope_owner(
    conn: &Connection,
    scope: &str,
    user_id: i64,
    reserved_by: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let sql = if reserved_by.is_some() {
        "INSERT INTO scope_owners (scope, user_id, reserved_by, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(scope) DO UPDATE SET user_id = excluded.user_id,
             reserved_by = excluded.reserved_by, created_at = excluded.created_at"
    } else {
        "INSERT INTO scope_owners (scope, user_id, reserved_by, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(scope) DO NOTHING"
    };
    conn.execute(sql, params![scope, user_id, reserved_by, now])?;
    Ok(())
}

/// Whether any package exists under a scope (`slug` without `@`).
pub fn scope_has_packages(conn: &Connection, scope: &str) -> Result<bool, StoreError> {
    // '0' follows '/' in ASCII: the range holds exactly the names starting with `@scope/`.
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM packages WHERE name >= ?1 AND name < ?2)",
        params![format!("@{scope}/"), format!("@{scope}0")],
        |row| row.get(0),
    )?)
}

/// How the scope `slug` stands for `user_id` (see [`ScopeStanding`]).
pub fn scope_standing(
    conn: &Connection,
    slug: &str,
    user_id: i64,
) -> Result<ScopeStanding, StoreError> {
    if find(conn, slug)?.is_some() {
        return Ok(ScopeStanding::Org {
            member_role: member_role(conn, slug, user_id)?,
            writes_a_package: writes_any_org_package(conn, slug, user_id)?,
        });
    }
    Ok(match scope_owner(conn, slug)? {
        Some((owner_id, owner)) => ScopeStanding::Owned { owner_id, owner },
        None => ScopeStanding::Free,
    })
}

/// Applies an authorized change to `org`.
fn apply(conn: &Connection, org: &OrgRow, change: &OrgChange) -> Result<OrgOutcome, StoreError> {
    let team_id = |team: &str| find_team(conn, org.id, team);
    Ok(match change {
        OrgChange::SetMember { user, role } => {
            let Some(user_id) = user_id(conn, user)? else {
                return Ok(OrgOutcome::NoUser);
            };
            set_member(conn, org.id, user_id, role)?;
            OrgOutcome::MemberSet {
                members: members(conn, org.id)?.len(),
            }
        }
        OrgChange::RemoveMember { user } => {
            let Some(user_id) = user_id(conn, user)? else {
                return Ok(OrgOutcome::NoUser);
            };
            if remove_member(conn, org.id, user_id)? {
                OrgOutcome::Done
            } else {
                OrgOutcome::NotAMember
            }
        }
        OrgChange::CreateTeam { team, description } => {
            if create_team(conn, org.id, team, description)? {
                OrgOutcome::Done
            } else {
                OrgOutcome::TeamExists
            }
        }
        OrgChange::DeleteTeam { team } => {
            if delete_team(conn, org.id, team)? {
                OrgOutcome::Done
            } else {
                OrgOutcome::NoTeam
            }
        }
        OrgChange::AddTeamMember { team, user } | OrgChange::RemoveTeamMember { team, user } => {
            let Some(team_id) = team_id(team)? else {
                return Ok(OrgOutcome::NoTeam);
            };
            let Some(user_id) = user_id(conn, user)? else {
                return Ok(OrgOutcome::NoUser);
            };
            if matches!(change, OrgChange::AddTeamMember { .. }) {
                if member_role(conn, &org.slug, user_id)?.is_none() {
                    return Ok(OrgOutcome::NotAMember);
                }
                add_team_member(conn, team_id, user_id)?;
                OrgOutcome::Done
            } else if remove_team_member(conn, team_id, user_id)? {
                OrgOutcome::Done
            } else {
                OrgOutcome::NotInTeam
            }
        }
        OrgChange::Grant {
            team,
            package,
            permission,
        } => {
            let Some(team_id) = team_id(team)? else {
                return Ok(OrgOutcome::NoTeam);
            };
            grant(conn, team_id, package, permission)?;
            OrgOutcome::Done
        }
        OrgChange::Revoke { team, package } => {
            let Some(team_id) = team_id(team)? else {
                return Ok(OrgOutcome::NoTeam);
            };
            if revoke(conn, team_id, package)? {
                OrgOutcome::Done
            } else {
                OrgOutcome::NoGrant
            }
        }
    })
}

/// Answers an authorized query about `org`.
fn answer(conn: &Connection, org: &OrgRow, query: &OrgQuery) -> Result<OrgAnswer, StoreError> {
    Ok(match query {
        OrgQuery::Members => OrgAnswer::Map(members(conn, org.id)?),
        OrgQuery::Teams => OrgAnswer::List(teams(conn, org.id)?),
        OrgQuery::TeamMembers(team) => match find_team(conn, org.id, team)? {
            Some(id) => OrgAnswer::List(team_members(conn, id)?),
            None => OrgAnswer::NoTeam,
        },
        OrgQuery::TeamPackages(team) => match find_team(conn, org.id, team)? {
            Some(id) => OrgAnswer::Map(team_packages(conn, id)?),
            None => OrgAnswer::NoTeam,
        },
    })
}

#[async_trait::async_trait]
impl crate::store::OrgStore for super::Sqlite {
    async fn scope_standing(&self, slug: &str, user_id: i64) -> Result<ScopeStanding, StoreError> {
        let slug = slug.to_owned();
        self.read(move |conn| self::scope_standing(conn, &slug, user_id))
            .await
    }

    async fn create_org(
        &self,
        slug: &str,
        display_name: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<OrgRow>, StoreError> {
        let (slug, display_name) = (slug.to_owned(), display_name.to_owned());
        self.write(move |tx| {
            let now = clock::now_ms();
            let Some(id) = create(tx, &slug, &display_name, now)? else {
                return Ok(None);
            };
            events::record_all(tx, &events)?;
            Ok(Some(OrgRow {
                id,
                slug,
                display_name,
                created_at: now,
            }))
        })
        .await
    }

    async fn reserve_scope(
        &self,
        slug: &str,
        owner: &str,
        reserved_by: &str,
        event: ReserveEvent,
    ) -> Result<ReserveOutcome, StoreError> {
        let (slug, owner, reserved_by) =
            (slug.to_owned(), owner.to_owned(), reserved_by.to_owned());
        self.write(move |tx| {
            if find(tx, &slug)?.is_some() {
                return Ok(ReserveOutcome::IsOrg);
            }
            let Some(owner_id) = user_id(tx, &owner)? else {
                return Ok(ReserveOutcome::NoUser);
            };
            set_scope_owner(tx, &slug, owner_id, Some(&reserved_by), clock::now_ms())?;
            events::record(tx, &event(owner_id, &owner))?;
            Ok(ReserveOutcome::Reserved)
        })
        .await
    }

    async fn list_orgs(&self) -> Result<Vec<OrgRow>, StoreError> {
        self.read(list).await
    }

    async fn user_orgs(&self, user_id: i64) -> Result<Vec<(OrgRow, String)>, StoreError> {
        self.read(move |conn| user_orgs(conn, user_id)).await
    }

    async fn org_packages(
        &self,
        slug: &str,
        reader_id: Option<i64>,
    ) -> Result<Option<Vec<ListedPackage>>, StoreError> {
        let slug = slug.to_owned();
        self.read(move |conn| match find(conn, &slug)? {
            Some(org) => packages(conn, &org, reader_id).map(Some),
            None => Ok(None),
        })
        .await
    }

    async fn maintained_packages(
        &self,
        user: &str,
        reader_id: Option<i64>,
    ) -> Result<Option<Vec<ListedPackage>>, StoreError> {
        let user = user.to_owned();
        self.read(move |conn| match user_id(conn, &user)? {
            Some(id) => user_packages(conn, id, reader_id).map(Some),
            None => Ok(None),
        })
        .await
    }

    async fn org_facts(
        &self,
        slug: &str,
        package: &str,
        user_id: i64,
    ) -> Result<OrgFacts, StoreError> {
        let (slug, package) = (slug.to_owned(), package.to_owned());
        self.read(move |conn| {
            Ok(
                org_facts(conn, &slug, &package, user_id)?.unwrap_or(OrgFacts {
                    slug,
                    member_role: None,
                    team_grant: None,
                }),
            )
        })
        .await
    }

    async fn change_org(
        &self,
        slug: &str,
        actor_id: i64,
        change: OrgChange,
        authorize: Authorize,
        events: Vec<AuditEvent>,
    ) -> Result<OrgOutcome, OrgError> {
        let slug = slug.to_owned();
        self.write(move |tx| {
            let Some(org) = find(tx, &slug)? else {
                return Ok(Ok(OrgOutcome::NoOrg));
            };
            let role = member_role(tx, &slug, actor_id)?;
            if let Err(refused) = authorize(&org, role.as_deref()) {
                return Ok(Err(refused));
            }
            let outcome = apply(tx, &org, &change)?;
            if matches!(outcome, OrgOutcome::Done | OrgOutcome::MemberSet { .. }) {
                events::record_all(tx, &events)?;
            }
            Ok(Ok(outcome))
        })
        .await?
    }

    async fn query_org(
        &self,
        slug: &str,
        actor_id: i64,
        query: OrgQuery,
        authorize: Authorize,
    ) -> Result<OrgAnswer, OrgError> {
        let slug = slug.to_owned();
        self.read(move |conn| {
            let Some(org) = find(conn, &slug)? else {
                return Ok(Ok(OrgAnswer::NoOrg));
            };
            let role = member_role(conn, &slug, actor_id)?;
            if let Err(refused) = authorize(&org, role.as_deref()) {
                return Ok(Err(refused));
            }
            Ok(Ok(answer(conn, &org, &query)?))
        })
        .await?
    }
}
