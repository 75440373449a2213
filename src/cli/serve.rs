//! `packr serve`: runs the registry until SIGTERM or SIGINT, then drains in-flight requests.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ServeArgs};
use crate::server::Server;
use crate::telemetry;

pub(super) fn run(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_args(args)?;
    runtime(&config)?.block_on(async move {
        let server = Server::build(config).await?;
        let addr = server.local_addr().context("reading the bound address")?;
        tracing::info!(%addr, "packr is listening");
        let stop = CancellationToken::new();
        tokio::spawn(stop_on_signal(stop.clone()));
        server.run(stop).await
    })
}

/// The server's runtime: blocking threads capped by `PACKR_BLOCKING_THREADS`.
fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .max_blocking_threads(config.blocking_threads);
    Ok(builder.build()?)
}

async fn stop_on_signal(stop: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    stop.cancel();
}
