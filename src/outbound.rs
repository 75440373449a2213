//! The outbound HTTP client (plain HTTP and HTTPS with the web PKI roots), for the `packr login`
//! client and other calls Packr makes to other servers, and how a failed call is described.
//!
//! [`checked_client`] is the variant for URLs a user chose (webhooks): its resolver drops the
//! addresses a predicate refuses, and the connector connects to exactly the addresses the resolver
//! answered, so what was checked is what is reached.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

/// An HTTP(S) client.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP(S) client that only connects to addresses its predicate permits.
pub type CheckedClient = Client<HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>;

/// Why a [`CheckedResolver`] gave no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name has no address.
    #[error("the host name did not resolve")]
    NotFound,
    /// Every address of the name was refused by the predicate.
    #[error("every address of the host is refused")]
    Refused,
}

/// A resolver (system DNS) that keeps only the addresses its predicate permits.
#[derive(Clone)]
pub struct CheckedResolver {
    permit: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
}

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let permit = Arc::clone(&self.permit);
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|_| ResolveError::NotFound)?
                .collect();
            if found.is_empty() {
                return Err(ResolveError::NotFound);
            }
            let permitted: Vec<SocketAddr> =
                found.into_iter().filter(|addr| permit(addr.ip())).collect();
            if permitted.is_empty() {
                return Err(ResolveError::Refused);
            }
            Ok(permitted.into_iter())
        })
    }
}

/// Builds a client like [`client`] whose host names resolve only to addresses `permit` allows.
///
/// Literal IP hosts skip the resolver, so the caller checks those itself before sending.
pub fn checked_client(
    permit: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
) -> anyhow::Result<CheckedClient> {
    let mut http = HttpConnector::new_with_resolver(CheckedResolver {
        permit: Arc::new(permit),
    });
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The [`ResolveError`] somewhere in an error's chain of causes.
pub fn resolve_error(err: &(dyn std::error::Error + 'static)) -> Option<ResolveError> {
    let mut current = Some(err);
    while let Some(cause) = current {
        if let Some(found) = cause.downcast_ref::<ResolveError>() {
            return Some(*found);
        }
        current = cause.source();
    }
    None
}

/// Builds a client that speaks HTTP/1.1 over plain TCP or TLS.
pub fn client() -> anyhow::Result<HttpClient> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Sends a request and reads the whole answer.
pub async fn send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// A failed call's error and its causes on one line, `outer: inner: innermost` (such as
/// "error sending request: ...: Connection refused"), for logs and delivery records.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
