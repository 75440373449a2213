//! Forwarding audits to an upstream registry (`PACKR_AUDIT_UPSTREAM`): the names of packages
//! Packr does not host, with their versions, go to its bulk endpoint, and its answer is merged
//! into Packr's. The caller ([`super::Advisories::bulk`]) decides what may be sent; this module
//! only sends it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use serde_json::Value;

use crate::outbound::{self, HttpClient};

/// How long the upstream may take before Packr answers with its own advisories only.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An npm-compatible registry whose bulk advisory endpoint answers for other packages.
#[derive(Clone)]
pub struct Upstream {
    endpoint: String,
    client: HttpClient,
}

impl Upstream {
    /// The upstream at `registry` (such as `https://registry.npmjs.org`).
    pub fn new(registry: &str) -> anyhow::Result<Self> {
        let endpoint = format!(
            "{}/-/npm/v1/security/advisories/bulk",
            registry.trim_end_matches('/')
        );
        endpoint
            .parse::<hyper::Uri>()
            .map_err(|err| anyhow::anyhow!("PACKR_AUDIT_UPSTREAM {registry}: {err}"))?;
        Ok(Self {
            endpoint,
            client: outbound::client()?,
        })
    }

    /// The upstream's advisories for `asked` (name → versions), only for names asked.
    pub async fn bulk(
        &self,
        asked: &BTreeMap<String, Vec<String>>,
    ) -> anyhow::Result<BTreeMap<String, Vec<Value>>> {
        let body = serde_json::to_vec(asked)?;
        let request = Request::post(self.endpoint.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("packr/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(body)))?;
        let (status, body) = tokio::time::timeout(TIMEOUT, outbound::send(&self.client, request))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {TIMEOUT:?}"))??;
        if !status.is_success() {
            anyhow::bail!("the upstream answered {status}");
        }
        let answer: BTreeMap<String, Value> = serde_json::from_slice(&body)?;
        Ok(answer
            .into_iter()
            .filter(|(name, _)| asked.contains_key(name))
            .filter_map(|(name, advisories)| match advisories {
                Value::Array(list) => Some((
                    name,
                    list.into_iter()
                        .filter(Value::is_object)
                        .collect::<Vec<_>>(),
                )),
                _ => None,
            })
            .filter(|(_, list)| !list.is_empty())
            .collect())
    }
}
