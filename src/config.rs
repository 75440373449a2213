//! Configuration: flags and `PACKR_*` environment variables, validated once into [`Config`].

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ipnet::IpNet;
use secrecy::SecretString;

mod oauth;

pub use oauth::{OAuthArgs, OAuthConfig, Protocol, ProviderConfig};

use crate::auth::secrets::SecretSource;

/// Where the registry keeps its state; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Directory for the SQLite database, tarballs and generated secrets.
    #[arg(long, env = "PACKR_DATA_DIR", default_value = "./packr-data")]
    pub data_dir: PathBuf,

    /// PostgreSQL metadata database, as postgres://USER:PASSWORD@HOST:5432/DATABASE; without it
    /// the metadata is the SQLite database in the data directory.
    #[arg(long, env = "PACKR_DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<SecretString>,

    /// Directory of secret files named like their variables (PACKR_JWT_SECRET,
    /// PACKR_SESSION_SECRET, PACKR_SECRET_KEY), such as a mounted Kubernetes Secret.
    #[arg(long, env = "PACKR_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// With PACKR_DATABASE_URL: keep tarballs and generated secrets in the data directory anyway.
    /// Only for a single instance; several instances need S3 and shared secrets.
    #[arg(long, env = "PACKR_ALLOW_LOCAL_BLOBS", default_value_t = false)]
    pub allow_local_blobs: bool,
}

/// Where a registry's metadata and secrets are: what `serve` and every store command share.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    /// The data directory (SQLite, files, generated secrets).
    pub data_dir: PathBuf,
    /// The PostgreSQL database, when the metadata lives there.
    pub database_url: Option<SecretString>,
    /// Where the secrets come from.
    pub secrets: SecretSource,
    /// Streaming replicas of the database that package reads may go to (`serve` only).
    pub replicas: ReplicaSettings,
    /// Whether this is the registry's only instance: SQLite, or PostgreSQL with tarballs in the
    /// data directory (`PACKR_ALLOW_LOCAL_BLOBS`). Writes then wait for no other instance.
    pub one_instance: bool,
}

/// Read replicas of the PostgreSQL database.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// Their URLs; never shown (`SecretString`).
    pub urls: Vec<SecretString>,
    /// A replica further behind than this is skipped.
    pub max_lag: Duration,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            max_lag: Duration::from_secs(5),
        }
    }
}

impl DataDirArgs {
    /// The PostgreSQL URL, unless unset or empty.
    pub fn database_url(&self) -> Option<&SecretString> {
        use secrecy::ExposeSecret;
        self.database_url
            .as_ref()
            .filter(|url| !url.expose_secret().trim().is_empty())
    }

    /// Where secrets come from: generated into the data directory only when this machine holds
    /// the registry's state (SQLite, or PostgreSQL with local blobs allowed).
    pub fn secret_source(&self) -> SecretSource {
        let local = self.database_url().is_none() || self.allow_local_blobs;
        SecretSource {
            dir: self.secrets_dir.clone(),
            generate_in: local.then(|| self.data_dir.clone()),
        }
    }

    /// Where the store and the secrets are.
    pub fn location(&self) -> StoreLocation {
        StoreLocation {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url().cloned(),
            secrets: self.secret_source(),
            replicas: ReplicaSettings::default(),
            one_instance: self.database_url().is_none() || self.allow_local_blobs,
        }
    }
}

/// Default of `PACKR_BLOCKING_THREADS`: every SQLite connection (8 readers and the writer) busy
/// at once, with renders and file writes beside them. (PostgreSQL calls are async and take none.)
/// At 50,000 packages, 512 (tokio's default) left 88 threads and 12 MiB more RSS after the reads.
pub const DEFAULT_BLOCKING_THREADS: usize = 16;

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

    /// Sigstore `trusted_root.json` provenance bundles are verified against at publish; without
    /// it bundles are stored and marked unverified.
    #[arg(long, env = "PACKR_SIGSTORE_TRUST_ROOT")]
    pub sigstore_trust_root: Option<PathBuf>,

    /// Largest accepted request body, in bytes (a publish carries the tarball in base64).
    #[arg(long, env = "PACKR_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Memory of the read cache (rendered packuments and small tarballs), in bytes, counting what
    /// each entry really costs; the least-read entries are evicted past it.
    #[arg(long, env = "PACKR_CACHE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub cache_bytes: usize,

    /// Most threads for blocking work (database calls, rendering, file writes) at once; more
    /// calls wait for one. Each thread keeps its own allocator cache, so the cap bounds memory.
    #[arg(long, env = "PACKR_BLOCKING_THREADS", default_value_t = crate::config::DEFAULT_BLOCKING_THREADS)]
    pub blocking_threads: usize,

    /// How long after publishing a version may still be unpublished (s, m, h or d suffix).
    #[arg(long, env = "PACKR_UNPUBLISH_WINDOW", default_value = "72h", value_parser = parse_duration)]
    pub unpublish_window: Duration,

    /// Let `npm adduser` create accounts for unknown names.
    #[arg(long, env = "PACKR_ALLOW_SIGNUP", default_value_t = false)]
    pub allow_signup: bool,

    /// An npm-compatible registry (such as `https://registry.npmjs.org`) whose bulk advisory
    /// endpoint `npm audit` questions are forwarded to, for packages Packr does not host.
    #[arg(long, env = "PACKR_AUDIT_UPSTREAM")]
    pub audit_upstream: Option<String>,

    /// Requests one client IP may make to the login, device-code and token endpoints, as N/s,
    /// N/m or N/h (a bucket of N refilled over that period), or `off`.
    #[arg(long, env = "PACKR_LOGIN_RATE_LIMIT", default_value = "10/m", value_parser = parse_rate_limit)]
    pub login_rate_limit: RateLimit,

    /// Reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For / Forwarded headers are
    /// believed; the client is the rightmost forwarded address outside these networks.
    #[arg(long, env = "PACKR_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Argon2 password hashes and checks run at once (about 19 MiB each); further logins wait.
    /// Default: the number of CPUs.
    #[arg(long, env = "PACKR_PASSWORD_CONCURRENCY")]
    pub password_concurrency: Option<std::num::NonZeroUsize>,

    /// How often token usage data (last use, use count) is written to the database.
    #[arg(long, env = "PACKR_TOKEN_USAGE_FLUSH", default_value = "5s", value_parser = parse_duration)]
    pub token_usage_flush: Duration,

    #[command(flatten)]
    pub login: LoginSettings,

    #[command(flatten)]
    pub oauth: OAuthArgs,

    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub webhooks: WebhookArgs,

    #[command(flatten)]
    pub trust: TrustArgs,

    #[command(flatten)]
    pub regions: RegionArgs,

    /// Streaming replicas of PACKR_DATABASE_URL (comma-separated postgres:// URLs) that package
    /// reads go to once they have replayed what is read; writes stay on the primary.
    #[arg(long, env = "PACKR_DATABASE_REPLICA_URL", hide_env_values = true, value_delimiter = ',', value_parser = parse_secret)]
    pub database_replica_url: Vec<SecretString>,

    /// A replica further behind the primary than this is skipped until it catches up.
    #[arg(long, env = "PACKR_REPLICA_MAX_LAG", default_value = "5s", value_parser = parse_duration)]
    pub replica_max_lag: Duration,
}

/// Where this instance runs, and (on Fly.io) which region takes the writes.
#[derive(Debug, Clone, Args)]
pub struct RegionArgs {
    /// This instance's region, reported by `/-/health`. Defaults to Fly's FLY_REGION.
    #[arg(long, env = "PACKR_REGION")]
    pub region: Option<String>,

    /// The Fly.io region this machine runs in; Fly sets FLY_REGION.
    #[arg(long, env = "FLY_REGION")]
    pub fly_region: Option<String>,

    /// The Fly.io region of the primary database; Fly sets PRIMARY_REGION from fly.toml's
    /// `primary_region`. Writes landing elsewhere are answered with `fly-replay` to it.
    #[arg(long, env = "PRIMARY_REGION")]
    pub primary_region: Option<String>,
}

/// On Fly.io: the machine's region and the primary region, both set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlyRegions {
    /// FLY_REGION: where this machine runs.
    pub region: String,
    /// PRIMARY_REGION: where writes are processed.
    pub primary: String,
}

/// How webhook deliveries are sent and retried.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Waits before each retry of a failed delivery, comma-separated (s, m, h or d suffix);
    /// after the last one the delivery is marked failed.
    #[arg(
        long,
        env = "PACKR_WEBHOOK_RETRY_SCHEDULE",
        default_value = "1m,5m,30m,2h,24h"
    )]
    pub webhook_retry_schedule: String,

    /// Time limit of one delivery attempt (s, m, h or d suffix).
    #[arg(long, env = "PACKR_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Networks deliveries may reach although they are loopback, private, link-local or otherwise
    /// internal, comma-separated CIDRs such as `10.0.0.0/8`; empty refuses every such address.
    #[arg(long, env = "PACKR_WEBHOOK_ALLOWED_NETWORKS", default_value = "")]
    pub webhook_allowed_networks: String,
}

/// Trusted publishing: the OIDC issuers whose CI ID tokens are exchanged for publish tokens.
#[derive(Debug, Clone, Args)]
pub struct TrustArgs {
    /// GitHub Actions' OIDC issuer (GitHub Enterprise Server: `https://HOST/_services/token`).
    #[arg(
        long,
        env = "PACKR_TRUSTED_PUBLISHING_GITHUB_ISSUER",
        default_value = "https://token.actions.githubusercontent.com"
    )]
    pub trusted_publishing_github_issuer: String,

    /// GitLab's OIDC issuer (a self-managed GitLab's URL).
    #[arg(
        long,
        env = "PACKR_TRUSTED_PUBLISHING_GITLAB_ISSUER",
        default_value = "https://gitlab.com"
    )]
    pub trusted_publishing_gitlab_issuer: String,
}

/// Where tarball bytes are kept: the data directory, or an S3-compatible bucket.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Tarball storage: `fs` (files under the data directory) or `s3` (an S3-compatible bucket).
    #[arg(long, env = "PACKR_STORAGE", value_enum, default_value_t = StorageKind::Fs)]
    pub storage: StorageKind,

    /// Bucket holding the tarballs (required with `--storage s3`).
    #[arg(long, env = "PACKR_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// Endpoint of an S3-compatible service, such as `http://127.0.0.1:9000`; AWS when unset.
    #[arg(long, env = "PACKR_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Region name; it is part of every signature, so it must match the service's.
    #[arg(long, env = "PACKR_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Address the bucket in the path (`ENDPOINT/BUCKET/KEY`) rather than as a subdomain.
    #[arg(long, env = "PACKR_S3_PATH_STYLE", default_value_t = false)]
    pub s3_path_style: bool,

    /// Key prefix for the tarballs inside the bucket, such as `tarballs`.
    #[arg(long, env = "PACKR_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,

    /// Access key ID; with neither key set, the AWS environment variables or profile are used.
    #[arg(long, env = "PACKR_S3_ACCESS_KEY_ID", hide_env_values = true, value_parser = parse_secret)]
    pub s3_access_key_id: Option<SecretString>,

    /// Secret access key, given together with the access key ID.
    #[arg(long, env = "PACKR_S3_SECRET_ACCESS_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub s3_secret_access_key: Option<SecretString>,

    /// Time limit of one request to the object store (s, m, h or d suffix); failures are retried.
    #[arg(long, env = "PACKR_S3_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub s3_timeout: Duration,

    /// Answer tarball downloads with a 302 to a short-lived presigned URL instead of streaming
    /// them through Packr (needs `--storage s3`).
    #[arg(long, env = "PACKR_TARBALL_REDIRECT", default_value_t = false)]
    pub tarball_redirect: bool,
}

/// The kinds of tarball storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    /// Files under `<data dir>/blobs`.
    Fs,
    /// An S3-compatible bucket.
    S3,
}

/// Where tarballs are stored, validated.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Files under `<data dir>/blobs`.
    Fs,
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// The validated settings of S3 storage; `Debug` redacts the credentials.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket's name.
    pub bucket: String,
    /// The service's base URL without a trailing slash; `None` means AWS.
    pub endpoint: Option<String>,
    /// The region name used in signatures.
    pub region: String,
    /// Whether the bucket goes in the path instead of the host name.
    pub path_style: bool,
    /// Key prefix without leading or trailing slashes; empty for none.
    pub prefix: String,
    /// Static credentials; `None` means the AWS environment variables or profile.
    pub credentials: Option<S3Credentials>,
    /// Time limit of one request attempt.
    pub timeout: Duration,
}

/// An S3 access key pair; both halves are redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// The access key ID.
    pub access_key_id: SecretString,
    /// The secret access key.
    pub secret_access_key: SecretString,
}

/// The validated settings `packr serve` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Directory holding the database, blobs and secrets.
    pub data_dir: PathBuf,
    /// The PostgreSQL metadata database; `None` for the SQLite one in `data_dir`.
    pub database_url: Option<SecretString>,
    /// Where the secrets come from.
    pub secrets: SecretSource,
    /// Public base URL without a trailing slash, when configured.
    pub public_url: Option<String>,
    /// Whether reads need no token.
    pub anonymous_read: bool,
    /// Sigstore trust root file for provenance verification.
    pub sigstore_trust_root: Option<PathBuf>,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// Memory bound of the packument cache.
    pub cache_bytes: usize,
    /// Most blocking threads of the runtime.
    pub blocking_threads: usize,
    /// Unpublish is refused for versions older than this.
    pub unpublish_window: Duration,
    /// Whether `npm adduser` may create accounts.
    pub allow_signup: bool,
    /// Per-IP limit on the login, device-code and token endpoints.
    pub login_rate_limit: RateLimit,
    /// Argon2 hashes and checks at once.
    pub password_concurrency: usize,
    /// How often token usage data is written to the database.
    pub token_usage_flush: Duration,
    /// Reverse proxies whose forwarding headers name the client; empty: the peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Where tarballs are stored.
    pub storage: Storage,
    /// Whether tarball downloads answer 302 to a short-lived presigned URL instead of streaming.
    pub tarball_redirect: bool,
    /// Browser and device-code login.
    pub login: LoginSettings,
    /// Sign-in through OAuth providers.
    pub oauth: OAuthConfig,
    /// Waits before each retry of a failed webhook delivery.
    pub webhook_retry_schedule: Vec<Duration>,
    /// Time limit of one webhook delivery attempt.
    pub webhook_timeout: Duration,
    /// Internal networks webhook deliveries may reach anyway.
    pub webhook_allowed_networks: Vec<IpNet>,
    /// Trusted publishing's issuers.
    pub trust: crate::trust::TrustSettings,
    /// This instance's region (PACKR_REGION, else FLY_REGION), for `/-/health`.
    pub region: Option<String>,
    /// The registry audits of packages Packr does not host are forwarded to, without a trailing
    /// slash.
    pub audit_upstream: Option<String>,
    /// On Fly.io (FLY_REGION and PRIMARY_REGION both set): writes landing outside the primary
    /// region are sent back with `fly-replay` (see `fly_replay`).
    pub fly: Option<FlyRegions>,
    /// Read replicas of the PostgreSQL database.
    pub replicas: ReplicaSettings,
}

/// Browser and device-code login settings.
#[derive(Debug, Clone, Args)]
pub struct LoginSettings {
    /// How long device and web-login codes stay valid (s, m, h or d suffix).
    #[arg(long, env = "PACKR_DEVICE_CODE_TTL", default_value = "15m", value_parser = parse_duration)]
    pub device_code_ttl: Duration,

    /// Minimum time between a device's polls; faster polls get `slow_down`.
    #[arg(long, env = "PACKR_DEVICE_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub device_poll_interval: Duration,

    /// How long a browser session lasts.
    #[arg(long, env = "PACKR_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub session_ttl: Duration,
}

impl LoginSettings {
    /// The defaults, as the flags document them.
    pub fn defaults() -> Self {
        Self {
            device_code_ttl: Duration::from_secs(15 * 60),
            device_poll_interval: Duration::from_secs(5),
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
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
        let audit_upstream = match args.audit_upstream.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("PACKR_AUDIT_UPSTREAM must start with http:// or https://, got {url}");
                }
                Some(url.trim_end_matches('/').to_owned())
            }
        };
        let storage = Storage::from_args(&args.storage)?;
        if args.storage.tarball_redirect && !matches!(storage, Storage::S3(_)) {
            bail!(
                "PACKR_TARBALL_REDIRECT needs PACKR_STORAGE=s3: filesystem storage has no URLs to redirect to"
            );
        }
        let webhook_retry_schedule = parse_duration_list(&args.webhooks.webhook_retry_schedule)
            .context("PACKR_WEBHOOK_RETRY_SCHEDULE must list durations like 1m,5m,30m,2h,24h")?;
        let trusted_proxies = parse_networks(args.trusted_proxies.iter().map(String::as_str))
            .context("PACKR_TRUSTED_PROXIES must list networks like 172.16.0.0/12,fd00::/8")?;
        if args.token_usage_flush.is_zero() {
            bail!("PACKR_TOKEN_USAGE_FLUSH must be longer than zero");
        }
        if args.webhooks.webhook_timeout.is_zero() {
            bail!("PACKR_WEBHOOK_TIMEOUT must be longer than zero");
        }
        let webhook_allowed_networks = parse_networks(
            args.webhooks.webhook_allowed_networks.split(','),
        )
        .context("PACKR_WEBHOOK_ALLOWED_NETWORKS must list networks like 10.0.0.0/8,fd00::/8")?;
        if args.data.database_url().is_some()
            && matches!(storage, Storage::Fs)
            && !args.data.allow_local_blobs
        {
            bail!(
                "PACKR_DATABASE_URL is set but tarballs would be kept in the data directory \
                 (PACKR_STORAGE=fs), which other instances cannot read: set PACKR_STORAGE=s3 with \
                 a bucket, or PACKR_ALLOW_LOCAL_BLOBS=true if this is the only instance"
            );
        }
        let replica_urls: Vec<SecretString> = args
            .database_replica_url
            .into_iter()
            .filter(|url| !secrecy::ExposeSecret::expose_secret(url).trim().is_empty())
            .collect();
        if !replica_urls.is_empty() && args.data.database_url().is_none() {
            bail!(
                "PACKR_DATABASE_REPLICA_URL is set without PACKR_DATABASE_URL: replicas serve reads \
                 of a PostgreSQL primary, which PACKR_DATABASE_URL names"
            );
        }
        Ok(Self {
            listen: args.listen,
            secrets: args.data.secret_source(),
            database_url: args.data.database_url().cloned(),
            data_dir: args.data.data_dir,
            public_url,
            anonymous_read: args.anonymous_read,
            sigstore_trust_root: args.sigstore_trust_root,
            max_body_bytes: args.max_body_bytes,
            cache_bytes: args.cache_bytes,
            blocking_threads: args.blocking_threads.max(1),
            unpublish_window: args.unpublish_window,
            allow_signup: args.allow_signup,
            login_rate_limit: args.login_rate_limit,
            password_concurrency: args.password_concurrency.map_or_else(
                || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                std::num::NonZero::get,
            ),
            token_usage_flush: args.token_usage_flush,
            trusted_proxies,
            storage,
            tarball_redirect: args.storage.tarball_redirect,
            login: args.login,
            oauth: OAuthConfig::from_args(args.oauth)?,
            webhook_retry_schedule,
            webhook_timeout: args.webhooks.webhook_timeout,
            webhook_allowed_networks,
            trust: crate::trust::TrustSettings {
                github_issuer: args.trust.trusted_publishing_github_issuer,
                gitlab_issuer: args.trust.trusted_publishing_gitlab_issuer,
            },
            region: args.regions.region(),
            fly: args.regions.fly(),
            replicas: ReplicaSettings {
                urls: replica_urls,
                max_lag: args.replica_max_lag,
            },
            audit_upstream,
        })
    }

    /// Where the store and the secrets are.
    pub fn store_location(&self) -> StoreLocation {
        StoreLocation {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            secrets: self.secrets.clone(),
            replicas: self.replicas.clone(),
            one_instance: matches!(self.storage, Storage::Fs),
        }
    }

    /// Settings for an in-process test server on an ephemeral loopback port.
    pub fn for_tests(data_dir: &Path) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            database_url: None,
            secrets: SecretSource {
                dir: None,
                generate_in: Some(data_dir.to_owned()),
            },
            public_url: None,
            anonymous_read: false,
            sigstore_trust_root: None,
            max_body_bytes: 64 * 1024 * 1024,
            cache_bytes: 32 * 1024 * 1024,
            blocking_threads: DEFAULT_BLOCKING_THREADS,
            unpublish_window: Duration::from_secs(72 * 3600),
            allow_signup: false,
            // Generous, so suites that log in often never meet it; rate-limit tests lower it.
            login_rate_limit: RateLimit::Every {
                requests: NonZeroU32::MIN.saturating_add(999),
                per: Duration::from_secs(60),
            },
            password_concurrency: 2,
            token_usage_flush: Duration::from_millis(200),
            trusted_proxies: Vec::new(),
            storage: Storage::Fs,
            tarball_redirect: false,
            login: LoginSettings::defaults(),
            oauth: OAuthConfig::default(),
            webhook_retry_schedule: crate::webhooks::schedule::DEFAULT_SCHEDULE.to_vec(),
            webhook_timeout: Duration::from_secs(10),
            // As in production: tests that deliver to loopback receivers allow 127.0.0.0/8.
            webhook_allowed_networks: Vec::new(),
            trust: crate::trust::TrustSettings::default(),
            region: None,
            fly: None,
            replicas: ReplicaSettings::default(),
            audit_upstream: None,
        }
    }
}

impl RegionArgs {
    /// PACKR_REGION, else FLY_REGION; blank counts as unset.
    pub fn region(&self) -> Option<String> {
        non_blank(self.region.as_deref()).or_else(|| non_blank(self.fly_region.as_deref()))
    }

    /// Both Fly regions, when both are set.
    pub fn fly(&self) -> Option<FlyRegions> {
        Some(FlyRegions {
            region: non_blank(self.fly_region.as_deref())?,
            primary: non_blank(self.primary_region.as_deref())?,
        })
    }
}

/// The trimmed text, unless empty.
fn non_blank(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

impl Storage {
    /// Validates the storage flags.
    pub fn from_args(args: &StorageArgs) -> anyhow::Result<Self> {
        if args.storage == StorageKind::Fs {
            return Ok(Self::Fs);
        }
        let bucket = match args.s3_bucket.as_deref().map(str::trim) {
            None | Some("") => {
                bail!("PACKR_STORAGE=s3 needs PACKR_S3_BUCKET, the bucket to keep tarballs in")
            }
            Some(bucket) => bucket.to_owned(),
        };
        let endpoint = match args.s3_endpoint.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("PACKR_S3_ENDPOINT must start with http:// or https://, got {url}");
                }
                Some(url.trim_end_matches('/').to_owned())
            }
        };
        let region = args.s3_region.trim();
        if region.is_empty() {
            bail!("PACKR_S3_REGION must not be empty (it is part of every request signature)");
        }
        let credentials = match (&args.s3_access_key_id, &args.s3_secret_access_key) {
            (Some(id), Some(secret)) => Some(S3Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            }),
            (None, None) => None,
            _ => bail!(
                "set both PACKR_S3_ACCESS_KEY_ID and PACKR_S3_SECRET_ACCESS_KEY, or neither to use the AWS environment"
            ),
        };
        if args.s3_timeout.is_zero() {
            bail!("PACKR_S3_TIMEOUT must be longer than zero");
        }
        Ok(Self::S3(S3Config {
            bucket,
            endpoint,
            region: region.to_owned(),
            path_style: args.s3_path_style,
            prefix: args.s3_prefix.trim().trim_matches('/').to_owned(),
            credentials,
            timeout: args.s3_timeout,
        }))
    }
}

/// Wraps a flag's value so that `Debug` never shows it.
fn parse_secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text))
}

/// Parses a list of networks such as `10.0.0.0/8` and `fd00::/8` (see
/// [`crate::auth::cidr::parse_network`]); empty entries are skipped.
pub fn parse_networks<'a>(
    entries: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<Vec<IpNet>> {
    entries
        .into_iter()
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            crate::auth::cidr::parse_network(entry)
                .with_context(|| format!("`{entry}` is not a network like 10.0.0.0/8 or fd00::/8"))
        })
        .collect()
}

/// Parses a comma-separated list of durations, such as `1m,5m,30m,2h,24h`.
pub fn parse_duration_list(text: &str) -> anyhow::Result<Vec<Duration>> {
    text.split(',').map(parse_duration).collect()
}

/// A per-client request limit: a bucket of `requests`, refilled evenly over `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// No limit.
    Off,
    /// At most `requests` in a burst, refilled over `per`.
    Every {
        /// Bucket size.
        requests: NonZeroU32,
        /// Time to refill the whole bucket.
        per: Duration,
    },
}

/// Parses `10/m`, `5/s`, `100/h` or `off`.
pub fn parse_rate_limit(text: &str) -> anyhow::Result<RateLimit> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(RateLimit::Off);
    }
    let usage = || format!("`{text}` is not a rate like 10/m, 5/s or 100/h (or off)");
    let (count, unit) = text.split_once('/').with_context(usage)?;
    let requests: NonZeroU32 = count.trim().parse().with_context(usage)?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => bail!(usage()),
    };
    Ok(RateLimit::Every { requests, per })
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
    fn rate_limits_read_as_requests_per_period() {
        assert_eq!(
            parse_rate_limit("10/m").unwrap(),
            RateLimit::Every {
                requests: NonZeroU32::new(10).unwrap(),
                per: Duration::from_secs(60)
            }
        );
        assert_eq!(parse_rate_limit("off").unwrap(), RateLimit::Off);
        assert!(parse_rate_limit("0/m").is_err());
        assert!(parse_rate_limit("10/d").is_err());
        assert!(parse_rate_limit("10").is_err());
    }

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
    fn duration_lists_are_comma_separated() {
        assert_eq!(
            parse_duration_list("1m, 5m,2h").unwrap(),
            [60, 300, 7200].map(Duration::from_secs)
        );
        assert!(parse_duration_list("1m,,2h").is_err());
        assert!(parse_duration_list("").is_err());
    }

    #[test]
    fn a_duration_with_an_unknown_unit_is_refused() {
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn config_from(flags: &[&str]) -> anyhow::Result<Config> {
        let parsed = <Serve as clap::Parser>::try_parse_from(
            std::iter::once("packr").chain(flags.iter().copied()),
        )?;
        Config::from_args(parsed.args)
    }

    #[test]
    fn s3_storage_without_a_bucket_is_refused_at_startup() {
        let err = config_from(&["--storage", "s3"]).unwrap_err();
        assert!(err.to_string().contains("PACKR_S3_BUCKET"), "{err}");
    }

    #[test]
    fn the_webhook_schedule_and_timeout_are_checked_at_startup() {
        let config = config_from(&[
            "--webhook-retry-schedule",
            "1s,2m",
            "--webhook-timeout",
            "3s",
        ])
        .unwrap();
        assert_eq!(
            config.webhook_retry_schedule,
            [Duration::from_secs(1), Duration::from_secs(120)]
        );
        assert_eq!(config.webhook_timeout, Duration::from_secs(3));
        let err = config_from(&["--webhook-retry-schedule", "1m,soon"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("PACKR_WEBHOOK_RETRY_SCHEDULE"),
            "{err:#}"
        );
        assert!(config_from(&["--webhook-timeout", "0s"]).is_err());
    }

    #[test]
    fn webhook_allowed_networks_are_parsed_and_checked_at_startup() {
        assert!(
            config_from(&[])
                .unwrap()
                .webhook_allowed_networks
                .is_empty()
        );
        let config = config_from(&[
            "--webhook-allowed-networks",
            "10.1.0.0/8, 127.0.0.1,fd00::/8",
        ])
        .unwrap();
        let shown: Vec<String> = config
            .webhook_allowed_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]);
        let err = config_from(&["--webhook-allowed-networks", "intranet"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("PACKR_WEBHOOK_ALLOWED_NETWORKS"),
            "{err:#}"
        );
    }

    #[test]
    fn trusted_proxies_are_a_comma_separated_list_of_networks() {
        assert!(config_from(&[]).unwrap().trusted_proxies.is_empty());
        assert!(
            config_from(&["--trusted-proxies", ""])
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        let config =
            config_from(&["--trusted-proxies", "172.16.0.0/12, fd00::/8,10.1.2.3"]).unwrap();
        let listed: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(listed, ["172.16.0.0/12", "fd00::/8", "10.1.2.3/32"]);
        let err = config_from(&["--trusted-proxies", "10.0.0.0/8,proxy.local"]).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("PACKR_TRUSTED_PROXIES") && err.contains("proxy.local"),
            "{err}"
        );
    }

    #[test]
    fn a_database_url_needs_shared_blobs_and_is_never_shown() {
        let err = config_from(&["--database-url", "postgres://packr:hunter2@db/packr"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PACKR_STORAGE=s3") && err.contains("PACKR_ALLOW_LOCAL_BLOBS"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let local = config_from(&[
            "--database-url",
            "postgres://packr:hunter2@db/packr",
            "--allow-local-blobs",
        ])
        .unwrap();
        assert!(
            local.secrets.generate_in.is_some(),
            "one instance may keep local secrets"
        );
        assert!(!format!("{local:?}").contains("hunter2"));
        let shared = config_from(&[
            "--database-url",
            "postgres://packr@db/packr",
            "--storage",
            "s3",
            "--s3-bucket",
            "tarballs",
        ])
        .unwrap();
        assert!(
            shared.secrets.generate_in.is_none(),
            "instances share their secrets"
        );
        // An empty variable counts as unset.
        assert!(config_from(&["--database-url", " "]).is_ok());
    }

    #[test]
    fn replica_urls_are_a_list_never_shown_and_need_a_primary() {
        let config = config_from(&[
            "--database-url",
            "postgres://packr:hunter2@db/packr",
            "--allow-local-blobs",
            "--database-replica-url",
            "postgres://packr:hunter2@replica-1/packr, postgres://packr:hunter2@replica-2/packr",
            "--replica-max-lag",
            "2s",
        ])
        .unwrap();
        assert_eq!(config.replicas.urls.len(), 2);
        assert_eq!(config.replicas.max_lag, Duration::from_secs(2));
        assert!(!format!("{config:?}").contains("hunter2"));
        let config = config_from(&[
            "--database-url",
            "postgres://db/packr",
            "--allow-local-blobs",
        ])
        .unwrap();
        assert!(config.replicas.urls.is_empty());
        assert_eq!(config.replicas.max_lag, Duration::from_secs(5));
        let err = config_from(&[
            "--database-replica-url",
            "postgres://packr:hunter2@replica/packr",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("PACKR_DATABASE_URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_redacts_the_database_url() {
        let parsed = <Serve as clap::Parser>::try_parse_from([
            "packr",
            "--database-url",
            "postgres://packr:hunter2@db/packr",
        ])
        .unwrap();
        let debug = format!("{:?}", parsed.args);
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(parsed.args.data.database_url().is_some());
    }

    #[test]
    fn the_region_defaults_to_fly_s_and_fly_needs_both_regions() {
        let config = config_from(&[]).unwrap();
        assert_eq!((config.region, config.fly), (None, None));
        let config = config_from(&["--fly-region", "fra", "--primary-region", "ams"]).unwrap();
        assert_eq!(config.region.as_deref(), Some("fra"));
        assert_eq!(
            config.fly,
            Some(FlyRegions {
                region: "fra".into(),
                primary: "ams".into()
            })
        );
        let config = config_from(&["--region", "eu-1", "--fly-region", "fra"]).unwrap();
        assert_eq!(config.region.as_deref(), Some("eu-1"));
        assert_eq!(config.fly, None);
        let config = config_from(&["--fly-region", "fra", "--primary-region", " "]).unwrap();
        assert_eq!(config.fly, None);
    }

    #[test]
    fn tarball_redirects_need_s3_storage() {
        let err = config_from(&["--tarball-redirect"]).unwrap_err();
        assert!(err.to_string().contains("PACKR_STORAGE=s3"), "{err}");
    }

    #[test]
    fn half_a_key_pair_is_refused() {
        let err = config_from(&[
            "--storage",
            "s3",
            "--s3-bucket",
            "b",
            "--s3-access-key-id",
            "AK",
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("PACKR_S3_SECRET_ACCESS_KEY"),
            "{err}"
        );
    }

    #[test]
    fn s3_settings_are_normalised_and_debug_redacts_the_keys() {
        let config = config_from(&[
            "--storage",
            "s3",
            "--s3-bucket",
            "tarballs",
            "--s3-endpoint",
            "http://127.0.0.1:9000/",
            "--s3-prefix",
            "/packr/",
            "--s3-access-key-id",
            "AKIAVISIBLEKEYID",
            "--s3-secret-access-key",
            "very-secret-value",
            "--s3-timeout",
            "5s",
            "--tarball-redirect",
        ])
        .unwrap();
        let Storage::S3(s3) = &config.storage else {
            panic!("expected S3 storage: {config:?}");
        };
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.prefix, "packr");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.timeout, Duration::from_secs(5));
        assert!(config.tarball_redirect);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("very-secret-value") && !debug.contains("AKIAVISIBLEKEYID"),
            "{debug}"
        );
    }
}
