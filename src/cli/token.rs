//! `packr token create --user NAME --role ROLE [--scope @x]... [--expires 30d] [--name LABEL]`.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::auth::accounts::user_role;
use crate::auth::tokens::TokenRequest;
use crate::auth::{Origin, Role};
use crate::config::{DataDirArgs, parse_duration};
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Create a token; the token alone is printed on the last line of standard output.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// The user the token acts as.
    #[arg(long)]
    user: String,
    /// What the token may do.
    #[arg(long, value_parser = ["ci-readonly", "ci-publish", "maintainer", "admin"])]
    role: String,
    /// Restrict writes to a scope (repeatable), e.g. --scope @acme.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Lifetime, e.g. 30d, 12h (default: never expires).
    #[arg(long, value_parser = parse_duration)]
    expires: Option<Duration>,
    /// A label to recognise the token by.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    data: DataDirArgs,
}

pub(super) fn run(command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create(args) = command;
    let role = Role::parse(&args.role).context("unknown role")?;
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.data_dir)?;
        let user = services.accounts.find(&args.user).await?.with_context(|| {
            format!(
                "there is no user named {}; create it with packr user add",
                args.user
            )
        })?;
        let allowed = user_role(&user).max_token_role();
        if role > allowed {
            bail!(
                "user {} is a {} and may hold tokens up to {allowed}, not {role}",
                user.name,
                user.role
            );
        }
        let token = services
            .tokens
            .issue(
                &user,
                TokenRequest {
                    role,
                    scopes: args.scopes,
                    ttl: args.expires,
                    name: args.name,
                },
                &Origin::default(),
            )
            .await?;
        println!("{token}");
        Ok(())
    })
}
