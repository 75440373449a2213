//! The orgs part of the metadata store seam. Orgs, members, teams, team grants and package
//! visibility, and the facts the permission rules of [`crate::orgs`] decide on.

use super::StoreError;

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

/// Org operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait OrgStore: Send + Sync {
    /// How the scope `slug` (without `@`) stands for the user `user_id`.
    async fn scope_standing(&self, slug: &str, user_id: i64) -> Result<ScopeStanding, StoreError>;
}
