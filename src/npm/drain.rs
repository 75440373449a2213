//! Reading the rest of a request body that a handler left unread (a 401 before a publish body, a
//! 413 past the limit) before the answer goes out. A server that answers and closes while the
//! client is still sending makes npm see `EPIPE`, and npm then prints nothing of the answer: not
//! "log in again", not the body limit.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use futures_util::future::{BoxFuture, Either};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tower::{Layer, Service};

/// At most this much of an unread body (as sent, not inflated) is read and thrown away; past it,
/// the connection closes as it would have.
const DRAIN_BYTES: u64 = 32 * 1024 * 1024;

/// How long an unread body is read at most.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Layer: after a handler answers, reads what it left unread of the request body. Requests that
/// carry no body (every read) pass straight through, so the hot path pays nothing for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainLayer;

impl<S> Layer<S> for DrainLayer {
    type Service = Drain<S>;

    fn layer(&self, inner: S) -> Drain<S> {
        Drain { inner }
    }
}

/// The service of [`DrainLayer`].
#[derive(Debug, Clone)]
pub struct Drain<S> {
    inner: S,
}

impl<S> Service<Request> for Drain<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !sends_a_body(&request) {
            return Either::Left(self.inner.call(request));
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let slot = Arc::new(Mutex::new(None));
        let returned = Arc::clone(&slot);
        let request = request.map(move |body| {
            Body::new(Returning {
                body: Some(body),
                read: 0,
                slot: returned,
            })
        });
        let answered = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let response = answered.await?;
            let unread = slot.lock().ok().and_then(|mut slot| slot.take());
            if let Some((body, read)) = unread {
                let left = declared.map(|declared| declared.saturating_sub(read));
                if left.is_none_or(|left| left <= DRAIN_BYTES) {
                    drain(body).await;
                }
            }
            Ok(response)
        }))
    }
}

/// Whether the client is sending a body now. One waiting for `100 Continue` has not sent it yet:
/// reading would only invite it.
fn sends_a_body(request: &Request) -> bool {
    let headers = request.headers();
    if headers.contains_key(header::EXPECT) {
        return false;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(length) => length.as_bytes() != b"0",
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Reads and discards a body, at most [`DRAIN_BYTES`] for at most [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let discard = async {
        let mut left = DRAIN_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            let size = frame.data_ref().map_or(0, |data| data.len() as u64);
            match left.checked_sub(size) {
                Some(rest) => left = rest,
                None => return,
            }
        }
    };
    // Running out of time only means the connection closes, as it would have without draining.
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

/// The request body as handlers see it; dropped before its end, it hands the rest (and how much
/// was read) back to [`Drain`].
struct Returning {
    body: Option<Body>,
    read: u64,
    slot: Arc<Mutex<Option<(Body, u64)>>>,
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.body = None,
            Poll::Ready(Some(Ok(frame))) => {
                self.read += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some(body) = self.body.take()
            && !body.is_end_stream()
            && let Ok(mut slot) = self.slot.lock()
        {
            *slot = Some((body, self.read));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::put;
    use futures_util::StreamExt;
    use tower::ServiceExt;

    use super::*;

    /// A body of `chunks` chunks of 1 KiB that counts how many were taken.
    fn counted_body(chunks: usize) -> (Body, Arc<AtomicUsize>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&taken);
        let stream = futures_util::stream::iter(0..chunks).map(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1024]))
        });
        (Body::from_stream(stream), taken)
    }

    async fn refuse_unread(headers: &[(header::HeaderName, &str)], chunks: usize) -> usize {
        let app = Router::new()
            .route("/-/refuses", put(|| async { StatusCode::UNAUTHORIZED }))
            .layer(DrainLayer);
        let (body, taken) = counted_body(chunks);
        let mut request = Request::put("/-/refuses")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(body)
            .unwrap();
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(name.clone(), value.parse().unwrap());
        }
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        taken.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn an_unread_body_is_read_before_the_answer() {
        assert_eq!(refuse_unread(&[], 100).await, 100);
    }

    #[tokio::test]
    async fn a_body_too_long_to_drain_or_not_yet_sent_is_left_alone() {
        let huge = (DRAIN_BYTES + 1024 * 1024).to_string();
        assert_eq!(
            refuse_unread(&[(header::CONTENT_LENGTH, &huge)], 100).await,
            0
        );
        assert_eq!(
            refuse_unread(&[(header::EXPECT, "100-continue")], 100).await,
            0
        );
    }
}
