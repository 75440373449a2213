//! Structured JSON logs, with a span per request carrying its `X-Request-Id`.

use axum::http::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber on stderr (`RUST_LOG` filters; default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(true)
        .try_init();
}

const LOGOUT_PREFIX: &str = "/-/user/token/";

type MakeSpan = fn(&Request<axum::body::Body>) -> tracing::Span;

fn request_span(request: &Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The path only: query strings and headers may carry secrets, and logout puts the token in the path.
    let path = request.uri().path();
    let path = if path.starts_with(LOGOUT_PREFIX) {
        "/-/user/token/[redacted]"
    } else {
        path
    };
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %path,
        request_id = %request_id,
    )
}

/// The per-request tracing layer.
pub fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeSpan> {
    TraceLayer::new_for_http()
        .make_span_with(request_span as MakeSpan)
        // One line per request costs as much as serving a cached packument; access logs are opt-in.
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
}
