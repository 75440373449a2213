//! Structured JSON logs, and one access line per request: at `debug` for every request, at `error`
//! for every 5xx (with its method, path, `X-Request-Id` and cause), so a failure is one line that
//! says everything.
//!
//! There is deliberately no tracing span per request: the JSON subscriber formats a span's fields
//! when it is created, which cost about an eighth of the CPU of serving a cached packument.

use std::borrow::Cow;
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

/// Paths whose last segment may be a whole bearer token (`npm logout`, `npm token revoke`, the
/// admin API's revoke, which all accept the token itself).
const TOKEN_PATH_PREFIXES: [&str; 3] = [
    "/-/user/token/",
    "/-/npm/v1/tokens/token/",
    "/api/v1/admin/tokens/",
];

/// The path as logged: a token in it replaced by `[redacted]`.
fn loggable_path(path: &str) -> Cow<'_, str> {
    for prefix in TOKEN_PATH_PREFIXES {
        if let Some(rest) = path.strip_prefix(prefix)
            && !rest.is_empty()
        {
            return Cow::Owned(format!("{prefix}[redacted]"));
        }
    }
    Cow::Borrowed(path)
}

/// Longest `X-Request-Id` a client may choose; longer ones are replaced by a fresh id.
const MAX_REQUEST_ID: usize = 128;

/// Drops a client's `X-Request-Id` that is longer than [`MAX_REQUEST_ID`] or holds anything but
/// letters, digits and `-_.:`, so that the id layer gives the request a fresh UUID instead. The id
/// is copied into the audit log, the logs and the response: it must not carry markup, control or
/// quoting characters, or megabytes.
pub fn bound_request_id(mut request: Request) -> Request {
    let acceptable = |id: &[u8]| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    let headers = request.headers_mut();
    let ids = headers.get_all("x-request-id");
    let mut ids = ids.iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(id), None) => acceptable(id.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !keep {
        headers.remove("x-request-id");
    }
    request
}

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
        // The path only: query strings and headers may carry secrets, and some paths carry a
        // token.
        let path = loggable_path(self.uri.path());
        let path = path.as_ref();
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

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[test]
    fn tokens_in_paths_are_redacted() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln";
        for prefix in TOKEN_PATH_PREFIXES {
            let logged = loggable_path(&format!("{prefix}{token}")).into_owned();
            assert_eq!(logged, format!("{prefix}[redacted]"));
        }
        assert_eq!(loggable_path("/-/npm/v1/tokens"), "/-/npm/v1/tokens");
        assert_eq!(loggable_path("/left-pad"), "/left-pad");
    }

    fn request_id_after(ids: &[&str]) -> Option<String> {
        let mut request = Request::new(Body::empty());
        for id in ids {
            request
                .headers_mut()
                .append("x-request-id", HeaderValue::from_str(id).unwrap());
        }
        let request = bound_request_id(request);
        request
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn a_request_id_is_kept_only_when_short_and_plain() {
        let good = "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7.1_x-y";
        assert_eq!(request_id_after(&[good]).as_deref(), Some(good));
        assert_eq!(request_id_after(&[]), None);
        assert_eq!(request_id_after(&["<script>alert(1)</script>"]), None);
        assert_eq!(request_id_after(&["a b"]), None);
        assert_eq!(request_id_after(&[&"a".repeat(129)]), None);
        assert_eq!(request_id_after(&["a", "b"]), None);
    }
}
