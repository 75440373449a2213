//! `packr migrate`: brings the metadata store's schema up to date and prints the version reached.
//! With `--database-url` (or `PACKR_DATABASE_URL`) that is a PostgreSQL database, otherwise the
//! SQLite database in `--data-dir`. `packr serve` migrates SQLite itself on start; PostgreSQL is
//! only ever migrated here, so far.

use anyhow::Context;
use clap::Args;
use secrecy::ExposeSecret;

use crate::config::DataDirArgs;
use crate::store::Sqlite;
use crate::store::postgres::PgPool;
use crate::store::postgres::migrate::Outcome;

#[derive(Debug, Args)]
pub(super) struct MigrateArgs {
    #[command(flatten)]
    data: DataDirArgs,
}

pub(super) fn run(args: MigrateArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(async move {
        match args.data.database_url() {
            Some(url) => migrate_postgres(url.expose_secret()).await,
            None => migrate_sqlite(&args.data).await,
        }
    })
}

async fn migrate_postgres(url: &str) -> anyhow::Result<()> {
    let pool = PgPool::connect(url).await?;
    let outcome = pool
        .migrate()
        .await
        .with_context(|| format!("migrating PostgreSQL at {}", pool.target()))?;
    let what = match outcome {
        Outcome::Created(_) => "schema created".to_owned(),
        Outcome::Upgraded { from, .. } => format!("upgraded from version {from}"),
        Outcome::Current(_) => "already up to date".to_owned(),
    };
    println!(
        "PostgreSQL {}: schema version {} ({what})",
        pool.target(),
        outcome.version()
    );
    Ok(())
}

async fn migrate_sqlite(data: &DataDirArgs) -> anyhow::Result<()> {
    let dir = &data.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let db = Sqlite::open(dir)
        .with_context(|| format!("migrating the database in {}", dir.display()))?;
    let version = db.schema_version().await?;
    println!(
        "SQLite {}: schema version {version}",
        dir.join("packr.db").display()
    );
    Ok(())
}
