//! Queries on orgs, members, teams and team grants.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::StoreError;
use crate::store::orgs::ScopeStanding;

/// A stored org.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgRow {
    /// Database id.
    #[serde(skip)]
    pub id: i64,
    /// The scope without `@`.
    pub slug: String,
    /// Human name.
    pub display_name: String,
    /// Creation time (ms).
    #[serde(skip)]
    pub created_at: i64,
}

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

/// Packages under `@slug/`, with their access (`public`/`restricted`).
pub fn packages(conn: &Connection, slug: &str) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT name, access FROM packages WHERE name LIKE ?1 ESCAPE '\\'")?;
    let pattern = format!(
        "@{}/%",
        slug.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = stmt
        .query_map([pattern], |row| Ok((row.get(0)?, row.get(1)?)))?
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

/// Who may do what with a package: maintainers write; team grants add their members.
pub fn collaborators(
    conn: &Connection,
    package: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut out = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT u.name, tp.permission FROM team_packages tp
         JOIN team_members tm ON tm.team_id = tp.team_id JOIN users u ON u.id = tm.user_id
         WHERE tp.package = ?1",
    )?;
    for row in stmt.query_map([package], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })? {
        let (user, permission) = row?;
        let entry = out.entry(user).or_insert_with(|| permission.clone());
        if permission == "write" {
            *entry = permission;
        }
    }
    let mut stmt = conn.prepare(
        "SELECT u.name FROM maintainers m JOIN users u ON u.id = m.user_id WHERE m.package = ?1",
    )?;
    for name in stmt.query_map([package], |row| row.get::<_, String>(0))? {
        out.insert(name?, "write".to_owned());
    }
    Ok(out)
}

/// Packages a user maintains: name → `write`.
pub fn user_packages(
    conn: &Connection,
    user_id: i64,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn.prepare("SELECT package FROM maintainers WHERE user_id = ?1")?;
    let rows = stmt
        .query_map([user_id], |row| Ok((row.get(0)?, "write".to_owned())))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Sets a package's access.
pub fn set_access(
    conn: &Connection,
    package: &str,
    access: &str,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE packages SET access = ?2, rev = rev + 1, modified_at = ?3 WHERE name = ?1",
        params![package, access, now],
    )? > 0)
}

/// A package's access, if it exists.
pub fn access(conn: &Connection, package: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT access FROM packages WHERE name = ?1",
            [package],
            |row| row.get(0),
        )
        .optional()?)
}

/// The strongest team grant a user holds on a package (`read` or `write`), through any team.
pub fn team_grant(
    conn: &Connection,
    package: &str,
    user_id: i64,
) -> Result<Option<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT MAX(tp.permission) FROM team_packages tp
         JOIN team_members tm ON tm.team_id = tp.team_id
         WHERE tp.package = ?1 AND tm.user_id = ?2",
    )?;
    // 'write' sorts after 'read', so MAX is the strongest grant.
    Ok(stmt.query_row(params![package, user_id], |row| row.get(0))?)
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

/// A package's access and whether its scope is an org's, if the package exists: what decides
/// who may read it.
pub fn visibility(
    conn: &Connection,
    package: &str,
    slug: &str,
) -> Result<Option<(String, bool)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.access, EXISTS (SELECT 1 FROM orgs WHERE slug = ?2)
         FROM packages p WHERE p.name = ?1",
    )?;
    Ok(stmt
        .query_row(params![package, slug], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
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

#[async_trait::async_trait]
impl crate::store::OrgStore for super::Sqlite {
    async fn scope_standing(&self, slug: &str, user_id: i64) -> Result<ScopeStanding, StoreError> {
        let slug = slug.to_owned();
        self.read(move |conn| self::scope_standing(conn, &slug, user_id))
            .await
    }
}
