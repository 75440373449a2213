//! `packr org policy SLUG [...]`: shows or changes an org's publishing policy straight on the
//! store (recorded in the audit log as the operator's), and prints the policy that results.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::config::DataDirArgs;
use crate::packages::policy::{self, OrgPolicy};
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub(super) enum OrgCommand {
    /// Show or change an org's publishing policy (approvals, provenance, trusted publishing).
    Policy(PolicyArgs),
}

#[derive(Debug, Args)]
pub(super) struct PolicyArgs {
    /// The org, like `acme` (or `@acme`).
    slug: String,
    /// Refuse plain publishes under the scope: versions are staged, then approved.
    #[arg(long, value_name = "true|false")]
    require_approval: Option<bool>,
    /// Who may approve: a user or a team of the org (repeatable; replaces the list).
    #[arg(long = "approver", value_name = "USER|TEAM")]
    approvers: Vec<String>,
    /// Refuse publishes and stages without a provenance bundle matching the tarball.
    #[arg(long, value_name = "true|false")]
    require_provenance: Option<bool>,
    /// Refuse publishes and stages that do not come through a trusted-publisher token.
    #[arg(long, value_name = "true|false")]
    require_trusted_publishing: Option<bool>,
    #[command(flatten)]
    data: DataDirArgs,
}

impl PolicyArgs {
    fn changes_something(&self) -> bool {
        self.require_approval.is_some()
            || !self.approvers.is_empty()
            || self.require_provenance.is_some()
            || self.require_trusted_publishing.is_some()
    }

    /// The policy after these flags: `current` with what they name changed.
    fn apply(&self, current: OrgPolicy) -> anyhow::Result<OrgPolicy> {
        let body = json!({
            "require_approval": self.require_approval.unwrap_or(current.require_approval),
            "approvers": if self.approvers.is_empty() { current.approvers } else { self.approvers.clone() },
            "require_provenance": self.require_provenance.unwrap_or(current.require_provenance),
            "require_trusted_publishing": self
                .require_trusted_publishing
                .unwrap_or(current.require_trusted_publishing),
        });
        Ok(policy::parse(&body)?)
    }
}

pub(super) fn run(command: OrgCommand) -> anyhow::Result<()> {
    let OrgCommand::Policy(args) = command;
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.location()).await?;
        let slug = args.slug.trim_start_matches('@').to_owned();
        let current = policy::get(&services.store, &slug).await?;
        let shown = if args.changes_something() {
            let wanted = args.apply(current)?;
            policy::set(&services.store, None, &slug, wanted).await?
        } else {
            current
        };
        print!("{}", render(&slug, &shown));
        Ok(())
    })
}

/// The policy, one `key: value` line each.
fn render(slug: &str, policy: &OrgPolicy) -> String {
    let approvers = if policy.approvers.is_empty() {
        "(none)".to_owned()
    } else {
        policy.approvers.join(", ")
    };
    format!(
        "org: @{slug}\nrequire_approval: {}\napprovers: {approvers}\nrequire_provenance: {}\nrequire_trusted_publishing: {}\n",
        policy.require_approval, policy.require_provenance, policy.require_trusted_publishing
    )
}
