//! Per-client-IP rate limits on the login, device-code and token endpoints (`PACKR_LOGIN_RATE_LIMIT`):
//! a token bucket per address and endpoint group (governor's keyed GCRA limiter), answering 429
//! with `Retry-After` and an npm-shaped error.
//!
//! The layer sits on the whole router and picks its routes by method and path, so routes
//! added later under those paths are limited too. Each group has its own bucket, so a device
//! polling for its token does not use up the address's password attempts. The key is the client
//! address of [`crate::client_ip`] (what a trusted proxy forwarded, else the TCP peer), and an IPv6
//! client's whole /64: one host usually holds a /64, so single addresses would give it billions
//! of buckets.
//!
//! Instances sharing a PostgreSQL database also draw from buckets kept there
//! ([`crate::store::SharedBuckets`]), so a limit holds for the cluster as a whole, not once per
//! instance. The instance's own bucket is asked first: a flood is refused without a database call.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower::{Layer, Service};

use crate::client_ip::ClientIp;
use crate::config::RateLimit;
use crate::error::ApiError;
use crate::store::{Quota as SharedQuota, SharedBuckets};

/// Addresses remembered before idle buckets (those back to full) are dropped.
const MAX_TRACKED_KEYS: usize = 10_000;

/// Endpoints that share a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    /// Everything that checks a password.
    Password,
    /// RFC 8628 device authorization and polling.
    Device,
    /// Listing and revoking tokens, and `npm logout`.
    Tokens,
    /// A terminal polling for the token of a device or web login.
    Polls,
}

/// Polls may come this many times as often as the other groups' requests: a terminal polls about
/// every 5 s, so the default 10/m leaves room for ten logins at once from one address.
const POLLS_PER_REQUEST: u32 = 12;

/// The group of a request, or `None` when it is not limited.
fn group_of(method: &Method, path: &str) -> Option<Group> {
    let post = method == Method::POST;
    match path {
        "/-/v1/login" | "/api/v1/admin/sessions" | "/-/cli/auth/login" if post => {
            Some(Group::Password)
        }
        // Polls carry a 256-bit device code and are paced by `slow_down`, so their budget is
        // generous; it bounds the work (a body parse, a database read) one address can cause.
        "/-/v1/device/token" if post => Some(Group::Polls),
        "/-/v1/done" if method == Method::GET => Some(Group::Polls),
        // Every try of a short user code is counted.
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
        _ if path.starts_with("/-/user/token/") && method == Method::DELETE => Some(Group::Tokens),
        _ => None,
    }
}

type Limiter = Arc<DefaultKeyedRateLimiter<(IpAddr, Group)>>;

/// The limiter shared by every request; cheap to clone.
#[derive(Clone)]
pub struct LoginRateLimit {
    limiter: Option<Limiter>,
    polls: Option<Limiter>,
    /// The buckets every instance draws from, and the quota of the groups other than polls.
    shared: Option<(Arc<dyn SharedBuckets>, SharedQuota)>,
}

fn limiter(limit: RateLimit, times: u32) -> Option<Limiter> {
    match limit {
        RateLimit::Off => None,
        RateLimit::Every { requests, per } => {
            let requests = requests.saturating_mul(NonZeroU32::new(times)?);
            let refill = per / requests.get();
            Quota::with_period(refill.max(Duration::from_nanos(1)))
                .map(|quota| Arc::new(RateLimiter::keyed(quota.allow_burst(requests))))
        }
    }
}

/// The bucket an address falls in: IPv4 addresses alone, IPv6 by /64.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

impl LoginRateLimit {
    /// A limiter for `limit` (which may be off); polls get [`POLLS_PER_REQUEST`] times as much.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limiter: limiter(limit, 1),
            polls: limiter(limit, POLLS_PER_REQUEST),
            shared: None,
        }
    }

    /// Also draws from `buckets`, which every instance shares, with the same quotas.
    pub fn shared(mut self, limit: RateLimit, buckets: Option<Arc<dyn SharedBuckets>>) -> Self {
        self.shared = match (limit, buckets) {
            (RateLimit::Every { requests, per }, Some(buckets)) => Some((
                buckets,
                SharedQuota {
                    period: per / requests.get(),
                    burst: requests.get(),
                },
            )),
            _ => None,
        };
        self
    }

    /// The shared bucket a limited request draws from, with its quota.
    fn shared_bucket(
        &self,
        group: Group,
        ip: IpAddr,
    ) -> Option<(Arc<dyn SharedBuckets>, String, SharedQuota)> {
        let (buckets, quota) = self.shared.as_ref()?;
        let quota = if group == Group::Polls {
            SharedQuota {
                period: quota.period / POLLS_PER_REQUEST,
                burst: quota.burst.saturating_mul(POLLS_PER_REQUEST),
            }
        } else {
            *quota
        };
        Some((
            Arc::clone(buckets),
            format!("{group:?}:{}", bucket_key(ip)),
            quota,
        ))
    }

    /// `Err(wait)` when `ip` has used up its bucket for `group`.
    fn check(&self, ip: IpAddr, group: Group) -> Result<(), Duration> {
        let limiter = if group == Group::Polls {
            &self.polls
        } else {
            &self.limiter
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&(bucket_key(ip), group))
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// The 429 answer for a limited request over its budget, or `None` to let it through.
    fn refusal(&self, group: Group, ip: IpAddr) -> Option<Response> {
        let wait = self.check(ip, group).err()?;
        tracing::warn!(%ip, ?group, "rate limit reached");
        Some(too_many(wait))
    }
}

/// The group and client address of a limited request; `None` for every other request.
fn limited(request: &Request) -> Option<(Group, IpAddr)> {
    let group = group_of(request.method(), request.uri().path())?;
    let ClientIp(ip) = *request.extensions().get::<ClientIp>()?;
    Some((group, ip))
}

/// The 429 answer, with how long to wait.
fn too_many(wait: Duration) -> Response {
    let seconds = u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX);
    ApiError::too_many_requests(
        seconds,
        format!(
            "too many login or token requests from your address; try again in {seconds} seconds"
        ),
    )
    .into_response()
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
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<
        Ready<Result<Response, S::Error>>,
        Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Most requests are not limited: one look at the path lets them through.
        let Some((group, ip)) = limited(&request) else {
            return Either::Right(Either::Left(self.inner.call(request)));
        };
        if let Some(response) = self.limit.refusal(group, ip) {
            return Either::Left(ready(Ok(response)));
        }
        let Some((buckets, key, quota)) = self.limit.shared_bucket(group, ip) else {
            return Either::Right(Either::Left(self.inner.call(request)));
        };
        // The ready inner service goes into the future; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Either::Right(Box::pin(async move {
            match buckets.take(&key, quota).await {
                Ok(None) => inner.call(request).await,
                Ok(Some(wait)) => {
                    tracing::warn!(bucket = %key, "cluster-wide rate limit reached");
                    Ok(too_many(wait))
                }
                // An unreachable database fails the request itself soon enough; the instance's
                // own bucket still limits meanwhile.
                Err(err) => {
                    tracing::warn!(error = %err, "shared rate-limit bucket unavailable");
                    inner.call(request).await
                }
            }
        })))
    }
}

#[cfg(test)]
mod tests {
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
            (Method::POST, "/-/v1/device/token", Some(Group::Polls)),
            (Method::GET, "/-/v1/done", Some(Group::Polls)),
            (Method::DELETE, "/-/user/token/abc", Some(Group::Tokens)),
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
    fn ipv6_clients_share_a_bucket_per_64_and_polls_have_a_larger_one() {
        let limit = LoginRateLimit::new(RateLimit::Every {
            requests: NonZeroU32::new(2).unwrap(),
            per: Duration::from_secs(60),
        });
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limit.check(first, Group::Password).is_ok());
        assert!(limit.check(same_64, Group::Password).is_ok());
        assert!(limit.check(first, Group::Password).is_err());
        assert!(limit.check(same_64, Group::Password).is_err());
        assert!(limit.check(next_64, Group::Password).is_ok());
        let polls = (0..2 * POLLS_PER_REQUEST)
            .take_while(|_| limit.check(first, Group::Polls).is_ok())
            .count();
        assert_eq!(polls, usize::try_from(2 * POLLS_PER_REQUEST).unwrap());
        assert!(limit.check(first, Group::Polls).is_err());
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
