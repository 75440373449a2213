//! The delivery worker: claims due deliveries, POSTs them signed, logs each attempt, and
//! schedules the next one or settles the delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use tokio_util::sync::CancellationToken;

use super::schedule::next_attempt;
use super::target::{TargetPolicy, literal_ip};
use super::{SecretBox, WebhookError, WebhookSettings, signature};
use crate::clock;
use crate::outbound::{self, CheckedClient, ResolveError};
use crate::store::webhooks::{AfterAttempt, AttemptRow, DueDelivery};
use crate::store::{Store, StoreError};

/// How often the worker looks for due deliveries when nothing is due sooner.
const POLL: Duration = Duration::from_millis(500);
/// Most deliveries claimed (and sent concurrently) at once.
const BATCH: u32 = 16;
/// Longest hook URL accepted.
const MAX_URL_LEN: usize = 2048;

/// The stored error of an attempt refused by the target policy. Attempt errors are kept short and
/// generic: they are shown to hook administrators, and must not map the registry's network.
const REFUSED: &str = "refused: the hook's host is a loopback, private, link-local or other internal address; PACKR_WEBHOOK_ALLOWED_NETWORKS can allow its network";

/// Sends due deliveries; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    secrets: SecretBox,
    settings: Arc<WebhookSettings>,
    client: CheckedClient,
}

impl Worker {
    pub(super) fn new(
        store: Store,
        secrets: SecretBox,
        settings: Arc<WebhookSettings>,
    ) -> anyhow::Result<Self> {
        let targets = settings.targets.clone();
        let client = outbound::checked_client(move |ip| targets.permits(ip))
            .context("setting up the webhook HTTP client")?;
        Ok(Self {
            store,
            secrets,
            settings,
            client,
        })
    }

    /// Sends every delivery due now (up to a batch), concurrently; returns how many were tried.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = clock::now_ms();
        let lease = self.settings.timeout.saturating_mul(2) + Duration::from_secs(5);
        let lease_until = now.saturating_add(millis(lease));
        let due = self
            .store
            .claim_due_deliveries(now, lease_until, BATCH)
            .await?;
        let count = due.len();
        let results =
            futures_util::future::join_all(due.into_iter().map(|d| self.deliver(d))).await;
        for result in results {
            result?;
        }
        Ok(count)
    }

    /// Runs until `stop` is cancelled; a delivery being sent when it is finishes first.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!("webhook worker started");
        while !stop.is_cancelled() {
            let wait = match self.run_once().await {
                Ok(0) => self.until_next_due().await,
                Ok(_) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "webhook worker failed; trying again shortly");
                    POLL
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("webhook worker stopped");
    }

    async fn until_next_due(&self) -> Duration {
        match self.store.next_delivery_due().await {
            Ok(Some(at)) => {
                let wait = u64::try_from(at.saturating_sub(clock::now_ms())).unwrap_or(0);
                Duration::from_millis(wait).clamp(Duration::from_millis(5), POLL)
            }
            Ok(None) | Err(_) => POLL,
        }
    }

    #[tracing::instrument(skip_all, fields(delivery = %delivery.id, event = %delivery.action))]
    async fn deliver(&self, delivery: DueDelivery) -> Result<(), StoreError> {
        let at = clock::now_ms();
        let started = Instant::now();
        let outcome = self.send(&delivery).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let attempt = delivery.attempts.saturating_add(1);
        let (http_status, error) = match outcome {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) => (
                Some(status),
                Some(format!("the receiver answered {status}")),
            ),
            Err(error) => (None, Some(error)),
        };
        let after = if error.is_none() {
            AfterAttempt::Delivered
        } else {
            let in_round = attempt.saturating_sub(delivery.round_start);
            match next_attempt(&self.settings.retry_schedule, in_round) {
                Some(wait) => AfterAttempt::RetryAt(clock::now_ms().saturating_add(millis(wait))),
                None => AfterAttempt::Failed,
            }
        };
        match (&after, &error) {
            (AfterAttempt::Delivered, _) => tracing::info!(attempt, "webhook delivered"),
            (_, Some(error)) => tracing::warn!(attempt, ?after, %error, "webhook attempt failed"),
            (_, None) => {}
        }
        let row = AttemptRow {
            attempt,
            at,
            http_status,
            error,
            duration_ms,
        };
        self.store
            .record_delivery_attempt(&delivery.id, row, after, clock::now_ms())
            .await
    }

    /// POSTs the delivery; the receiver's status, or why there was none.
    async fn send(&self, delivery: &DueDelivery) -> Result<u16, String> {
        let uri: hyper::Uri = delivery
            .url
            .parse()
            .map_err(|_| "the hook URL cannot be requested".to_owned())?;
        // The connector skips resolution for literal addresses, so those are checked here; the
        // policy may have changed since the hook was created.
        if let Some(ip) = uri.host().and_then(literal_ip)
            && !self.settings.targets.permits(ip)
        {
            return Err(REFUSED.to_owned());
        }
        let secret = self.secrets.open(&delivery.secret)?;
        let signature = signature::sign(&secret, delivery.payload.as_bytes())
            .ok_or_else(|| "signing the delivery failed".to_owned())?;
        let request = Request::post(uri)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, "packr-webhooks")
            .header(signature::HEADER, signature)
            .header("X-Packr-Event", delivery.action.as_str())
            .header("X-Packr-Event-Id", delivery.event_id.to_string())
            .header("X-Packr-Delivery", delivery.id.as_str())
            .body(Full::new(Bytes::from(delivery.payload.clone())))
            .map_err(|_| "the hook URL cannot be requested".to_owned())?;
        let timeout = self.settings.timeout;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response.status().as_u16()),
            Ok(Err(err)) => {
                // The details (addresses, OS errors) go to the operator's log only.
                tracing::warn!(error = %outbound::error_chain(&err), "webhook request failed");
                Err(generic_error(&err).to_owned())
            }
            Err(_) => Err(format!("no answer within {} ms", millis(timeout))),
        }
    }
}

/// A short description of a failed request that names no address and quotes no OS error.
fn generic_error(err: &hyper_util::client::legacy::Error) -> &'static str {
    match outbound::resolve_error(err) {
        Some(ResolveError::Refused) => REFUSED,
        Some(ResolveError::NotFound) => "the hook's host name did not resolve",
        None if err.is_connect() => "could not connect to the receiver",
        None => "the connection failed before the receiver answered",
    }
}

/// Checks a hook URL: absolute `http://` or `https://` with a host, no credentials, and not a
/// literal address the policy refuses (host names are checked when a delivery resolves them).
pub(super) fn validate_url(url: &str, targets: &TargetPolicy) -> Result<(), WebhookError> {
    let invalid = |why: &str| WebhookError::Invalid(format!("url `{url}` {why}"));
    if url.len() > MAX_URL_LEN {
        return Err(invalid(&format!("is longer than {MAX_URL_LEN} bytes")));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| invalid("is not a URL like https://hooks.example.com/packr"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid("must start with http:// or https://"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "must not carry credentials; verify deliveries with the signature instead",
        ));
    }
    if authority.host().is_empty() {
        return Err(invalid("has no host"));
    }
    if let Some(why) = literal_ip(authority.host()).and_then(|ip| targets.refusal(ip)) {
        return Err(invalid(&format!(
            "points at {why}; webhooks may not target loopback, private, link-local or other \
             internal addresses unless PACKR_WEBHOOK_ALLOWED_NETWORKS lists the network"
        )));
    }
    Ok(())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_urls_must_be_absolute_http_without_credentials() {
        let loopback = TargetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        let validate_url = |url: &str| validate_url(url, &loopback);
        assert!(validate_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(validate_url("https://hooks.example.com/packr?team=a").is_ok());
        for bad in [
            "ftp://example.com/x",
            "/relative",
            "example.com/hook",
            "https://user:pw@example.com/hook",
            "http:///nohost",
            "",
        ] {
            assert!(validate_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn literal_internal_addresses_are_refused_unless_allowed() {
        let default = TargetPolicy::default();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:9000/hook",
            "http://[::1]/hook",
            "http://[::ffff:10.0.0.1]/hook",
            "https://192.168.0.10/hook",
        ] {
            let err = validate_url(url, &default).unwrap_err().to_string();
            assert!(
                err.contains("PACKR_WEBHOOK_ALLOWED_NETWORKS"),
                "{url}: {err}"
            );
        }
        assert!(validate_url("http://localhost:9000/hook", &default).is_ok());
        assert!(validate_url("https://8.8.8.8/hook", &default).is_ok());
    }
}
