//! `Server`: binds the socket, opens the stores, builds the state and router, and serves until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::audit::AuditLog;
use crate::auth::{Accounts, Tokens, secrets};
use crate::config::Config;
use crate::orgs::Orgs;
use crate::packages::tarball::TarballLimits;
use crate::packages::{Registry, RegistrySettings};
use crate::store::Sqlite;
use crate::store::blob::fs::FsBlobStore;
use crate::{api, error, health, npm, telemetry};

/// Everything a request handler may use; cheap to clone.
#[derive(Clone)]
pub struct AppState {
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
    /// When the server started, for `/health`.
    pub started: Instant,
}

/// The stores and services opened on a data directory; shared by `serve` and the CLI.
pub struct Services {
    /// The metadata store.
    pub db: Sqlite,
    /// Token service.
    pub tokens: Tokens,
    /// Account service.
    pub accounts: Accounts,
}

impl Services {
    /// Opens the database (applying the schema) and loads or creates the signing secret.
    pub fn open(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let db = Sqlite::open(data_dir)
            .with_context(|| format!("opening the database in {}", data_dir.display()))?;
        let secret = match std::env::var("PACKR_JWT_SECRET") {
            Ok(secret) if !secret.is_empty() => secret.into_bytes(),
            _ => secrets::load_or_create(data_dir, "jwt.key")?,
        };
        Ok(Self {
            tokens: Tokens::new(db.clone(), &secret),
            accounts: Accounts::new(db.clone()),
            db,
        })
    }
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    app: Router,
}

impl Server {
    /// Opens the stores and binds the socket; nothing is served until [`Server::run`].
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let services = Services::open(&config.data_dir)?;
        let blobs = FsBlobStore::open(&config.data_dir.join("blobs"))
            .with_context(|| format!("opening blob storage in {}", config.data_dir.display()))?;
        let settings = RegistrySettings {
            unpublish_window: config.unpublish_window,
            tarball_limits: TarballLimits::default(),
        };
        let state = AppState {
            audit_log: AuditLog::new(services.db.clone()),
            orgs: Orgs::new(services.db.clone()),
            registry: Registry::new(services.db, Arc::new(blobs), settings),
            tokens: services.tokens,
            accounts: services.accounts,
            started: Instant::now(),
            config: Arc::new(config.clone()),
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            listener,
            app: router(state, config.max_body_bytes),
        })
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` is cancelled, then lets in-flight requests finish.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let service = tower::Layer::layer(
            &axum::middleware::map_request(npm::path::normalize_scoped_uri),
            self.app,
        );
        axum::serve(
            self.listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                SocketAddr,
            >(service),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .context("serving HTTP")
    }
}

fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(api::routes())
        .merge(npm::routes())
        .fallback(error::fallback_not_found)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(telemetry::trace_layer())
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn(error::json_errors))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    Duration::from_secs(300),
                ))
                .layer(RequestDecompressionLayer::new())
                .layer(DefaultBodyLimit::max(max_body_bytes)),
        )
}
