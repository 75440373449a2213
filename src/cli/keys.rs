//! `packr keys rotate|list`: the registry signing keys (src/signing). A rotation takes effect on
//! every instance sharing the store within seconds; the old key stays published with `expires`.

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::DataDirArgs;
use crate::server::Services;
use crate::signing;
use crate::webhooks::SecretBox;

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Add a new signing key for new versions; the current one gets `expires` (five minutes
    /// ahead, while every instance picks up the new key) and stays published.
    Rotate(KeysArgs),
    /// List every signing key with its expiry.
    List(KeysArgs),
}

#[derive(Debug, Args)]
pub(super) struct KeysArgs {
    #[command(flatten)]
    data: DataDirArgs,
}

pub(super) fn run(command: KeysCommand) -> anyhow::Result<()> {
    super::runtime()?.block_on(async move {
        match command {
            KeysCommand::Rotate(args) => {
                let location = args.data.location();
                let services = Services::open(&location).await?;
                let sealer = SecretBox::from_key(
                    &location.secrets.secret("PACKR_SECRET_KEY", "webhook.key")?,
                )
                .context("PACKR_SECRET_KEY")?;
                let keyid = signing::rotate(&services.store, &sealer).await?;
                println!("new signing key {keyid}; the previous one expires in 5 minutes");
            }
            KeysCommand::List(args) => {
                let services = Services::open(&args.data.location()).await?;
                let keys = signing::list(&services.store).await?;
                if keys.is_empty() {
                    println!("no signing keys yet (the server makes one on its first start)");
                }
                for key in keys {
                    println!(
                        "{}\tcreated {}\t{}",
                        key.keyid,
                        key.created,
                        key.expires
                            .map_or_else(|| "active".to_owned(), |e| format!("expires {e}"))
                    );
                }
            }
        }
        Ok(())
    })
}
