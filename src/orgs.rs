//! Orgs, their members and teams (SPEC §6). An org's slug is an npm scope: packages under
//! `@slug/` belong to it, and only its maintainers and admins may change them.

use std::collections::BTreeMap;

use serde_json::json;

use crate::audit::AuditEvent;
use crate::auth::tokens::OPERATOR;
use crate::auth::{Caller, Permission, Role, UserRole};
use crate::store::accounts::UserRow;
use crate::store::orgs::{
    Authorize, ListedPackage, OrgAnswer, OrgChange, OrgFacts, OrgOutcome, OrgQuery, OrgRow,
    ReserveOutcome, ScopeStanding,
};
use crate::store::{OrgStore, Store, StoreError};

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

fn no_org(slug: &str) -> OrgError {
    OrgError::NotFound(format!("there is no org named {slug}"))
}

fn no_user(name: &str) -> OrgError {
    OrgError::NotFound(format!("there is no user named {name}"))
}

fn no_team(slug: &str, team: &str) -> OrgError {
    OrgError::NotFound(format!("there is no team {slug}:{team}"))
}

/// What an operation needs from the caller within the org.
#[derive(Clone, Copy)]
enum Need {
    /// Any member (or a registry admin).
    Member,
    /// An org admin (or a registry admin).
    Admin,
}

/// Whether `caller`, whose role in `org` is `role`, may do what `need` says there.
fn require(caller: &Caller, org: &OrgRow, role: Option<&str>, need: Need) -> Result<(), OrgError> {
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
    let allowed = match need {
        Need::Member => role.is_some(),
        Need::Admin => role == Some("admin"),
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

/// The check [`require`] as the store runs it, inside the operation's transaction.
fn authorize(caller: &Caller, need: Need) -> Authorize {
    let caller = caller.clone();
    Box::new(move |org, role| require(&caller, org, role, need))
}

/// The org service.
#[derive(Clone)]
pub struct Orgs {
    store: Store,
}

impl Orgs {
    /// The org service on a metadata store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Applies `change` to the org once an org admin (or registry admin) is found to ask,
    /// auditing `action` with `details` in the same transaction.
    async fn change(
        &self,
        caller: &Caller,
        slug: &str,
        change: OrgChange,
        authorize: Authorize,
        action: &'static str,
        details: serde_json::Value,
    ) -> Result<OrgOutcome, OrgError> {
        let event = AuditEvent::by(caller, action, details).on_org(slug);
        let outcome = self
            .store
            .change_org(slug, caller.user_id, change, authorize, vec![event])
            .await?;
        match outcome {
            OrgOutcome::NoOrg => Err(no_org(slug)),
            other => Ok(other),
        }
    }

    /// Answers `query` once a member (or registry admin) is found to ask.
    async fn query(
        &self,
        caller: &Caller,
        slug: &str,
        query: OrgQuery,
    ) -> Result<OrgAnswer, OrgError> {
        let team = match &query {
            OrgQuery::TeamMembers(team) | OrgQuery::TeamPackages(team) => team.clone(),
            OrgQuery::Members | OrgQuery::Teams => String::new(),
        };
        match self
            .store
            .query_org(slug, caller.user_id, query, authorize(caller, Need::Member))
            .await?
        {
            OrgAnswer::NoOrg => Err(no_org(slug)),
            OrgAnswer::NoTeam => Err(no_team(slug, &team)),
            answer => Ok(answer),
        }
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
        let event = AuditEvent::by(
            caller,
            "org.created",
            json!({ "display_name": display_name }),
        )
        .on_org(slug);
        self.store
            .create_org(slug, display_name, vec![event])
            .await?
            .ok_or_else(|| OrgError::Exists(format!("an org named {slug} exists already")))
    }

    /// Reserves a scope that is not an org's for `owner` (the operator's `packr scope reserve`):
    /// only the owner then creates new packages under it. Replaces an earlier claim.
    pub async fn reserve_scope(&self, scope: &str, owner: &str) -> Result<(), OrgError> {
        let slug = scope.strip_prefix('@').unwrap_or(scope).to_owned();
        validate_slug("scope", &slug)?;
        let scope = format!("@{slug}");
        let event = Box::new(move |owner_id: i64, owner: &str| AuditEvent {
            actor_name: Some(OPERATOR.to_owned()),
            ..AuditEvent::by_user(
                owner_id,
                owner,
                &crate::auth::Origin::default(),
                "scope.reserved",
                json!({ "scope": scope, "owner": owner, "reserved_by": OPERATOR }),
            )
        });
        match self
            .store
            .reserve_scope(&slug, owner, OPERATOR, event)
            .await?
        {
            ReserveOutcome::Reserved => Ok(()),
            ReserveOutcome::IsOrg => Err(OrgError::Invalid(format!(
                "@{slug} is an org's scope: its members decide who publishes there (npm org set)"
            ))),
            ReserveOutcome::NoUser => Err(no_user(owner)),
        }
    }

    /// Every org.
    pub async fn list(&self) -> Result<Vec<OrgRow>, OrgError> {
        Ok(self.store.list_orgs().await?)
    }

    /// Members of an org, name → role (members and registry admins may look).
    pub async fn members(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        match self.query(caller, slug, OrgQuery::Members).await? {
            OrgAnswer::Map(members) => Ok(members),
            _ => Ok(BTreeMap::new()),
        }
    }

    /// Adds a member or changes their role; returns the new member count.
    pub async fn set_member(
        &self,
        caller: &Caller,
        slug: &str,
        user: &str,
        role: OrgRole,
    ) -> Result<usize, OrgError> {
        let change = OrgChange::SetMember {
            user: user.to_owned(),
            role: role.as_str().to_owned(),
        };
        let details = json!({ "user": user, "role": role.as_str() });
        let authorize = authorize(caller, Need::Admin);
        match self
            .change(caller, slug, change, authorize, "org.member.added", details)
            .await?
        {
            OrgOutcome::MemberSet { members } => Ok(members),
            _ => Err(no_user(user)),
        }
    }

    /// Removes a member (and them from every team of the org).
    pub async fn remove_member(
        &self,
        caller: &Caller,
        slug: &str,
        user: &str,
    ) -> Result<(), OrgError> {
        let change = OrgChange::RemoveMember {
            user: user.to_owned(),
        };
        let details = json!({ "user": user });
        let authorize = authorize(caller, Need::Admin);
        match self
            .change(
                caller,
                slug,
                change,
                authorize,
                "org.member.removed",
                details,
            )
            .await?
        {
            OrgOutcome::Done => Ok(()),
            OrgOutcome::NotAMember => Err(OrgError::NotFound(format!(
                "{user} is not a member of {slug}"
            ))),
            _ => Err(no_user(user)),
        }
    }

    /// The orgs a user belongs to, with their role.
    pub async fn user_orgs(&self, user_id: i64) -> Result<Vec<(OrgRow, String)>, OrgError> {
        Ok(self.store.user_orgs(user_id).await?)
    }

    /// Packages of an org that `reader` may see: name → access.
    pub async fn packages(
        &self,
        reader: Option<&Caller>,
        slug: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        let listed = self
            .store
            .org_packages(slug, reader.map(|r| r.user_id))
            .await?
            .ok_or_else(|| no_org(slug))?;
        Ok(only_readable(reader, listed, |p| p.access.clone()))
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
        let change = OrgChange::CreateTeam {
            team: team.to_owned(),
            description: description.to_owned(),
        };
        let authorize = authorize(caller, Need::Admin);
        match self
            .change(
                caller,
                slug,
                change,
                authorize,
                "team.created",
                json!({ "team": team }),
            )
            .await?
        {
            OrgOutcome::Done => Ok(()),
            _ => Err(OrgError::Exists(format!(
                "team {slug}:{team} exists already"
            ))),
        }
    }

    /// Deletes a team.
    pub async fn destroy_team(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
    ) -> Result<(), OrgError> {
        let change = OrgChange::DeleteTeam {
            team: team.to_owned(),
        };
        let authorize = authorize(caller, Need::Admin);
        match self
            .change(
                caller,
                slug,
                change,
                authorize,
                "team.deleted",
                json!({ "team": team }),
            )
            .await?
        {
            OrgOutcome::Done => Ok(()),
            _ => Err(no_team(slug, team)),
        }
    }

    /// Team names of an org.
    pub async fn teams(&self, caller: &Caller, slug: &str) -> Result<Vec<String>, OrgError> {
        match self.query(caller, slug, OrgQuery::Teams).await? {
            OrgAnswer::List(teams) => Ok(teams),
            _ => Ok(Vec::new()),
        }
    }

    /// Members of a team.
    pub async fn team_members(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
    ) -> Result<Vec<String>, OrgError> {
        match self
            .query(caller, slug, OrgQuery::TeamMembers(team.to_owned()))
            .await?
        {
            OrgAnswer::List(members) => Ok(members),
            _ => Ok(Vec::new()),
        }
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
        let (team_owned, user_owned) = (team.to_owned(), user.to_owned());
        let (change, action) = if member {
            (
                OrgChange::AddTeamMember {
                    team: team_owned,
                    user: user_owned,
                },
                "team.member.added",
            )
        } else {
            (
                OrgChange::RemoveTeamMember {
                    team: team_owned,
                    user: user_owned,
                },
                "team.member.removed",
            )
        };
        let details = json!({ "team": team, "user": user });
        let authorize = authorize(caller, Need::Admin);
        match self
            .change(caller, slug, change, authorize, action, details)
            .await?
        {
            OrgOutcome::Done | OrgOutcome::MemberSet { .. } => Ok(()),
            OrgOutcome::NoTeam => Err(no_team(slug, team)),
            OrgOutcome::NotAMember => Err(OrgError::Invalid(format!(
                "{user} is not a member of {slug}; add them with npm org set {slug} {user}"
            ))),
            OrgOutcome::NotInTeam => Err(OrgError::NotFound(format!(
                "{user} is not in team {slug}:{team}"
            ))),
            _ => Err(no_user(user)),
        }
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
        let (action, change) = match permission {
            Some(permission) => (
                "team.package.granted",
                OrgChange::Grant {
                    team: team.to_owned(),
                    package: package.to_owned(),
                    permission: permission.to_owned(),
                },
            ),
            None => (
                "team.package.revoked",
                OrgChange::Revoke {
                    team: team.to_owned(),
                    package: package.to_owned(),
                },
            ),
        };
        let details = json!({ "team": team, "package": package, "permission": permission });
        // Checked after the caller's standing, as before: who may not act learns nothing more.
        let (asker, wanted) = (caller.clone(), package.to_owned());
        let authorize: Authorize = Box::new(move |org, role| {
            require(&asker, org, role, Need::Admin)?;
            if wanted.starts_with(&format!("@{}/", org.slug)) {
                Ok(())
            } else {
                Err(OrgError::Invalid(format!(
                    "{wanted} is not a package of {}; only @{}/ packages can be granted",
                    org.slug, org.slug
                )))
            }
        });
        match self
            .change(caller, slug, change, authorize, action, details)
            .await?
        {
            OrgOutcome::Done | OrgOutcome::MemberSet { .. } => Ok(()),
            OrgOutcome::NoGrant => Err(OrgError::NotFound(format!(
                "team {slug}:{team} has no access to {package}"
            ))),
            _ => Err(no_team(slug, team)),
        }
    }

    /// A team's packages: name → `read`/`write`.
    pub async fn team_packages(
        &self,
        caller: &Caller,
        slug: &str,
        team: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        match self
            .query(caller, slug, OrgQuery::TeamPackages(team.to_owned()))
            .await?
        {
            OrgAnswer::Map(packages) => Ok(packages),
            _ => Ok(BTreeMap::new()),
        }
    }

    /// Packages a user maintains that `reader` may see: name → `write`.
    pub async fn user_packages(
        &self,
        reader: Option<&Caller>,
        user: &str,
    ) -> Result<BTreeMap<String, String>, OrgError> {
        let listed = self
            .store
            .maintained_packages(user, reader.map(|r| r.user_id))
            .await?
            .ok_or_else(|| no_user(user))?;
        Ok(only_readable(reader, listed, |_| "write".to_owned()))
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

/// The org rule: under an org's scope, a change needs the caller's user to write there (a
/// registry admin, an org admin or maintainer, or a team granted `read-write` on the package),
/// checked in the change's transaction since membership changes. The one exception is a CI
/// token that a registry admin or the operator issued for a service account and scoped to the
/// org. The token's own role and scope are checked before this, by [`Caller::require_for`].
/// `org` is the caller's standing when the package's scope is an org's.
pub fn decide(org: Option<&OrgFacts>, caller: &Caller, package: &str) -> OrgDecision {
    let Some(org) = org else {
        return OrgDecision::NotAnOrg;
    };
    let slug = &org.slug;
    let scope = format!("@{slug}");
    if caller.overrides_scope_owner(&scope) {
        return OrgDecision::Allowed;
    }
    if matches!(org.member_role.as_deref(), Some("admin" | "maintainer"))
        || org.team_grant.as_deref() == Some("write")
    {
        return OrgDecision::Allowed;
    }
    OrgDecision::Denied(match &org.member_role {
        Some(role) => format!(
            "{} is a {role} of org {slug}; changing {package} needs the maintainer or admin role (npm org set {slug} {} developer) or a read-write team grant",
            caller.name, caller.name
        ),
        None => format!(
            "{scope} belongs to org {slug} and {} is not a member; ask an org admin to run npm org set {slug} {} developer",
            caller.name, caller.name
        ),
    })
}

/// Whether a reader may see a restricted package of an org, given the reader's standing there:
/// registry admins, the org's members and teams granted the package may; everyone else must not
/// learn it exists.
pub fn may_read_restricted(caller: Option<&Caller>, standing: &OrgFacts) -> bool {
    let Some(caller) = caller else {
        return false;
    };
    caller.is_admin() || standing.member_role.is_some() || standing.team_grant.is_some()
}

/// Whether `reader` may read a listed package: only restricted packages of an org are hidden.
pub fn readable(reader: Option<&Caller>, package: &ListedPackage) -> bool {
    match &package.org {
        Some(standing) if package.access != "public" => may_read_restricted(reader, standing),
        _ => true,
    }
}

/// The entries of a package listing that `reader` may read, name → `value`.
fn only_readable(
    reader: Option<&Caller>,
    listed: Vec<ListedPackage>,
    value: impl Fn(&ListedPackage) -> String,
) -> BTreeMap<String, String> {
    listed
        .iter()
        .filter(|package| readable(reader, package))
        .map(|package| (package.name.clone(), value(package)))
        .collect()
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
