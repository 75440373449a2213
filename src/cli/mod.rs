//! The `packr` command line: one file per subcommand.

mod advisory;
mod keys;
mod login;
mod migrate;
mod migrate_store;
mod scope;
mod serve;
mod token;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Packr: a private npm registry.
#[derive(Debug, Parser)]
#[command(name = "packr", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry.
    Serve(Box<crate::config::ServeArgs>),
    /// Manage users.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Reserve scopes that are not orgs.
    #[command(subcommand)]
    Scope(scope::ScopeCommand),
    /// Registry signing keys: rotate, list.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage security advisories (what `npm audit` reports).
    #[command(subcommand)]
    Advisory(advisory::AdvisoryCommand),
    /// Log in to a registry from this terminal by confirming a code in a browser.
    Login(login::LoginArgs),
    /// Bring the metadata database's schema up to date (PostgreSQL with --database-url, else
    /// SQLite in --data-dir) and print its version.
    Migrate(migrate::MigrateArgs),
    /// Move a registry from SQLite (and its tarball files) to PostgreSQL (and S3), losing
    /// nothing; run with the registry stopped, again to resume.
    MigrateStore(migrate_store::MigrateStoreArgs),
}

/// Runs a parsed command line; errors are printed with their causes.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::User(command) => user::run(command),
        Command::Token(command) => token::run(command),
        Command::Scope(command) => scope::run(command),
        Command::Keys(command) => keys::run(command),
        Command::Advisory(command) => advisory::run(command),
        Command::Login(args) => login::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::MigrateStore(args) => migrate_store::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("packr: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
