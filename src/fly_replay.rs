//! On Fly.io, writes belong to the primary region: a write that lands on a machine in another
//! region is answered `409` with `fly-replay: region=<PRIMARY_REGION>`, unprocessed, and Fly's
//! proxy replays the request there. Reads are served where they land.
//!
//! A write is any method but GET and HEAD (OPTIONS too, to stay simple), except under
//! `/-/health`, which each machine answers for itself. The layer is active only when both
//! FLY_REGION and PRIMARY_REGION are set ([`crate::config::FlyRegions`]) and differ.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use tower::{Layer, Service};

use crate::config::FlyRegions;
use crate::error::ApiError;

/// The header Fly's proxy acts on.
pub const FLY_REPLAY: HeaderName = HeaderName::from_static("fly-replay");

/// Layer on the whole router: sends writes back to the primary region.
#[derive(Debug, Clone)]
pub struct FlyReplayLayer {
    /// `region=<primary>` when this machine is outside the primary region; `None` passes all.
    replay: Option<Replay>,
}

#[derive(Debug, Clone)]
struct Replay {
    header: HeaderValue,
    primary: String,
}

impl FlyReplayLayer {
    /// The layer for this machine's regions; it passes everything through off Fly and in the
    /// primary region.
    pub fn new(fly: Option<&FlyRegions>) -> Self {
        let replay = fly.filter(|fly| fly.region != fly.primary).and_then(|fly| {
            let header = HeaderValue::try_from(format!("region={}", fly.primary)).ok()?;
            Some(Replay {
                header,
                primary: fly.primary.clone(),
            })
        });
        Self { replay }
    }

    /// The answer for `request`, when it is a write to send to the primary region.
    fn refusal(&self, request: &Request) -> Option<Response> {
        let replay = self.replay.as_ref()?;
        if !is_write(request.method(), request.uri().path()) {
            return None;
        }
        let mut response = ApiError::user(
            StatusCode::CONFLICT,
            "wrong_region",
            format!(
                "writes are handled in the primary region {}; Fly's proxy replays this request there",
                replay.primary
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(FLY_REPLAY, replay.header.clone());
        Some(response)
    }
}

/// Whether a request may change the registry.
fn is_write(method: &Method, path: &str) -> bool {
    // Health checks, and audits: npm POSTs its lockfile's packages to ask for advisories, which
    // reads and writes nothing.
    let reads = matches!(*method, Method::GET | Method::HEAD)
        || path.starts_with("/-/health")
        || path.starts_with("/-/npm/v1/security/");
    !reads
}

impl<S> Layer<S> for FlyReplayLayer {
    type Service = FlyReplay<S>;

    fn layer(&self, inner: S) -> FlyReplay<S> {
        FlyReplay {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service [`FlyReplayLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct FlyReplay<S> {
    layer: FlyReplayLayer,
    inner: S,
}

impl<S> Service<Request> for FlyReplay<S>
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
        match self.layer.refusal(&request) {
            Some(response) => Either::Left(ready(Ok(response))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    fn regions(region: &str, primary: &str) -> FlyRegions {
        FlyRegions {
            region: region.into(),
            primary: primary.into(),
        }
    }

    #[test]
    fn only_writes_outside_the_primary_region_are_replayed() {
        let away = FlyReplayLayer::new(Some(&regions("fra", "ams")));
        let refused = away.refusal(&request(Method::PUT, "/left-pad")).unwrap();
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        assert_eq!(refused.headers()[FLY_REPLAY], "region=ams");
        for method in [Method::POST, Method::DELETE, Method::PATCH] {
            assert!(away.refusal(&request(method, "/-/npm/v1/user")).is_some());
        }
        assert!(away.refusal(&request(Method::GET, "/left-pad")).is_none());
        assert!(away.refusal(&request(Method::HEAD, "/left-pad")).is_none());
        assert!(away.refusal(&request(Method::POST, "/-/health")).is_none());
        for audit in [
            "/-/npm/v1/security/advisories/bulk",
            "/-/npm/v1/security/audits/quick",
        ] {
            assert!(
                away.refusal(&request(Method::POST, audit)).is_none(),
                "{audit}"
            );
        }

        let home = FlyReplayLayer::new(Some(&regions("ams", "ams")));
        assert!(home.refusal(&request(Method::PUT, "/left-pad")).is_none());
        let off_fly = FlyReplayLayer::new(None);
        assert!(
            off_fly
                .refusal(&request(Method::PUT, "/left-pad"))
                .is_none()
        );
    }
}
