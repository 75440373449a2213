//! The shared outbound client ([`crate::outbound`]) as the `oauth2` crate's HTTP client, plus the
//! JSON GETs of discovery documents, key sets and provider APIs: one HTTP stack for everything.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, HeaderValue, USER_AGENT};
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

use crate::outbound::HttpClient;

/// Time limit of one request to a provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from a provider.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// GitHub's API refuses requests without a user agent.
const AGENT: &str = concat!("packr/", env!("CARGO_PKG_VERSION"));

/// Why a request to a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No complete answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection or the answer failed.
    #[error("{0}")]
    Transport(String),
    /// An answer with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status it answered.
        status: u16,
    },
    /// An answer that is not the JSON expected.
    #[error("{url} answered with unexpected JSON: {reason}")]
    Json {
        /// The URL asked.
        url: String,
        /// What did not parse.
        reason: String,
    },
}

impl HttpError {
    /// Whether the provider refused the request itself (a 4xx), rather than failing.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Status { status, .. } if (400..500).contains(status))
    }
}

/// An HTTP client for talking to providers; cheap to clone.
#[derive(Clone)]
pub struct Http {
    client: HttpClient,
}

impl Http {
    /// Wraps the shared outbound client.
    pub fn new(client: HttpClient) -> Self {
        Self { client }
    }

    /// Sends a request and reads the answer (at most 1 MiB) within the time limit.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (mut parts, body) = request.into_parts();
        parts
            .headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(AGENT));
        let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| HttpError::Transport(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| HttpError::Transport(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(HttpResponse::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| HttpError::Timeout(TIMEOUT))?
    }

    /// `GET url` (with a bearer token when given), parsing a 2xx JSON answer as `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, HttpError> {
        let mut request = hyper::Request::get(url).header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Vec::new())
            .map_err(|e| HttpError::Transport(format!("{url}: {e}")))?;
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(HttpError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
            });
        }
        serde_json::from_slice(response.body()).map_err(|e| HttpError::Json {
            url: url.to_owned(),
            reason: e.to_string(),
        })
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
