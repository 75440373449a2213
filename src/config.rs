//! Configuration: flags and `PACKR_*` environment variables, validated once into [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

/// Where the registry keeps its state; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Directory for the SQLite database, tarballs and generated secrets.
    #[arg(long, env = "PACKR_DATA_DIR", default_value = "./packr-data")]
    pub data_dir: PathBuf,
}

/// Flags of `packr serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "PACKR_LISTEN", default_value = "127.0.0.1:4873")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub data: DataDirArgs,

    /// Public base URL clients use (tarball URLs derive from it). Defaults to the request's Host.
    #[arg(long, env = "PACKR_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Let requests without a token read packuments and tarballs.
    #[arg(long, env = "PACKR_ANONYMOUS_READ", default_value_t = false)]
    pub anonymous_read: bool,

    /// Largest accepted request body, in bytes (a publish carries the tarball in base64).
    #[arg(long, env = "PACKR_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long after publishing a version may still be unpublished (s, m, h or d suffix).
    #[arg(long, env = "PACKR_UNPUBLISH_WINDOW", default_value = "72h", value_parser = parse_duration)]
    pub unpublish_window: Duration,

    /// Let `npm adduser` create accounts for unknown names.
    #[arg(long, env = "PACKR_ALLOW_SIGNUP", default_value_t = false)]
    pub allow_signup: bool,
}

/// The validated settings `packr serve` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Directory holding the database, blobs and secrets.
    pub data_dir: PathBuf,
    /// Public base URL without a trailing slash, when configured.
    pub public_url: Option<String>,
    /// Whether reads need no token.
    pub anonymous_read: bool,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// Unpublish is refused for versions older than this.
    pub unpublish_window: Duration,
    /// Whether `npm adduser` may create accounts.
    pub allow_signup: bool,
}

impl Config {
    /// Validates the flags of `packr serve`.
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let public_url = match args.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("PACKR_PUBLIC_URL must start with http:// or https://, got {url}");
                }
                Some(url.trim_end_matches('/').to_owned())
            }
        };
        Ok(Self {
            listen: args.listen,
            data_dir: args.data.data_dir,
            public_url,
            anonymous_read: args.anonymous_read,
            max_body_bytes: args.max_body_bytes,
            unpublish_window: args.unpublish_window,
            allow_signup: args.allow_signup,
        })
    }

    /// Settings for an in-process test server on an ephemeral loopback port.
    pub fn for_tests(data_dir: &Path) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            public_url: None,
            anonymous_read: false,
            max_body_bytes: 64 * 1024 * 1024,
            unpublish_window: Duration::from_secs(72 * 3600),
            allow_signup: false,
        }
    }
}

/// Parses `30d`, `2h`, `15m`, `2s` (a bare number means seconds).
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let amount: u64 = digits
        .parse()
        .with_context(|| format!("`{text}` is not a duration like 30s, 15m, 2h or 30d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("`{text}` has unit `{unit}`; use s, m, h or d"),
    };
    Ok(Duration::from_secs(amount.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_four_suffixes() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn a_duration_with_an_unknown_unit_is_refused() {
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("d").is_err());
    }
}
