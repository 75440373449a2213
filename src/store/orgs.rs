//! The orgs part of the metadata store seam. Orgs, members, teams, team grants and package visibility.

/// Orgs, members, teams, team grants and package visibility. operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait OrgStore: Send + Sync {}
