//! Orgs, their members and teams (SPEC §6). An org's slug is an npm scope: packages under
//! `@slug/` belong to it, and only its maintainers and admins may change them.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::audit::AuditEvent;
use crate::auth::tokens::OPERATOR;
use crate::auth::{Caller, Permission, Role, UserRole};
use crate::clock;
use crate::store::orgs::ScopeStanding;
use crate::store::sqlite::orgs::{self as rows, OrgRow};
use crate::store::sqlite::users::UserRow;
use crate::store::sqlite::{events, users};
use crate::store::{OrgStore, Sqlite, StoreError};

/// Why an org operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// No such org, team or user.
    #[error("{0}")]
    NotFound(String),
    /// The org or team exists already.
    #[error("{0}")]
    Exists(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Input that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A member's role in an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    /// Manages members and teams; publishes.
    Admin,
    /// Publishes the org's packages.
    Maintainer,
    /// Reads only.
    Reader,
}

impl OrgRole {
    /// Parses Packr's names and npm's (`owner`, `admin` → admin; `developer` → maintainer).
    pub fn parse(text: &str) -> Result<Self, OrgError> {
        match text {
            "admin" | "owner" | "super-admin" | "team-admin" => Ok(Self::Admin),
            "maintainer" | "developer" => Ok(Self::Maintainer),
            "reader" => Ok(Self::Reader),
            other => Err(OrgError::Invalid(format!(
                "unknown org role `{other}`; use admin, maintainer (npm: developer) or reader"
            ))),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Maintainer => "maintainer",
            Self::Reader => "reader",
        }
    }
}

/// Checks an org slug or team name: lower-case npm-scope characters.
fn validate_slug(what: &str, slug: &str) -> Result<(), OrgError> {
    let ok = (1..=64).contains(&slug.len())
        && !slug.starts_with(['.', '_', '-'])
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(OrgError::Invalid(format!(
            "{what} `{slug}` must be 1-64 lower-case letters, digits, '-', '.', '_' or '~'"
        )))
    }
}

fn find_org(conn: &Connection, slug: &str) -> Result<OrgRow, OrgError> {
    rows::find(conn, slug)?
        .ok_or_else(|| OrgError::NotFound(format!("there is no org named {slug}")))
}

fn find_user_id(conn: &Connection, name: &str) -> Result<i64, OrgError> {
    users::find_by_name(conn, name)?
        .map(|u| u.id)
        .ok_or_else(|| OrgError::NotFound(format!("there is no user named {name}")))
}

fn find_team(conn: &Connection, org: &OrgRow, team: &str) -> Result<i64, OrgError> {
    rows::find_team(conn, org.id, team)?
        .ok_or_else(|| OrgError::NotFound(format!("there is no team {}:{team}", org.slug)))
}

/// What an operation needs from the caller within the org.
#[derive(Clone, Copy)]
enum Need {
    /// Any member (or a registry admin).
    Member,
    /// An org admin (or a registry admin).
    Admin,
}

fn require(conn: &Connection, caller: &Caller, org: &OrgRow, need: Need) -> Result<(), OrgError> {
    let scope = format!("@{}", org.slug);
    if !caller.covers_scope(&scope) {
        return Err(OrgError::Forbidden(format!(
            "this token is limited to {} and cannot act on org {}",
            caller.scopes.join(", "),
            org.slug
        )));
    }
    if matches!(need, Need::Admin) && caller.role < Role::Maintainer {
        return Err(OrgError::Forbidden(format!(
            "a {} token cannot administer org {}: use a maintainer or admin token (npm login)",
            caller.role, org.slug
        )));
    }
    if caller.is_admin() {
        return Ok(());
    }
    let role = rows::member_role(conn, &org.slug, caller.user_id)?;
    let allowed = match need {
        Need::Member => role.is_some(),
        Need::Admin => role.as_deref() == Some("admin"),
    };
    if allowed {
        Ok(())
    } else {
        let what = match need {
            Need::Member => "a member",
            Need::Admin => "an admin",
        };
        Err(OrgError::Forbidden(format!(
            "{} must be {what} of org {} to do this",
            caller.name, org.slug
        )))
    }
}

/// The org service.
#[derive(Clone)]
pub struct Orgs {
    db: Sqlite,
}

impl Orgs {
    /// The org service on a metadata store.
    pub fn new(db: Sqlite) -> Self {
        Self { db }
    }

    /// Runs `work` on the org in one transaction after checking the caller; audits `action` when
    /// the work returns details.
    async fn with_org<T, F>(
        &self,
        caller: &Caller,
        slug: &str,
        need: Need,
        action: &'static str,
        work: F,
    ) -> Result<T, OrgError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &OrgRow) -> Result<(T, Option<Value>), OrgError> + Send + 'static,
    {
        let (caller, slug) = (caller.clone(), slug.to_owned());
        self.db
            .write(move |tx| {
                let result = (|| {
                    let org = find_org(tx, &slug)?;
                    require(tx, &caller, &org, need)?;
                    let (value, details) = work(tx, &org)?;
                    if let Some(details) = details {
                        events::record(
                            tx,
                            &AuditEvent::by(&caller, action, details).on_org(&org.slug),
                        )?;
                    }
                    Ok(value)
                })();
                Ok(result)
            })
            .await?
    }

    /// Creates an org (registry admins only).
    pub async fn create(
        &self,
        caller: &Caller,
        slug: &str,
        display_name: &str,
    ) -> Result<OrgRow, OrgError> {
        caller
            .require(Permission::Admin)
            .map_err(|e| OrgError::Forbidden(e.to_string()))?;
        validate_slug("org name", slug)?;
        if !caller.covers_scope(&format!("@{slug}")) {
            return Err(OrgError::Forbidden(format!(
                "this token is limited to {} and cannot create org {slug}",
                caller.scopes.join(", ")
            )));
        }
        let (slug, display) = (slug.to_owned(), display_name.to_owned());
        let event =
            AuditEvent::by(caller, "org.created", json!({ "display_name": display })).on_org(&slug);
        self.db
            .write(move |tx| {
                let now = clock::now_ms();
                let Some(id) = rows::create(tx, &slug, &display, now)? else {
                    return Ok(Err(OrgError::Exists(format!(
                        "an org named {slug} exists already"
                    ))));
                };
                events::record(tx, &event)?;
                Ok(Ok(OrgRow {
                    id,
                    slug,
                    display_name: display,
                    created_at: now,
                }))
            })
            .await?
    }

    /// Reserves a scope that is not an org's for `owner` (the operator's `packr scope reserve`):
    /// only the owner then creates new packages under it. Replaces an earlier claim.
    pub async fn reserve_scope(&self, scope: &str, owner: &str) -> Result<(), OrgError> {
        let slug = scope.strip_prefix('@').unwrap_or(scope).to_owned();
        validate_slug("scope", &slug)?;
        let owner = owner.to_owned();
        self.db
            .write(move |tx| {
                if rows::find(tx, &slug)?.is_some() {
                    return Ok(Err(OrgError::Invalid(format!(
                        "@{slug} is an org's scope: its members decide who publishes there (npm org set)"
                    ))));
                }
                let Some(user) = users::find_by_name(tx, &owner)? else {
                    return Ok(Err(OrgError::NotFound(format!(
                        "there is no user named {owner}"
                    ))));
                };
                rows::set_scope_owner(tx, &slug, user.id, Some(OPERATOR), clock::now_ms())?;
                let event = AuditEvent {
                    actor_name: Some(OPERATOR.to_owned()),
                    ..AuditEvent::by_user(
                        user.id,
                        &user.name,
                        &crate::auth::Origin::default(),
                        "scope.reserved",
                        json!({ "scope": format!("@{slug}"), "owner": user.name, "reserved_by": OPERATOR }),
                    )
                };
                events::record(tx, &event)?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Every org.
    pub async fn list(&self) -> Result<Vec<OrgRow>, OrgError> {
        Ok(self.db.read(rows::list).await?)
    }

    /// Members of an org, name → role (members and registry admins may look).
    pub async fn members(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        self.with_org(caller, slug, Need::Member, "", |tx, org| {
            Ok((rows::members(tx, org.id)?, None))
        })
        .await
    }

    /// Adds a member or changes their role; returns the new member count.
    pub async fn set_member(
        &self,
        caller: &Caller,
        slug: &str,
        user: &str,
        role: OrgRole,
    ) -> Result<usize, OrgError> {
        let user = user.to_owned();
        self.with_org(
            caller,
            slug,
            Need::Admin,
            "org.member.added",
            move |tx, org| {
                let user_id = find_user_id(tx, &user)?;
                rows::set_member(tx, org.id, user_id, role.as_str())?;
                let size = rows::members(tx, org.id)?.len();
                Ok((size, Some(json!({ "user": user, "role": role.as_str() }))))
            },
        )
        .await
    }

    /// Removes a member (and them from every team of the org).
    pub async fn remove_member(
        &self,
        caller: &Caller,
        slug: &str,
        user: &str,
    ) -> Result<(), OrgError> {
        let user = user.to_owned();
        self.with_org(
            caller,
            slug,
            Need::Admin,
            "org.member.removed",
            move |tx, org| {
                let user_id = find_user_id(tx, &user)?;
                if !rows::remove_member(tx, org.id, user_id)? {
                    return Err(OrgError::NotFound(format!(
                        "{user} is not a member of {}",
                        org.slug
                    )));
                }
                Ok(((), Some(json!({ "user": user }))))
            },
        )
        .await
    }

    /// The orgs a user belongs to, with their role.
    pub async fn user_orgs(&self, user_id: i64) -> Result<Vec<(OrgRow, String)>, OrgError> {
        Ok(self
            .db
            .read(move |conn| rows::user_orgs(conn, user_id))
            .await?)
    }

    /// Packages of an org that `reader` may see: name → access.
    pub async fn packages(
        &self,
        reader: Option<&Caller>,
        slug: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        let (slug, reader) = (slug.to_owned(), reader.cloned());
        self.db
            .read(move |conn| {
                if rows::find(conn, &slug)?.is_none() {
                    return Ok(Err(OrgError::NotFound(format!(
                        "there is no org named {slug}"
                    ))));
                }
                let packages = rows::packages(conn, &slug)?;
                Ok(Ok(only_readable(conn, reader.as_ref(), packages)?))
            })
            .await?
    }

    /// Creates a team in an org.
    pub async fn create_team(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
        description: &str,
    ) -> Result<(), OrgError> {
        validate_slug("team name", team)?;
        let (team, description) = (team.to_owned(), description.to_owned());
        self.with_org(caller, slug, Need::Admin, "team.created", move |tx, org| {
            if !rows::create_team(tx, org.id, &team, &description)? {
                return Err(OrgError::Exists(format!(
                    "team {}:{team} exists already",
                    org.slug
                )));
            }
            Ok(((), Some(json!({ "team": team }))))
        })
        .await
    }

    /// Deletes a team.
    pub async fn destroy_team(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
    ) -> Result<(), OrgError> {
        let team = team.to_owned();
        self.with_org(caller, slug, Need::Admin, "team.deleted", move |tx, org| {
            if !rows::delete_team(tx, org.id, &team)? {
                return Err(OrgError::NotFound(format!(
                    "there is no team {}:{team}",
                    org.slug
                )));
            }
            Ok(((), Some(json!({ "team": team }))))
        })
        .await
    }

    /// Team names of an org.
    pub async fn teams(&self, caller: &Caller, slug: &str) -> Result<Vec<String>, OrgError> {
        self.with_org(caller, slug, Need::Member, "", |tx, org| {
            Ok((rows::teams(tx, org.id)?, None))
        })
        .await
    }

    /// Members of a team.
    pub async fn team_members(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
    ) -> Result<Vec<String>, OrgError> {
        let team = team.to_owned();
        self.with_org(caller, slug, Need::Member, "", move |tx, org| {
            let id = find_team(tx, org, &team)?;
            Ok((rows::team_members(tx, id)?, None))
        })
        .await
    }

    /// Adds (`true`) or removes (`false`) a user in a team; the user must be an org member to join.
    pub async fn set_team_member(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
        user: &str,
        member: bool,
    ) -> Result<(), OrgError> {
        let (team, user) = (team.to_owned(), user.to_owned());
        let action = if member {
            "team.member.added"
        } else {
            "team.member.removed"
        };
        self.with_org(caller, slug, Need::Admin, action, move |tx, org| {
            let id = find_team(tx, org, &team)?;
            let user_id = find_user_id(tx, &user)?;
            if member {
                if rows::member_role(tx, &org.slug, user_id)?.is_none() {
                    return Err(OrgError::Invalid(format!(
                        "{user} is not a member of {}; add them with npm org set {} {user}",
                        org.slug, org.slug
                    )));
                }
                rows::add_team_member(tx, id, user_id)?;
            } else if !rows::remove_team_member(tx, id, user_id)? {
                return Err(OrgError::NotFound(format!(
                    "{user} is not in team {}:{team}",
                    org.slug
                )));
            }
            Ok(((), Some(json!({ "team": team, "user": user }))))
        })
        .await
    }

    /// Grants (`Some(permission)`) or revokes (`None`) a team's access to one of the org's packages.
    pub async fn set_team_grant(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
        package: &str,
        permission: Option<&str>,
    ) -> Result<(), OrgError> {
        let permission = match permission {
            None => None,
            Some("read-only" | "read") => Some("read"),
            Some("read-write" | "write") => Some("write"),
            Some(other) => {
                return Err(OrgError::Invalid(format!(
                    "permission must be read-only or read-write, not {other}"
                )));
            }
        };
        let (team, package) = (team.to_owned(), package.to_owned());
        let action = if permission.is_some() {
            "team.package.granted"
        } else {
            "team.package.revoked"
        };
        self.with_org(caller, slug, Need::Admin, action, move |tx, org| {
            if !package.starts_with(&format!("@{}/", org.slug)) {
                return Err(OrgError::Invalid(format!(
                    "{package} is not a package of {}; only @{}/ packages can be granted",
                    org.slug, org.slug
                )));
            }
            let id = find_team(tx, org, &team)?;
            match permission {
                Some(permission) => rows::grant(tx, id, &package, permission)?,
                None => {
                    if !rows::revoke(tx, id, &package)? {
                        return Err(OrgError::NotFound(format!(
                            "team {}:{team} has no access to {package}",
                            org.slug
                        )));
                    }
                }
            }
            Ok((
                (),
                Some(json!({ "team": team, "package": package, "permission": permission })),
            ))
        })
        .await
    }

    /// A team's packages: name → `read`/`write`.
    pub async fn team_packages(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        let team = team.to_owned();
        self.with_org(caller, slug, Need::Member, "", move |tx, org| {
            let id = find_team(tx, org, &team)?;
            Ok((rows::team_packages(tx, id)?, None))
        })
        .await
    }

    /// Packages a user maintains that `reader` may see: name → `write`.
    pub async fn user_packages(
        &self,
        reader: Option<&Caller>,
        user: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        let (user, reader) = (user.to_owned(), reader.cloned());
        self.db
            .read(move |conn| {
                let Some(u) = users::find_by_name(conn, &user)? else {
                    return Ok(Err(OrgError::NotFound(format!(
                        "there is no user named {user}"
                    ))));
                };
                let packages = rows::user_packages(conn, u.id)?;
                Ok(Ok(only_readable(conn, reader.as_ref(), packages)?))
            })
            .await?
    }
}

/// How the org rule decides on a change to a package (publish, unpublish, deprecate, dist-tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgDecision {
    /// The package's scope is not an org: the package's own maintainers decide.
    NotAnOrg,
    /// An org package and the caller may change it.
    Allowed,
    /// An org package and the caller may not.
    Denied(String),
}

/// The scope of a package name without its `@` (`acme` for `@acme/b`), if it has one.
pub fn scope_slug(package: &str) -> Option<&str> {
    package
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('/'))
        .map(|(slug, _)| slug)
}

/// The org's slug if `package` is under an org's scope.
fn org_of(conn: &Connection, package: &str) -> Result<Option<String>, StoreError> {
    let Some(slug) = scope_slug(package) else {
        return Ok(None);
    };
    Ok(rows::find(conn, slug)?.map(|org| org.slug))
}

/// The org rule: under an org's scope, a change needs the caller's user to write there (a
/// registry admin, an org admin or maintainer, or a team granted `read-write` on the package),
/// checked now since membership changes. The one exception is a CI token that a registry admin
/// or the operator issued for a service account and scoped to the org. The token's own role
/// and scope are checked before this, by [`Caller::require_for`].
pub fn decide(
    conn: &Connection,
    caller: &Caller,
    package: &str,
) -> Result<OrgDecision, StoreError> {
    let Some(slug) = org_of(conn, package)? else {
        return Ok(OrgDecision::NotAnOrg);
    };
    let scope = format!("@{slug}");
    if caller.overrides_scope_owner(&scope) {
        return Ok(OrgDecision::Allowed);
    }
    let role = rows::member_role(conn, &slug, caller.user_id)?;
    if matches!(role.as_deref(), Some("admin" | "maintainer"))
        || rows::team_grant(conn, package, caller.user_id)?.as_deref() == Some("write")
    {
        return Ok(OrgDecision::Allowed);
    }
    Ok(OrgDecision::Denied(match role {
        Some(role) => format!(
            "{} is a {role} of org {slug}; changing {package} needs the maintainer or admin role (npm org set {slug} {} developer) or a read-write team grant",
            caller.name, caller.name
        ),
        None => format!(
            "{scope} belongs to org {slug} and {} is not a member; ask an org admin to run npm org set {slug} {} developer",
            caller.name, caller.name
        ),
    }))
}

/// Whether a reader may see a restricted package of org `slug`: registry admins, the org's
/// members and teams granted the package may; everyone else must not learn it exists.
pub fn may_read_restricted(
    conn: &Connection,
    caller: Option<&Caller>,
    slug: &str,
    package: &str,
) -> Result<bool, StoreError> {
    let Some(caller) = caller else {
        return Ok(false);
    };
    if caller.is_admin() {
        return Ok(true);
    }
    Ok(rows::member_role(conn, slug, caller.user_id)?.is_some()
        || rows::team_grant(conn, package, caller.user_id)?.is_some())
}

/// The entries of a package listing (name → anything) that `reader` may read.
fn only_readable(
    conn: &Connection,
    reader: Option<&Caller>,
    packages: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut kept = BTreeMap::new();
    for (name, value) in packages {
        if readable(conn, reader, &name)? {
            kept.insert(name, value);
        }
    }
    Ok(kept)
}

/// Whether `reader` may read `package`: only restricted packages of an org are hidden.
pub fn readable(
    conn: &Connection,
    reader: Option<&Caller>,
    package: &str,
) -> Result<bool, StoreError> {
    let Some(slug) = scope_slug(package) else {
        return Ok(true);
    };
    match rows::visibility(conn, package, slug)? {
        Some((access, true)) if access != "public" => {
            may_read_restricted(conn, reader, slug, package)
        }
        _ => Ok(true),
    }
}

/// Why `user` may not hold a token they make for themselves scoped to `scopes`, naming the first
/// scope refused, or `None` when they may. Checked when the token is made; every write checks
/// membership again ([`decide`]), since it changes.
pub async fn own_scopes_refusal(
    store: &dyn OrgStore,
    user: &UserRow,
    scopes: &[String],
) -> Result<Option<String>, StoreError> {
    if crate::auth::accounts::user_role(user) == UserRole::Admin {
        return Ok(None);
    }
    for scope in scopes {
        let slug = scope.trim_start_matches('@');
        let standing = store.scope_standing(slug, user.id).await?;
        if let Some(refusal) = scope_refusal(&standing, user, scope) {
            return Ok(Some(refusal));
        }
    }
    Ok(None)
}

/// Why a user may not hold a token scoped to `scope` (`@acme`) they made for themselves, or
/// `None` when they may: a scope on a token only narrows what its user can already write.
fn scope_refusal(standing: &ScopeStanding, user: &UserRow, scope: &str) -> Option<String> {
    let (slug, name) = (scope.trim_start_matches('@'), &user.name);
    match standing {
        ScopeStanding::Org {
            member_role,
            writes_a_package,
        } => {
            let writes =
                matches!(member_role.as_deref(), Some("admin" | "maintainer")) || *writes_a_package;
            (!writes).then(|| {
                format!(
                    "{name} cannot write under {scope}: it belongs to org {slug}, where {name} is not a maintainer or admin; a token scope only narrows what you can already do (an org admin runs npm org set {slug} {name} developer)"
                )
            })
        }
        ScopeStanding::Owned { owner_id, owner } if *owner_id != user.id => Some(format!(
            "{name} cannot write under {scope}: the scope belongs to {owner}"
        )),
        ScopeStanding::Owned { .. } | ScopeStanding::Free => None,
    }
}
