//! `packr user add NAME --password-stdin [--email E] [--role admin|maintainer|reader]`,
//! `packr user disable NAME` and `packr user enable NAME`.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::auth::UserRole;
use crate::config::DataDirArgs;
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Create a user, or reset the e-mail, password and role of an existing one (a reset ends
    /// the user's browser sessions).
    Add(AddArgs),
    /// Stop every token, browser session and login of a user at once, keeping the account.
    Disable(NameArgs),
    /// Let a disabled user's tokens and logins work again (old browser sessions stay ended).
    Enable(NameArgs),
}

#[derive(Debug, Args)]
pub(super) struct AddArgs {
    /// Login name.
    name: String,
    /// Read the password from standard input (its first line).
    #[arg(long, required = true)]
    password_stdin: bool,
    /// E-mail shown as maintainer contact.
    #[arg(long, default_value = "")]
    email: String,
    /// What the user may do.
    #[arg(long, default_value = "maintainer", value_parser = ["admin", "maintainer", "reader"])]
    role: String,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(super) struct NameArgs {
    /// Login name.
    name: String,
    #[command(flatten)]
    data: DataDirArgs,
}

pub(super) fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => add(args),
        UserCommand::Disable(args) => set_disabled(args, true),
        UserCommand::Enable(args) => set_disabled(args, false),
    }
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    let password = input.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        bail!(
            "no password on standard input: echo \"$PASSWORD\" | packr user add NAME --password-stdin"
        );
    }
    let role = UserRole::parse(&args.role).context("unknown role")?;
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.location()).await?;
        let user = services
            .accounts
            .put_user(&args.name, &args.email, password, role)
            .await?;
        println!("user {} ({})", user.name, user.role);
        Ok(())
    })
}

fn set_disabled(args: NameArgs, disabled: bool) -> anyhow::Result<()> {
    let via = if disabled {
        "packr user disable"
    } else {
        "packr user enable"
    };
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.location()).await?;
        let changed = services
            .accounts
            .set_disabled(&args.name, disabled, via)
            .await?;
        let state = if disabled { "disabled" } else { "enabled" };
        if changed {
            println!("user {} {state}", args.name);
        } else {
            println!("user {} was already {state}", args.name);
        }
        Ok(())
    })
}
