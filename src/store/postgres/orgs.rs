//! PostgreSQL queries for orgs, members, teams and grants.

use crate::store::StoreError;
use crate::store::orgs::ScopeStanding;

#[async_trait::async_trait]
impl crate::store::OrgStore for super::Postgres {
    async fn scope_standing(&self, slug: &str, user_id: i64) -> Result<ScopeStanding, StoreError> {
        let client = self.pool().get().await?;
        let org = client
            .query_opt(
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
        let owner = client
            .query_opt(
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
}
