//! The orgs part of the metadata store seam. Orgs, members, teams, team grants and scope owners,
//! and the facts the permission rules of [`crate::orgs`] decide on: the store loads them inside
//! the operation's own transaction and the core's rule, passed in, decides.

use std::collections::BTreeMap;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::orgs::OrgError;

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

/// Who may write under a scope, as far as a user's own tokens are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeStanding {
    /// The scope is an org's.
    Org {
        /// The user's role in the org, if a member.
        member_role: Option<String>,
        /// Whether a team of the user holds a `read-write` grant on any of the org's packages.
        writes_a_package: bool,
    },
    /// The scope is owned by a user (claimed by a first publish, or reserved by an admin).
    Owned {
        /// The owner's id.
        owner_id: i64,
        /// The owner's name.
        owner: String,
    },
    /// Nobody holds the scope yet.
    Free,
}

/// A user's standing towards one package of an org: what the org rule ([`crate::orgs::decide`])
/// and the read rule ([`crate::orgs::may_read_restricted`]) decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgFacts {
    /// The org's slug.
    pub slug: String,
    /// The user's role in the org, if a member.
    pub member_role: Option<String>,
    /// The strongest team grant (`read`/`write`) the user holds on the package.
    pub team_grant: Option<String>,
}

/// A package in a listing, with what decides whether the reader may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPackage {
    /// Package name.
    pub name: String,
    /// `public` or `restricted`.
    pub access: String,
    /// The reader's standing, when the package's scope is an org's.
    pub org: Option<OrgFacts>,
}

/// A change to an org's members, teams or grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgChange {
    /// Adds a member or changes their role.
    SetMember {
        /// User name.
        user: String,
        /// `admin`, `maintainer` or `reader`.
        role: String,
    },
    /// Removes a member from the org and all its teams.
    RemoveMember {
        /// User name.
        user: String,
    },
    /// Creates a team.
    CreateTeam {
        /// Team name.
        team: String,
        /// Description.
        description: String,
    },
    /// Deletes a team.
    DeleteTeam {
        /// Team name.
        team: String,
    },
    /// Adds an org member to a team.
    AddTeamMember {
        /// Team name.
        team: String,
        /// User name.
        user: String,
    },
    /// Removes a user from a team.
    RemoveTeamMember {
        /// Team name.
        team: String,
        /// User name.
        user: String,
    },
    /// Grants a team `read` or `write` on a package.
    Grant {
        /// Team name.
        team: String,
        /// Package name.
        package: String,
        /// `read` or `write`.
        permission: String,
    },
    /// Revokes a team's grant on a package.
    Revoke {
        /// Team name.
        team: String,
        /// Package name.
        package: String,
    },
}

/// What an org change did, or which named thing it did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgOutcome {
    /// Done.
    Done,
    /// The member was added or their role changed; the org's member count afterwards.
    MemberSet {
        /// Members of the org after the change.
        members: usize,
    },
    /// No org has the slug.
    NoOrg,
    /// No user has the name given.
    NoUser,
    /// The org has no team of the name given.
    NoTeam,
    /// The team exists already.
    TeamExists,
    /// The user is not a member of the org.
    NotAMember,
    /// The user is not in the team.
    NotInTeam,
    /// The team has no grant on the package.
    NoGrant,
}

/// A question about an org that its members may ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgQuery {
    /// Members: name → role.
    Members,
    /// Team names.
    Teams,
    /// User names in a team.
    TeamMembers(String),
    /// A team's grants: package → `read`/`write`.
    TeamPackages(String),
}

/// The answer to an [`OrgQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgAnswer {
    /// No org has the slug.
    NoOrg,
    /// The org has no team of the name given.
    NoTeam,
    /// Name → role, or package → permission.
    Map(BTreeMap<String, String>),
    /// Names.
    List(Vec<String>),
}

/// What reserving a scope did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The scope is the user's now.
    Reserved,
    /// The scope is an org's.
    IsOrg,
    /// No user has the name given.
    NoUser,
}

/// The core's check of the acting user on an org (its row, and the user's role there), run in
/// the operation's transaction.
pub type Authorize = Box<dyn FnOnce(&OrgRow, Option<&str>) -> Result<(), OrgError> + Send>;

/// Builds the event of a scope reservation from the owner's `(id, name)`.
pub type ReserveEvent = Box<dyn FnOnce(i64, &str) -> AuditEvent + Send>;

/// Org operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait OrgStore: Send + Sync {
    /// How the scope `slug` (without `@`) stands for the user `user_id`.
    async fn scope_standing(&self, slug: &str, user_id: i64) -> Result<ScopeStanding, StoreError>;

    /// Creates an org and records `events`; `None` (nothing recorded) when the slug is taken.
    async fn create_org(
        &self,
        slug: &str,
        display_name: &str,
        events: Vec<AuditEvent>,
    ) -> Result<Option<OrgRow>, StoreError>;

    /// Reserves the scope `slug`, which must not be an org's, for the user named `owner`,
    /// replacing an earlier owner; records the event `event` builds.
    async fn reserve_scope(
        &self,
        slug: &str,
        owner: &str,
        reserved_by: &str,
        event: ReserveEvent,
    ) -> Result<ReserveOutcome, StoreError>;

    /// Every org, by slug.
    async fn list_orgs(&self) -> Result<Vec<OrgRow>, StoreError>;

    /// The orgs a user belongs to, with their role, by slug.
    async fn user_orgs(&self, user_id: i64) -> Result<Vec<(OrgRow, String)>, StoreError>;

    /// Packages under `@slug/` with the reader's standing, or `None` when there is no such org.
    async fn org_packages(
        &self,
        slug: &str,
        reader_id: Option<i64>,
    ) -> Result<Option<Vec<ListedPackage>>, StoreError>;

    /// Packages the user named `user` maintains, with the reader's standing, or `None` when
    /// there is no such user.
    async fn maintained_packages(
        &self,
        user: &str,
        reader_id: Option<i64>,
    ) -> Result<Option<Vec<ListedPackage>>, StoreError>;

    /// The standing of `user_id` towards `package` of org `slug`.
    async fn org_facts(
        &self,
        slug: &str,
        package: &str,
        user_id: i64,
    ) -> Result<OrgFacts, StoreError>;

    /// Applies `change` to org `slug` in one transaction once `authorize` accepts `actor_id`,
    /// recording `events` when it is done.
    async fn change_org(
        &self,
        slug: &str,
        actor_id: i64,
        change: OrgChange,
        authorize: Authorize,
        events: Vec<AuditEvent>,
    ) -> Result<OrgOutcome, OrgError>;

    /// Answers `query` about org `slug` once `authorize` accepts `actor_id`.
    async fn query_org(
        &self,
        slug: &str,
        actor_id: i64,
        query: OrgQuery,
        authorize: Authorize,
    ) -> Result<OrgAnswer, OrgError>;
}
