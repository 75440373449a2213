//! One CI issuer's signing keys, from its discovery document and JWKS (cached, fetched again
//! when a token names a key the cached set lacks), and the verification of its ID tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::TrustError;
use crate::auth::oauth::http::Http;

/// How long a key set is used before it is fetched again.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// A token naming an unknown key fetches the key set again, at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// Asymmetric algorithms only: a published key must never serve as an HMAC secret.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// An issuer and its cached key set.
pub struct IssuerKeys {
    issuer: String,
    keys: RwLock<Option<(Instant, Arc<JwkSet>)>>,
}

impl IssuerKeys {
    /// The issuer at `issuer`; nothing is fetched until a token comes.
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            keys: RwLock::new(None),
        }
    }

    /// The issuer URL, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn keys(&self, http: &Http, max_age: Duration) -> Result<Arc<JwkSet>, TrustError> {
        if let Some((fetched, keys)) = &*self.keys.read().await
            && fetched.elapsed() < max_age
        {
            return Ok(Arc::clone(keys));
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let discovery: Discovery = http.get_json(&url, None).await.map_err(|e| {
            TrustError::Unavailable(format!("fetching the issuer's discovery document: {e}"))
        })?;
        if discovery.issuer.trim_end_matches('/') != self.issuer {
            return Err(TrustError::Unavailable(format!(
                "the discovery document at {url} names the issuer {}, not {}",
                discovery.issuer, self.issuer
            )));
        }
        let keys: Arc<JwkSet> = Arc::new(
            http.get_json(&discovery.jwks_uri, None)
                .await
                .map_err(|e| TrustError::Unavailable(format!("fetching the issuer's keys: {e}")))?,
        );
        *self.keys.write().await = Some((Instant::now(), Arc::clone(&keys)));
        Ok(keys)
    }

    /// Verifies an ID token's signature, `iss`, `aud`, `exp` and `nbf`; answers its claims.
    pub async fn verify(
        &self,
        http: &Http,
        token: &str,
        audience: &str,
    ) -> Result<Value, TrustError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TrustError::Refused(format!("the ID token is not a JWT: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(TrustError::Refused(format!(
                "the ID token is signed with {:?}, which is not accepted",
                header.alg
            )));
        }
        let mut keys = self.keys(http, CACHE_FOR).await?;
        let kid = header.kid.as_deref();
        if find(&keys, kid).is_none() {
            keys = self.keys(http, REFETCH_AFTER).await?;
        }
        let jwk = find(&keys, kid).ok_or_else(|| {
            TrustError::Refused(format!(
                "the ID token names the signing key {:?}, which the issuer {} does not publish",
                kid.unwrap_or("(none)"),
                self.issuer
            ))
        })?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| TrustError::Refused(format!("the issuer's key is unusable: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer, &format!("{}/", self.issuer)]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        match jsonwebtoken::decode::<Value>(token, &key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(TrustError::Refused(match e.kind() {
                ErrorKind::InvalidAudience => {
                    let given = unverified_claims(token)
                        .ok()
                        .and_then(|c| c.get("aud").cloned())
                        .unwrap_or(Value::Null);
                    format!(
                        "the ID token's audience is {given}, but this registry expects {audience:?} (set the job's audience to it)"
                    )
                }
                ErrorKind::ExpiredSignature => "the ID token has expired (exp)".to_owned(),
                ErrorKind::ImmatureSignature => "the ID token is not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidSignature => {
                    "the ID token's signature does not verify with the issuer's key".to_owned()
                }
                ErrorKind::InvalidIssuer => "the ID token's issuer (iss) does not match".to_owned(),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("the ID token lacks the `{claim}` claim")
                }
                other => format!("the ID token is malformed ({other:?})"),
            })),
        }
    }
}

fn find<'k>(keys: &'k JwkSet, kid: Option<&str>) -> Option<&'k jsonwebtoken::jwk::Jwk> {
    let asymmetric =
        |key: &&jsonwebtoken::jwk::Jwk| !matches!(key.algorithm, AlgorithmParameters::OctetKey(_));
    match kid {
        Some(kid) => keys.find(kid).filter(asymmetric),
        None => {
            let mut all = keys.keys.iter().filter(asymmetric);
            all.next().filter(|_| all.next().is_none())
        }
    }
}

/// The payload of a JWT, unverified: only to pick the issuer whose keys verify it.
pub fn unverified_claims(token: &str) -> Result<Value, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("the ID token is not a JWT (no payload)")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the ID token's payload is not base64url".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|_| "the ID token's payload is not JSON".to_owned())
}
