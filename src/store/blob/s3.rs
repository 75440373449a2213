//! Blobs as objects in an S3-compatible bucket under `<prefix>/ab/cd/<key>`.
//!
//! Every request gets a time limit and bounded retries with exponential backoff on timeouts,
//! connection errors and 5xx answers; when those run out the store reports
//! [`BlobError::Unavailable`], which clients see as a 503 with `Retry-After`. Retrying a PUT is
//! safe because keys are content addresses: a repeated write stores the same bytes.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::request::DataStream;
use s3::{Bucket, Region};
use secrecy::ExposeSecret;

use super::{Blob, BlobError, BlobKey, BlobStore};
use crate::config::S3Config;
use crate::outbound::error_chain;

/// Pauses before the second, third and fourth attempt of a request.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// How long a presigned download URL stays valid, in seconds.
pub const PRESIGNED_URL_SECONDS: u32 = 300;

/// The S3 blob store.
pub struct S3BlobStore {
    bucket: Box<Bucket>,
    prefix: String,
    timeout: Duration,
}

/// How one failed attempt counts.
enum Failure {
    /// Worth another attempt: a timeout, a connection error, a 5xx, 408 or 429.
    Transient(String),
    /// Another attempt would fail the same way.
    Permanent(BlobError),
}

impl S3BlobStore {
    /// A store on the configured bucket; nothing is sent until the first request.
    pub fn new(config: &S3Config) -> Result<Self, S3Error> {
        let credentials = match &config.credentials {
            Some(keys) => Credentials::new(
                Some(keys.access_key_id.expose_secret()),
                Some(keys.secret_access_key.expose_secret()),
                None,
                None,
                None,
            )?,
            None => Credentials::default()?,
        };
        let endpoint = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region));
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint,
        };
        let mut bucket = Bucket::new(&config.bucket, region, credentials)?;
        if config.path_style {
            bucket.set_path_style();
        }
        // Time limits are ours, per attempt: rust-s3's limit would also cut off a slow download
        // stream, and its own retries (1 s, 4 s, ... and never for PUT) would break our budget.
        bucket.set_request_timeout(None);
        s3::set_retries(0);
        Ok(Self {
            bucket,
            prefix: config.prefix.clone(),
            timeout: config.timeout,
        })
    }

    /// The object key of a blob: `<prefix>/ab/cd/<key>`, or `ab/cd/<key>` without a prefix.
    fn path(&self, key: &BlobKey) -> String {
        let k = key.as_str();
        let fanned = format!("{}/{}/{k}", &k[0..2], &k[2..4]);
        if self.prefix.is_empty() {
            fanned
        } else {
            format!("{}/{fanned}", self.prefix)
        }
    }

    /// Runs `request` with the time limit, retrying transient failures after each pause of
    /// [`BACKOFF`]; `what` names the request in errors and logs.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut request: F) -> Result<T, BlobError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, S3Error>>,
    {
        let mut pauses = BACKOFF.iter();
        loop {
            let failure = match tokio::time::timeout(self.timeout, request()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) => classify(err),
                Err(_) => Failure::Transient(format!("no answer within {:?}", self.timeout)),
            };
            let cause = match failure {
                Failure::Permanent(err) => return Err(err),
                Failure::Transient(cause) => cause,
            };
            let Some(pause) = pauses.next() else {
                return Err(BlobError::Unavailable(format!(
                    "{what} failed {} times, last: {cause}",
                    BACKOFF.len() + 1
                )));
            };
            tracing::warn!(request = what, error = %cause, retry_in = ?pause, "S3 request failed; retrying");
            tokio::time::sleep(*pause).await;
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.path(key);
        let (bucket, path, bytes) = (&self.bucket, path.as_str(), bytes.as_ref());
        self.with_retries("PUT object", || async move {
            bucket
                .put_object_with_content_type(path, bytes, "application/octet-stream")
                .await
                .map(drop)
        })
        .await
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        let path = self.path(key);
        let (bucket, path) = (&self.bucket, path.as_str());
        // The streaming GET does not expose headers, so the length comes from a HEAD first.
        let head = self
            .with_retries("HEAD object", || async move {
                absent_as_none(bucket.head_object(path).await)
            })
            .await?;
        let Some((head, _status)) = head else {
            return Ok(None);
        };
        let length = head
            .content_length
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| BlobError::Refused(format!("HEAD {path} has no Content-Length")))?;
        let response = self
            .with_retries("GET object", || async move {
                absent_as_none(bucket.get_object_stream(path).await)
            })
            .await?;
        Ok(response.map(|response| Blob {
            length,
            body: idle_limited(response.bytes, self.timeout),
        }))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path(key);
        let (bucket, path) = (&self.bucket, path.as_str());
        self.with_retries("DELETE object", || async move {
            absent_as_none(bucket.delete_object(path).await).map(drop)
        })
        .await
    }

    async fn check(&self) -> Result<(), BlobError> {
        // A one-key listing of the bucket itself: proves the bucket exists and the keys work.
        // (`Bucket::exists` lists all buckets, which needs more rights and fails on some servers.)
        let (bucket, prefix) = (&self.bucket, &self.prefix);
        self.with_retries("LIST bucket", || async move {
            bucket
                .list_page(prefix.clone(), None, None, None, Some(1))
                .await
                .map(drop)
        })
        .await
    }

    async fn presigned_get(&self, key: &BlobKey) -> Result<Option<String>, BlobError> {
        // Signing is local; no request is sent.
        // The object's answer carries the immutable policy; the short-lived redirect to it does not.
        let queries = HashMap::from([(
            "response-cache-control".to_owned(),
            crate::store::blob::IMMUTABLE_CACHE_CONTROL.to_owned(),
        )]);
        let url = self
            .bucket
            .presign_get(self.path(key), PRESIGNED_URL_SECONDS, Some(queries))
            .await
            .map_err(|err| BlobError::Refused(format!("presigning a download URL: {err}")))?;
        Ok(Some(url))
    }
}

/// Turns a 404 into `None`, so "absent" is an answer rather than a failure.
fn absent_as_none<T>(result: Result<T, S3Error>) -> Result<Option<T>, S3Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
        Err(err) => Err(err),
    }
}

fn classify(err: S3Error) -> Failure {
    match err {
        S3Error::HttpFailWithBody(status, body) => {
            let cause = format!("HTTP {status}: {}", summary(&body));
            if status >= 500 || status == 408 || status == 429 {
                Failure::Transient(cause)
            } else {
                Failure::Permanent(BlobError::Refused(cause))
            }
        }
        S3Error::Reqwest(err) if err.is_builder() => {
            Failure::Permanent(BlobError::Refused(err.to_string()))
        }
        S3Error::Reqwest(err) => Failure::Transient(error_chain(&err)),
        S3Error::Io(err) => Failure::Transient(err.to_string()),
        other => Failure::Permanent(BlobError::Refused(other.to_string())),
    }
}

/// The S3 error code from an XML error body, or the body's start.
fn summary(body: &str) -> String {
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code);
    match code {
        Some(code) => code.to_owned(),
        None => body.chars().take(200).collect(),
    }
}

/// The body as `io::Result` chunks, failing when no chunk arrives within `limit` (a stalled
/// server must not hold a download open forever), and ending after the first error.
fn idle_limited(body: DataStream, limit: Duration) -> BoxStream<'static, std::io::Result<Bytes>> {
    stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(limit, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(None) => None,
            Ok(Some(Err(err))) => Some((Err(std::io::Error::other(err)), None)),
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the object store sent nothing for {limit:?}"),
                )),
                None,
            )),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_taken_from_s3_xml_bodies() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
        assert_eq!(summary(body), "SignatureDoesNotMatch");
        assert_eq!(summary("plain"), "plain");
    }

    #[test]
    fn server_errors_are_retried_and_client_errors_are_not() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(matches!(
                classify(S3Error::HttpFailWithBody(status, String::new())),
                Failure::Transient(_)
            ));
        }
        for status in [400, 403, 409] {
            assert!(matches!(
                classify(S3Error::HttpFailWithBody(status, String::new())),
                Failure::Permanent(BlobError::Refused(_))
            ));
        }
    }
}
