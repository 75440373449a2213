//! `Server`: binds the socket, opens the stores, builds the state and router, and serves until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower::util::{MapRequestLayer, MapResponseLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::advisories::{Advisories, Upstream};
use crate::audit::AuditLog;
use crate::auth::device::{DeviceFlow, DeviceSettings};
use crate::auth::oauth::OAuth;
use crate::auth::session::Sessions;
use crate::auth::{Accounts, Tokens};
use crate::client_ip::ClientIpLayer;
use crate::config::StoreLocation;
use crate::config::{Config, Storage};
use crate::orgs::Orgs;
use crate::packages::provenance::TrustRoot;
use crate::packages::tarball::TarballLimits;
use crate::packages::{Registry, RegistrySettings};
use crate::rate_limit::LoginRateLimit;
use crate::signing::{self, Signing};
use crate::store::BlobStore;
use crate::store::blob::fs::FsBlobStore;
use crate::store::blob::s3::S3BlobStore;
use crate::store::{Change, ChangeFeed, Postgres, SharedBuckets, Sqlite, Store};
use crate::webhooks::{SecretBox, TargetPolicy, WebhookSettings, Webhooks, Worker};
use crate::{api, error, health, npm, telemetry, web};

/// Everything a request handler may use. axum clones the state for every extractor of every
/// request, so it is one `Arc`: a clone is a reference count, not a copy of keys and pools.
#[derive(Clone)]
pub struct AppState(Arc<AppContext>);

impl std::ops::Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct AppContext {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Packages: publish, read, edit.
    pub registry: Registry,
    /// Token issuing and checking.
    pub tokens: Tokens,
    /// User accounts.
    pub accounts: Accounts,
    /// The audit log.
    pub audit_log: AuditLog,
    /// Orgs, members and teams.
    pub orgs: Orgs,
    /// Device-code and web login.
    pub device: DeviceFlow,
    /// Browser sessions and CSRF tokens.
    pub sessions: Sessions,
    /// Sign-in through OAuth providers.
    pub oauth: OAuth,
    /// When the server started, for `/health`.
    pub started: Instant,
    /// Webhooks and their deliveries.
    pub webhooks: Webhooks,
    /// The metadata store, for `/-/health`'s report on its databases.
    pub store: Store,
    /// Security advisories and audits.
    pub advisories: Advisories,
    /// Trusted publishing: `npm trust` and the OIDC token exchange.
    pub trust: crate::trust::TrustedPublishing,
}

/// The stores and services opened on a data directory; shared by `serve` and the CLI.
pub struct Services {
    /// The metadata store behind the store seam.
    pub store: Store,
    /// Token service.
    pub tokens: Tokens,
    /// Account service.
    pub accounts: Accounts,
}

impl Services {
    /// Opens the metadata store (applying its schema: SQLite in the data directory, or the
    /// PostgreSQL database) and loads the token secret.
    pub async fn open(location: &StoreLocation) -> anyhow::Result<Self> {
        let data_dir = &location.data_dir;
        let store: Store = match &location.database_url {
            Some(url) => {
                let replicas: Vec<&str> = location
                    .replicas
                    .urls
                    .iter()
                    .map(|url| url.expose_secret())
                    .collect();
                let postgres = Postgres::open_with_replicas(
                    url.expose_secret(),
                    &replicas,
                    location.replicas.max_lag,
                )
                .await?
                .one_instance(location.one_instance);
                tracing::info!(
                    database = postgres.pool().target(),
                    replicas = ?postgres.replicas().map(|r| r.targets()).unwrap_or_default(),
                    "metadata on PostgreSQL"
                );
                Arc::new(postgres)
            }
            None => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("creating data directory {}", data_dir.display()))?;
                let db = Sqlite::open(data_dir)
                    .with_context(|| format!("opening the database in {}", data_dir.display()))?;
                Arc::new(db)
            }
        };
        let secret = location.secrets.secret("PACKR_JWT_SECRET", "jwt.key")?;
        Ok(Self {
            tokens: Tokens::new(store.clone(), &secret),
            accounts: Accounts::new(store.clone()),
            store,
        })
    }
}

/// How long shutdown waits for background tasks such as a webhook delivery in flight.
const WORKER_GRACE: Duration = Duration::from_secs(15);
/// How often the accounts are checked for changes made by another process (see
/// `auth::account_watch`): the longest a disabled or demoted user's token keeps its old power.
const ACCOUNT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    app: Router,
    worker: Worker,
    tokens: Tokens,
    token_usage_flush: Duration,
    device: DeviceFlow,
    registry: Registry,
    /// Changes other instances make (PostgreSQL), which this one's caches must forget.
    changes: Option<ChangeFeed>,
}

impl Server {
    /// Opens the stores and binds the socket; nothing is served until [`Server::run`].
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let services = Services::open(&config.store_location()).await?;
        let blobs = open_blob_store(&config)?;
        let settings = RegistrySettings {
            unpublish_window: config.unpublish_window,
            tarball_limits: TarballLimits::default(),
            tarball_redirect: config.tarball_redirect,
            packument_cache_bytes: config.cache_bytes,
            sigstore_trust_root: config
                .sigstore_trust_root
                .as_deref()
                .map(|path| TrustRoot::load(path).map(Arc::new))
                .transpose()
                .map_err(|e| anyhow::anyhow!("PACKR_SIGSTORE_TRUST_ROOT: {e}"))?,
        };
        let login_key = config
            .secrets
            .secret("PACKR_SESSION_SECRET", "session.key")?;
        let device_settings = DeviceSettings {
            ttl: config.login.device_code_ttl,
            interval: config.login.device_poll_interval,
        };
        let secure_cookies = config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let sealer =
            SecretBox::from_key(&config.secrets.secret("PACKR_SECRET_KEY", "webhook.key")?)
                .context("PACKR_SECRET_KEY")?;
        // Registry signing keys are sealed under the same key as hook secrets (src/signing).
        let signing = Signing::start(
            services.store.clone(),
            sealer.clone(),
            signing::pinned_key(&config.secrets)?,
        )
        .await
        .context("registry signing keys")?;
        let webhooks = Webhooks::new(
            services.store.clone(),
            sealer,
            WebhookSettings {
                retry_schedule: config.webhook_retry_schedule.clone(),
                timeout: config.webhook_timeout,
                targets: TargetPolicy::new(config.webhook_allowed_networks.clone()),
            },
        );
        let worker = webhooks.worker()?;
        let upstream = config
            .audit_upstream
            .as_deref()
            .map(Upstream::new)
            .transpose()?;
        let state = AppState(Arc::new(AppContext {
            advisories: Advisories::new(services.store.clone(), upstream),
            webhooks,
            trust: crate::trust::TrustedPublishing::new(
                services.store.clone(),
                services.tokens.clone(),
                crate::auth::oauth::http::Http::new(crate::outbound::client()?),
                &config.trust,
            ),
            oauth: OAuth::new(
                &config.oauth,
                services.store.clone(),
                crate::outbound::client()?,
                login_key.clone(),
            ),
            device: DeviceFlow::new(
                services.store.clone(),
                services.tokens.clone(),
                login_key.clone(),
                device_settings,
            ),
            sessions: Sessions::new(login_key, config.login.session_ttl, secure_cookies),
            audit_log: AuditLog::new(services.store.clone()),
            orgs: Orgs::new(services.store.clone()),
            registry: Registry::new(services.store.clone(), blobs, settings)
                .with_signing(signing.clone()),
            tokens: services.tokens,
            accounts: services
                .accounts
                .with_password_concurrency(config.password_concurrency),
            started: Instant::now(),
            store: services.store.clone(),
            config: Arc::new(config.clone()),
        }));
        // Before serving: once keys exist, npm reports an unsigned version as a failure.
        for name in signing.backfill().await.context("signing older versions")? {
            state.registry.wrote(&name);
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            listener,
            tokens: state.tokens.clone(),
            token_usage_flush: config.token_usage_flush,
            device: state.device.clone(),
            registry: state.registry.clone(),
            changes: services.store.watch_changes(),
            app: router(state, services.store.shared_buckets()),
            worker,
        })
    }

    /// The registry service this server runs (its cache statistics, for tests and diagnostics).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves (and sends webhook deliveries) until `stop` is cancelled, then lets in-flight
    /// requests and deliveries finish.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let worker_stop = stop.child_token();
        tasks.spawn(self.worker.run(worker_stop.clone()));
        let (tokens, every, usage_stop) =
            (self.tokens, self.token_usage_flush, worker_stop.clone());
        let (watcher, watch_stop) = (tokens.clone(), worker_stop.clone());
        let watcher_tokens = tokens.clone();
        tasks.spawn(async move { tokens.flush_usage_until(every, usage_stop).await });
        tasks.spawn(async move {
            watcher
                .watch_accounts_until(ACCOUNT_WATCH_INTERVAL, watch_stop)
                .await
        });
        tasks.spawn(clean_up_device_codes(self.device, worker_stop.clone()));
        let (renderer, render_stop) = (self.registry.clone(), worker_stop.clone());
        tasks.spawn(async move { renderer.keep_renderings(render_stop).await });
        if let Some(changes) = self.changes {
            tasks.spawn(follow_changes(
                changes,
                self.registry,
                watcher_tokens,
                worker_stop.clone(),
            ));
        }
        tasks.close();
        let service = tower::Layer::layer(
            &MapRequestLayer::new(npm::path::normalize_scoped_uri),
            self.app,
        );
        // Without TCP_NODELAY, Nagle's algorithm holds the last chunk of a streamed body for up
        // to 40 ms waiting for the client's delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
        });
        let served = axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                SocketAddr,
            >(service),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
        worker_stop.cancel();
        if tokio::time::timeout(WORKER_GRACE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running {WORKER_GRACE:?} after shutdown");
        }
        served.context("serving HTTP")
    }
}

/// Makes this instance's caches forget what other instances change, until stopped.
async fn follow_changes(
    mut changes: ChangeFeed,
    registry: Registry,
    tokens: Tokens,
    stop: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            () = stop.cancelled() => return,
        };
        match change {
            Some(Change::Package(name)) => registry.forget_package(&name),
            Some(Change::Tokens) => tokens.forget_checked(),
            Some(Change::Everything) => {
                registry.forget_everything();
                tokens.forget_checked();
            }
            None => return,
        }
    }
}

/// Deletes long-expired device and web-login codes every ten minutes until stopped.
async fn clean_up_device_codes(device: DeviceFlow, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {
                if let Err(err) = device.clean_up().await {
                    tracing::warn!(error = %err, "could not delete expired device codes");
                }
            }
        }
    }
}

/// The configured blob store: files under the data directory, or an S3 bucket.
fn open_blob_store(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match &config.storage {
        Storage::Fs => {
            let root = config.data_dir.join("blobs");
            let store = FsBlobStore::open(&root)
                .with_context(|| format!("opening blob storage in {}", root.display()))?;
            Arc::new(store)
        }
        Storage::S3(s3) => {
            let store = S3BlobStore::new(s3)
                .with_context(|| format!("configuring S3 storage in bucket {}", s3.bucket))?;
            Arc::new(store)
        }
    })
}

fn router(state: AppState, shared_buckets: Option<Arc<dyn SharedBuckets>>) -> Router {
    let login_limit = LoginRateLimit::new(state.config.login_rate_limit)
        .shared(state.config.login_rate_limit, shared_buckets);
    let trusted_proxies = state.config.trusted_proxies.clone();
    let fly_replay = crate::fly_replay::FlyReplayLayer::new(state.config.fly.as_ref());
    Router::new()
        .merge(health::routes())
        .merge(api::routes())
        .merge(npm::routes())
        .merge(web::routes())
        .fallback(error::fallback_not_found)
        .with_state(state)
        .layer(login_limit)
        .layer(fly_replay)
        .layer(ClientIpLayer::new(&trusted_proxies))
        .layer(
            ServiceBuilder::new()
                .layer(MapRequestLayer::new(telemetry::bound_request_id))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(telemetry::AccessLog)
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(MapResponseLayer::new(error::json_errors))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    Duration::from_secs(300),
                ))
                .layer(npm::drain::DrainLayer)
                // For axum's own extractors (the HTML login forms). Packr's JSON and OAuth bodies
                // are read, and inflated from gzip, by `npm::body`, which allows more only after
                // a valid token and never inflates past the limit.
                .layer(DefaultBodyLimit::max(npm::body::ANONYMOUS_BODY_BYTES)),
        )
}
