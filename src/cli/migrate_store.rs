//! `packr migrate-store`: moves a registry from its SQLite database (and, with
//! `--copy-blobs-to-s3`, its tarball files) to PostgreSQL (and S3), losing nothing: users with
//! their password hashes, tokens, packages, tombstones, orgs, the audit log, webhooks with their
//! encrypted secrets and pending deliveries. Run it with the registry stopped. It can be run
//! again: a second run copies only what the first did not, and checks everything again.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::BytesMut;
use clap::Args;
use futures_util::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha512};

use crate::config::{Storage, StorageArgs};
use crate::store::blob::fs::FsBlobStore;
use crate::store::blob::s3::S3BlobStore;
use crate::store::transfer::{self, TableCopy};
use crate::store::{BlobKey, BlobStore, Postgres, Sqlite};

#[derive(Debug, Args)]
pub(super) struct MigrateStoreArgs {
    /// The data directory of the registry to move (its packr.db and blobs/).
    #[arg(long)]
    from_data_dir: PathBuf,

    /// The PostgreSQL database to move it to, as postgres://USER:PASSWORD@HOST:5432/DATABASE; its
    /// schema is created or brought up to date first.
    #[arg(long, env = "PACKR_DATABASE_URL", hide_env_values = true)]
    to: SecretString,

    /// Also copy the tarballs to the S3 bucket configured by PACKR_STORAGE=s3 and the
    /// PACKR_S3_* settings. Without it, the tarballs in the data directory are only checked.
    #[arg(long)]
    copy_blobs_to_s3: bool,

    #[command(flatten)]
    storage: StorageArgs,
}

pub(super) fn run(args: MigrateStoreArgs) -> anyhow::Result<()> {
    let s3 = if args.copy_blobs_to_s3 {
        match Storage::from_args(&args.storage)? {
            Storage::S3(config) => Some(config),
            Storage::Fs => bail!(
                "--copy-blobs-to-s3 needs the bucket to copy to: set PACKR_STORAGE=s3 and PACKR_S3_BUCKET (with PACKR_S3_ENDPOINT and credentials as for `packr serve`)"
            ),
        }
    } else {
        None
    };
    super::runtime()?.block_on(async move {
        let dir = &args.from_data_dir;
        // Brings the source to the schema this binary knows, so both sides have the same columns.
        Sqlite::open(dir).with_context(|| format!("opening the database in {}", dir.display()))?;
        let target = Postgres::open(args.to.expose_secret()).await?;
        println!("copying {} to PostgreSQL {}", dir.join("packr.db").display(), target.pool().target());
        let tables = transfer::copy_sqlite_to_postgres(dir, &target, print_table).await?;
        let local = Arc::new(FsBlobStore::open(&dir.join("blobs"))?);
        let keys = transfer::blob_keys(dir)?;
        let checked = match s3 {
            Some(config) => {
                let bucket = S3BlobStore::new(&config)?;
                copy_blobs(local.as_ref(), &bucket, &keys).await?;
                println!("checking {} tarballs in bucket {}", keys.len(), config.bucket);
                check_blobs(&bucket, &keys).await?
            }
            None => {
                println!("checking {} tarballs in {}", keys.len(), dir.join("blobs").display());
                check_blobs(local.as_ref(), &keys).await?
            }
        };
        let incomplete: Vec<&TableCopy> = tables.iter().filter(|copy| !copy.complete()).collect();
        if !incomplete.is_empty() {
            let list: Vec<String> = incomplete
                .iter()
                .map(|copy| format!("{} ({} in SQLite, {} in PostgreSQL)", copy.table, copy.source_rows, copy.target_rows))
                .collect();
            bail!(
                "row counts differ after the copy: {}. Was the target written to by a running registry? Copy into an empty database",
                list.join(", ")
            );
        }
        println!(
            "done: {} tables, {} rows, {checked} tarballs checked. Start `packr serve` with PACKR_DATABASE_URL{} and the same PACKR_JWT_SECRET, PACKR_SESSION_SECRET and PACKR_SECRET_KEY as before (the files in {})",
            tables.len(),
            tables.iter().map(|copy| copy.target_rows).sum::<i64>(),
            if args.copy_blobs_to_s3 { " and the S3 settings" } else { ", PACKR_ALLOW_LOCAL_BLOBS=true" },
            dir.join("secrets").display()
        );
        Ok(())
    })
}

fn print_table(copy: &TableCopy) {
    println!(
        "  {:<30} {:>9} rows, {:>9} copied now",
        copy.table, copy.target_rows, copy.copied
    );
}

/// The whole blob, or `None` when the store has none under `key`.
async fn read(store: &dyn BlobStore, key: &BlobKey) -> anyhow::Result<Option<bytes::Bytes>> {
    let Some(blob) = store.get(key).await? else {
        return Ok(None);
    };
    let bytes = blob
        .body
        .try_fold(BytesMut::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await?;
    Ok(Some(bytes.freeze()))
}

/// Whether `bytes` are the ones `key` addresses.
fn matches(key: &BlobKey, bytes: &[u8]) -> bool {
    hex::encode(Sha512::digest(bytes)) == key.as_str()
}

/// Copies every blob the bucket lacks.
async fn copy_blobs(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    keys: &[String],
) -> anyhow::Result<()> {
    let mut copied = 0;
    for key in keys.iter().filter_map(|key| BlobKey::parse(key)) {
        if to.get(&key).await?.is_some() {
            continue;
        }
        let bytes = read(from, &key).await?.with_context(|| {
            format!(
                "tarball {} is missing from the data directory",
                key.as_str()
            )
        })?;
        if !matches(&key, &bytes) {
            bail!(
                "tarball {} in the data directory does not match its checksum",
                key.as_str()
            );
        }
        to.put(&key, bytes).await?;
        copied += 1;
    }
    println!(
        "copied {copied} tarballs ({} were there already)",
        keys.len() - copied
    );
    Ok(())
}

/// Reads every blob back and checks it against its content address; the number checked.
async fn check_blobs(store: &dyn BlobStore, keys: &[String]) -> anyhow::Result<usize> {
    let mut bad = Vec::new();
    for text in keys {
        let Some(key) = BlobKey::parse(text) else {
            bad.push(format!("{text} (not a sha512 address)"));
            continue;
        };
        match read(store, &key).await? {
            Some(bytes) if matches(&key, &bytes) => {}
            Some(_) => bad.push(format!("{text} (checksum differs)")),
            None => bad.push(format!("{text} (missing)")),
        }
    }
    if !bad.is_empty() {
        bail!(
            "{} tarballs failed the check: {}",
            bad.len(),
            bad.join(", ")
        );
    }
    Ok(keys.len())
}
