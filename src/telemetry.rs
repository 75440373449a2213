//! Structured JSON logs, and one access line per request: at `debug` for every request, at `error`
//! for every 5xx (with its method, path, `X-Request-Id` and cause), so a failure is one line that
//! says everything.
//!
//! There is deliberately no tracing span per request: the JSON subscriber formats a span's fields
//! when it is created, which cost about an eighth of the CPU of serving a cached packument.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, Uri};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Level;
use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber on stderr (`RUST_LOG` filters; default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Why a request failed on the server's side, put in the response's extensions by the error
/// answer (the client sees a generic message) and written to the log by [`AccessLog`].
#[derive(Clone, Debug)]
pub struct FailureCause(pub String);

const LOGOUT_PREFIX: &str = "/-/user/token/";

/// The layer writing access lines; it must sit inside the layer that sets `X-Request-Id`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLog;

impl<S> Layer<S> for AccessLog {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> AccessLogService<S> {
        AccessLogService { inner }
    }
}

/// The service of [`AccessLog`].
#[derive(Clone, Debug)]
pub struct AccessLogService<S> {
    inner: S,
}

/// What the access line says of the request; copies of reference-counted parts only.
struct RequestLine {
    method: Method,
    uri: Uri,
    request_id: Option<HeaderValue>,
    started: Instant,
}

impl RequestLine {
    fn log(&self, response: &Response) {
        let status = response.status();
        if !status.is_server_error() && !tracing::enabled!(Level::DEBUG) {
            return;
        }
        // The path only: query strings and headers may carry secrets, and logout puts the token
        // in the path.
        let path = match self.uri.path() {
            p if p.starts_with(LOGOUT_PREFIX) => "/-/user/token/[redacted]",
            p => p,
        };
        let request_id = self
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let method = self.method.as_str();
        let status = status.as_u16();
        if status >= 500 {
            let cause = response.extensions().get::<FailureCause>();
            let error = cause.map_or("", |c| c.0.as_str());
            tracing::error!(
                method,
                path,
                request_id,
                status,
                latency_ms,
                error,
                "request failed"
            );
        } else {
            tracing::debug!(method, path, request_id, status, latency_ms, "request");
        }
    }
}

impl<S> Service<Request> for AccessLogService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let line = RequestLine {
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_id: request.headers().get("x-request-id").cloned(),
            started: Instant::now(),
        };
        AccessLogFuture {
            inner: self.inner.call(request),
            line,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AccessLogService`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        line: RequestLine,
    }
}

impl<F, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            this.line.log(response);
        }
        Poll::Ready(result)
    }
}
