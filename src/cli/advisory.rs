//! `packr advisory add|list|rm`: security advisories straight on the store, recorded in the
//! audit log as the operator's.

use clap::{Args, Subcommand};

use crate::advisories::{Advisories, Advisory, AdvisoryInput, CvssInput, SEVERITIES};
use crate::config::DataDirArgs;
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub(super) enum AdvisoryCommand {
    /// Record an advisory: `npm audit` reports the package's versions in the range.
    Add(AddArgs),
    /// List advisories, oldest first.
    List(ListArgs),
    /// Delete an advisory by id.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub(super) struct AddArgs {
    /// The package, like `@acme/widget`.
    package: String,
    /// The affected versions, an npm range such as "<1.2.3 || >=2.0.0 <2.1.0".
    #[arg(long = "vulnerable")]
    vulnerable_versions: String,
    /// The fixed versions, an npm range such as ">=1.2.3".
    #[arg(long = "patched")]
    patched_versions: Option<String>,
    /// How bad it is.
    #[arg(long, value_parser = SEVERITIES)]
    severity: String,
    /// One line saying what is wrong.
    #[arg(long)]
    title: String,
    /// Where to read more.
    #[arg(long)]
    url: Option<String>,
    /// A CWE id (repeatable), e.g. --cwe CWE-79.
    #[arg(long = "cwe")]
    cwe: Vec<String>,
    /// The CVSS base score, 0.0 to 10.0.
    #[arg(long = "cvss-score")]
    cvss_score: Option<f64>,
    /// The CVSS vector string (needs --cvss-score).
    #[arg(long = "cvss-vector", requires = "cvss_score")]
    cvss_vector: Option<String>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Only this package's advisories.
    #[arg(long)]
    package: Option<String>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(super) struct RmArgs {
    /// The advisory's id, as `packr advisory list` shows it.
    id: i64,
    #[command(flatten)]
    data: DataDirArgs,
}

pub(super) fn run(command: AdvisoryCommand) -> anyhow::Result<()> {
    super::runtime()?.block_on(async move {
        match command {
            AdvisoryCommand::Add(args) => add(args).await,
            AdvisoryCommand::List(args) => list(args).await,
            AdvisoryCommand::Rm(args) => rm(args).await,
        }
    })
}

async fn open(data: &DataDirArgs) -> anyhow::Result<Advisories> {
    let services = Services::open(&data.location()).await?;
    Ok(Advisories::new(services.store, None))
}

/// One advisory on one line: `id  package  range  severity  title`.
fn line(advisory: &Advisory) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        advisory.id,
        advisory.package,
        advisory.vulnerable_versions,
        advisory.severity,
        advisory.title
    )
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    let advisories = open(&args.data).await?;
    let input = AdvisoryInput {
        package: args.package,
        vulnerable_versions: args.vulnerable_versions,
        patched_versions: args.patched_versions,
        severity: args.severity,
        title: args.title,
        url: args.url,
        cwe: args.cwe,
        cvss: args.cvss_score.map(|score| CvssInput {
            score,
            vector: args.cvss_vector,
        }),
    };
    let advisory = advisories.create(None, input).await?;
    println!("{}", line(&advisory));
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let advisories = open(&args.data).await?;
    for advisory in advisories.list(args.package.as_deref()).await? {
        println!("{}", line(&advisory));
    }
    Ok(())
}

async fn rm(args: RmArgs) -> anyhow::Result<()> {
    let advisories = open(&args.data).await?;
    let advisory = advisories.delete(None, args.id).await?;
    println!("deleted advisory {}", line(&advisory));
    Ok(())
}
