//! `packr user add NAME --password-stdin [--email E] [--role admin|maintainer|reader]`.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::auth::UserRole;
use crate::config::DataDirArgs;
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Create a user, or reset the e-mail, password and role of an existing one.
    Add(AddArgs),
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

pub(super) fn run(command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add(args) = command;
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
        let services = Services::open(&args.data.data_dir)?;
        let user = services
            .accounts
            .put_user(&args.name, &args.email, password, role)
            .await?;
        println!("user {} ({})", user.name, user.role);
        Ok(())
    })
}
