//! Per-client-IP rate limits on the login, device-code and token endpoints (`PACKR_LOGIN_RATE_LIMIT`):
//! a token bucket per address and endpoint group (governor's keyed GCRA limiter), answering 429
//! with `Retry-After` and an npm-shaped error.
//!
//! The layer sits on the whole router and picks its routes by method and path, so routes
//! added later under those paths are limited too. Each group has its own bucket, so a device
//! polling for its token does not use up the address's password attempts. The key is the TCP
//! peer: behind a reverse proxy every client shares the proxy's bucket.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower::{Layer, Service};

use crate::config::RateLimit;
use crate::error::ApiError;

/// Addresses remembered before idle buckets (those back to full) are dropped.
const MAX_TRACKED_KEYS: usize = 10_000;

/// Endpoints that share a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    /// Everything that checks a password.
    Password,
    /// RFC 8628 device authorization and polling.
    Device,
    /// Listing and revoking tokens.
    Tokens,
}

/// The group of a request, or `None` when it is not limited.
fn group_of(method: &Method, path: &str) -> Option<Group> {
    let post = method == Method::POST;
    match path {
        "/-/v1/login" | "/api/v1/admin/sessions" | "/-/cli/auth/login" if post => {
            Some(Group::Password)
        }
        // Polls (`/-/v1/device/token`, `/-/v1/done`) are not counted: they carry a 256-bit device
        // code and are paced by `slow_down`. What is counted is every try of a short user code.
        "/-/v1/device/authorize" | "/-/cli/auth/decide" if post => Some(Group::Device),
        "/-/cli/auth" if method == Method::GET => Some(Group::Device),
        _ if path.starts_with("/api/auth/login/") || path.starts_with("/api/auth/callback/") => {
            Some(Group::Password)
        }
        "/-/npm/v1/tokens" if post => Some(Group::Password),
        _ if path.starts_with("/-/user/org.couchdb.user:") && method == Method::PUT => {
            Some(Group::Password)
        }
        _ if path == "/-/npm/v1/tokens" || path.starts_with("/-/npm/v1/tokens/") => {
            Some(Group::Tokens)
        }
        _ => None,
    }
}

/// The limiter shared by every request; cheap to clone.
#[derive(Clone)]
pub struct LoginRateLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<(IpAddr, Group)>>>,
}

impl LoginRateLimit {
    /// A limiter for `limit` (which may be off).
    pub fn new(limit: RateLimit) -> Self {
        let limiter = match limit {
            RateLimit::Off => None,
            RateLimit::Every { requests, per } => {
                let refill = per / requests.get();
                Quota::with_period(refill.max(Duration::from_nanos(1)))
                    .map(|quota| Arc::new(RateLimiter::keyed(quota.allow_burst(requests))))
            }
        };
        Self { limiter }
    }

    /// `Err(wait)` when `ip` has used up its bucket for `group`.
    fn check(&self, ip: IpAddr, group: Group) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&(ip.to_canonical(), group))
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// The 429 answer for a limited request over its budget, or `None` to let it through.
    fn refusal(&self, request: &Request) -> Option<Response> {
        let group = group_of(request.method(), request.uri().path())?;
        let ip = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip();
        let wait = self.check(ip, group).err()?;
        let seconds = u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX);
        tracing::warn!(%ip, ?group, retry_after = seconds, "rate limit reached");
        Some(
            ApiError::too_many_requests(
                seconds,
                format!(
                    "too many login or token requests from your address; try again in {seconds} seconds"
                ),
            )
            .into_response(),
        )
    }
}

/// As a layer on the whole router. A plain `Service` rather than `axum::middleware::from_fn`, which
/// boxes the rest of the stack on every request, cached reads included.
impl<S> Layer<S> for LoginRateLimit {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            limit: self.clone(),
            inner,
        }
    }
}

/// The service [`LoginRateLimit`] wraps around the router.
#[derive(Clone)]
pub struct RateLimited<S> {
    limit: LoginRateLimit,
    inner: S,
}

impl<S> Service<Request> for RateLimited<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.limit.refusal(&request) {
            Some(response) => Either::Left(ready(Ok(response))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn login_device_and_token_routes_are_limited_and_others_are_not() {
        let cases = [
            (Method::POST, "/-/v1/login", Some(Group::Password)),
            (
                Method::PUT,
                "/-/user/org.couchdb.user:alice",
                Some(Group::Password),
            ),
            (
                Method::PUT,
                "/-/user/org.couchdb.user:alice/-rev/1",
                Some(Group::Password),
            ),
            (
                Method::POST,
                "/api/v1/admin/sessions",
                Some(Group::Password),
            ),
            (Method::POST, "/-/npm/v1/tokens", Some(Group::Password)),
            (Method::POST, "/-/v1/device/authorize", Some(Group::Device)),
            (Method::POST, "/-/v1/device/token", None),
            (Method::GET, "/-/v1/done", None),
            (Method::GET, "/-/cli/auth", Some(Group::Device)),
            (Method::POST, "/-/cli/auth/decide", Some(Group::Device)),
            (Method::POST, "/-/cli/auth/login", Some(Group::Password)),
            (
                Method::GET,
                "/api/auth/callback/oidc",
                Some(Group::Password),
            ),
            (Method::GET, "/-/npm/v1/tokens", Some(Group::Tokens)),
            (
                Method::DELETE,
                "/-/npm/v1/tokens/token/abc",
                Some(Group::Tokens),
            ),
            (Method::GET, "/-/user/org.couchdb.user:alice", None),
            (Method::GET, "/-/whoami", None),
            (Method::GET, "/-/v1/login", None),
            (Method::GET, "/-/npm/v1/tokensx", None),
            (Method::GET, "/left-pad", None),
        ];
        for (method, path, group) in cases {
            assert_eq!(group_of(&method, path), group, "{method} {path}");
        }
    }

    #[test]
    fn the_bucket_holds_the_configured_number_of_requests_per_address_and_group() {
        let limit = LoginRateLimit::new(RateLimit::Every {
            requests: NonZeroU32::new(3).unwrap(),
            per: Duration::from_secs(60),
        });
        let alice: IpAddr = "10.0.0.1".parse().unwrap();
        let bob: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(alice, Group::Password).is_ok());
        }
        let wait = limit.check(alice, Group::Password).unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limit.check(bob, Group::Password).is_ok());
        assert!(limit.check(alice, Group::Device).is_ok());
    }

    #[test]
    fn an_off_limit_never_refuses() {
        let limit = LoginRateLimit::new(RateLimit::Off);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(limit.check(ip, Group::Password).is_ok());
        }
    }
}
