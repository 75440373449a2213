//! `packr scope reserve @x --owner NAME`: gives a scope that is not an org's to one user, so that
//! nobody else creates packages under it (an unreserved scope belongs to its first publisher).

use clap::{Args, Subcommand};

use crate::config::DataDirArgs;
use crate::orgs::Orgs;
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub(super) enum ScopeCommand {
    /// Reserve a scope for a user: only they create new packages under it.
    Reserve(ReserveArgs),
}

#[derive(Debug, Args)]
pub(super) struct ReserveArgs {
    /// The scope, like `@acme`.
    scope: String,
    /// The user who owns it from now on.
    #[arg(long)]
    owner: String,
    #[command(flatten)]
    data: DataDirArgs,
}

pub(super) fn run(command: ScopeCommand) -> anyhow::Result<()> {
    let ScopeCommand::Reserve(args) = command;
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.location()).await?;
        Orgs::new(services.store)
            .reserve_scope(&args.scope, &args.owner)
            .await?;
        println!(
            "{} reserved for {}",
            format_args!("@{}", args.scope.trim_start_matches('@')),
            args.owner
        );
        Ok(())
    })
}
