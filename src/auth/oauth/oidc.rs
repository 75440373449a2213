//! OpenID Connect providers (generic, GitLab, Google): endpoints from the issuer's discovery
//! document, and the person's identity from an ID token whose signature (the issuer's JWKS),
//! issuer, audience, expiry and nonce are checked. Both documents are cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::AuthType;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::http::Http;
use super::provider::Endpoints;
use super::{Failure, Identity};

/// How long a discovery document or key set is used before it is fetched again.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// A token signed with an unknown key fetches the key set again, at most this often.
const REFETCH_KEYS_AFTER: Duration = Duration::from_secs(30);
/// Signature algorithms accepted on ID tokens: asymmetric ones only, so a public key can never be
/// used as an HMAC secret.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The fields of a discovery document Packr uses (OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

/// Claims read from an ID token or a userinfo answer.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// A boolean, though some providers send the string `"true"`.
    #[serde(default)]
    email_verified: Option<Value>,
    #[serde(default)]
    preferred_username: Option<String>,
    /// GitLab's user name.
    #[serde(default)]
    nickname: Option<String>,
}

impl Claims {
    fn verified_email(&self) -> Option<String> {
        let verified = match &self.email_verified {
            Some(Value::Bool(verified)) => *verified,
            Some(Value::String(verified)) => verified == "true",
            _ => false,
        };
        self.email
            .as_deref()
            .map(str::trim)
            .filter(|email| verified && email.contains('@'))
            .map(str::to_owned)
    }

    fn into_identity(self) -> Identity {
        Identity {
            email: self.verified_email(),
            username: self.preferred_username.or(self.nickname),
            subject: self.sub,
        }
    }
}

struct Cached<T> {
    fetched: Instant,
    value: Arc<T>,
}

/// One OpenID Connect issuer, with its cached documents.
pub struct Issuer {
    issuer: String,
    discovery: RwLock<Option<Cached<Discovery>>>,
    keys: RwLock<Option<Cached<JwkSet>>>,
}

impl Issuer {
    /// The issuer at `issuer` (no trailing slash); nothing is fetched until first used.
    pub fn new(issuer: String) -> Self {
        Self {
            issuer,
            discovery: RwLock::new(None),
            keys: RwLock::new(None),
        }
    }

    async fn discovery(&self, http: &Http) -> Result<Arc<Discovery>, Failure> {
        if let Some(cached) = &*self.discovery.read().await
            && cached.fetched.elapsed() < CACHE_FOR
        {
            return Ok(Arc::clone(&cached.value));
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let document: Discovery = http.get_json(&url, None).await.map_err(Failure::from)?;
        // The issuer must name itself exactly (Discovery §4.3), or its tokens would not be its own.
        if document.issuer.trim_end_matches('/') != self.issuer {
            return Err(Failure::Unreachable(format!(
                "the discovery document at {url} names the issuer {}, not {}",
                document.issuer, self.issuer
            )));
        }
        let document = Arc::new(document);
        *self.discovery.write().await = Some(Cached {
            fetched: Instant::now(),
            value: Arc::clone(&document),
        });
        Ok(document)
    }

    /// The key set; fetched again when older than the cache time, or when `stale_after` has
    /// passed (a token named a key the cached set lacks: the issuer may have rotated its keys).
    async fn keys(&self, http: &Http, stale_after: Duration) -> Result<Arc<JwkSet>, Failure> {
        if let Some(cached) = &*self.keys.read().await
            && cached.fetched.elapsed() < stale_after.min(CACHE_FOR)
        {
            return Ok(Arc::clone(&cached.value));
        }
        let discovery = self.discovery(http).await?;
        let keys: Arc<JwkSet> = Arc::new(
            http.get_json(&discovery.jwks_uri, None)
                .await
                .map_err(Failure::from)?,
        );
        *self.keys.write().await = Some(Cached {
            fetched: Instant::now(),
            value: Arc::clone(&keys),
        });
        Ok(keys)
    }

    /// The authorization and token endpoints, and how the client authenticates at the latter.
    pub async fn endpoints(&self, http: &Http) -> Result<Endpoints, Failure> {
        let discovery = self.discovery(http).await?;
        let methods = &discovery.token_endpoint_auth_methods_supported;
        // client_secret_basic is the default when the document lists no methods (Discovery §3).
        let auth_type = if methods.iter().any(|m| m == "client_secret_post")
            && !methods.iter().any(|m| m == "client_secret_basic")
        {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        };
        Ok(Endpoints {
            authorize: discovery.authorization_endpoint.clone(),
            token: discovery.token_endpoint.clone(),
            auth_type,
        })
    }

    /// Who signed in: the verified ID token's claims, completed from the userinfo endpoint when
    /// the token carries no e-mail address.
    pub async fn identify(
        &self,
        http: &Http,
        id_token: Option<&str>,
        access_token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Identity, Failure> {
        let id_token = id_token.ok_or_else(|| {
            Failure::Refused("the token answer has no ID token (is `openid` scope allowed?)".into())
        })?;
        let discovery = self.discovery(http).await?;
        let keys = self.keys(http, CACHE_FOR).await?;
        let claims = match verify_id_token(id_token, &keys, &discovery.issuer, client_id, nonce) {
            Err(Rejection::UnknownKey) => {
                let keys = self.keys(http, REFETCH_KEYS_AFTER).await?;
                verify_id_token(id_token, &keys, &discovery.issuer, client_id, nonce)
            }
            verified => verified,
        }
        .map_err(|rejection| Failure::Refused(format!("its ID token was refused: {rejection}")))?;
        let mut identity = claims.into_identity();
        if identity.email.is_none()
            && let Some(url) = &discovery.userinfo_endpoint
        {
            let info: Claims = http
                .get_json(url, Some(access_token))
                .await
                .map_err(Failure::from)?;
            // Userinfo about someone else must not be mixed in (OpenID Connect Core §5.3.2).
            if info.sub == identity.subject {
                let info = info.into_identity();
                identity.email = info.email;
                identity.username = identity.username.or(info.username);
            }
        }
        Ok(identity)
    }
}

/// Why an ID token was not accepted.
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("it names a signing key the issuer does not publish")]
    UnknownKey,
    #[error("it is signed with {0:?}, which is not an accepted algorithm")]
    Algorithm(Algorithm),
    #[error("its nonce does not match this sign-in")]
    Nonce,
    #[error("it was issued to another client (azp)")]
    AuthorizedParty,
    #[error("{0}")]
    Invalid(String),
}

/// Checks an ID token's signature against `keys`, its `iss`, `aud` (the client ID), `exp`, `nonce`
/// and, when present, `azp` (OpenID Connect Core §3.1.3.7).
fn verify_id_token(
    token: &str,
    keys: &JwkSet,
    issuer: &str,
    client_id: &str,
    nonce: &str,
) -> Result<Claims, Rejection> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| Rejection::Invalid(format!("it is not a JWT: {e}")))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(Rejection::Algorithm(header.alg));
    }
    let key = signing_key(keys, header.kid.as_deref())?;
    let key = DecodingKey::from_jwk(key)
        .map_err(|e| Rejection::Invalid(format!("the issuer's key is unusable: {e}")))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|e| Rejection::Invalid(describe(e.kind())))?
        .claims;
    if claims.nonce.as_deref() != Some(nonce) {
        return Err(Rejection::Nonce);
    }
    if claims.azp.as_deref().is_some_and(|azp| azp != client_id) {
        return Err(Rejection::AuthorizedParty);
    }
    Ok(claims)
}

/// Says in words why `jsonwebtoken` refused a token.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet".into(),
        ErrorKind::InvalidIssuer => "it was issued by another issuer (iss)".into(),
        ErrorKind::InvalidAudience => "it was issued to another client (aud)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it lacks the `{claim}` claim"),
        other => format!("it is malformed ({other:?})"),
    }
}

/// The published signing key named `kid`, or the only one when the token names none; symmetric
/// keys never qualify.
fn signing_key<'k>(keys: &'k JwkSet, kid: Option<&str>) -> Result<&'k Jwk, Rejection> {
    let asymmetric = |key: &&Jwk| !matches!(key.algorithm, AlgorithmParameters::OctetKey(_));
    let found = match kid {
        Some(kid) => keys.find(kid).filter(asymmetric),
        None => {
            let mut candidates = keys.keys.iter().filter(asymmetric);
            candidates.next().filter(|_| candidates.next().is_none())
        }
    };
    found.ok_or(Rejection::UnknownKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_a_verified_email_counts() {
        let verified = claims(json!({"sub": "1", "email": "a@x.test", "email_verified": true}));
        assert_eq!(verified.verified_email().as_deref(), Some("a@x.test"));
        let as_text = claims(json!({"sub": "1", "email": "a@x.test", "email_verified": "true"}));
        assert_eq!(as_text.verified_email().as_deref(), Some("a@x.test"));
        for unverified in [
            json!({"sub": "1", "email": "a@x.test"}),
            json!({"sub": "1", "email": "a@x.test", "email_verified": false}),
            json!({"sub": "1", "email": "a@x.test", "email_verified": "false"}),
        ] {
            assert_eq!(claims(unverified).verified_email(), None);
        }
    }

    #[test]
    fn gitlab_nicknames_stand_in_for_preferred_usernames() {
        let identity = claims(json!({"sub": "7", "nickname": "gl-user"})).into_identity();
        assert_eq!(identity.username.as_deref(), Some("gl-user"));
        assert_eq!(identity.subject, "7");
    }

    #[test]
    fn symmetric_keys_and_unknown_kids_are_never_used() {
        let keys: JwkSet = serde_json::from_value(json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}))
        .unwrap();
        assert!(matches!(
            signing_key(&keys, Some("hmac")),
            Err(Rejection::UnknownKey)
        ));
        assert!(matches!(
            signing_key(&keys, Some("other")),
            Err(Rejection::UnknownKey)
        ));
        assert!(signing_key(&keys, Some("ec")).is_ok());
        assert!(signing_key(&keys, None).is_ok(), "the only asymmetric key");
    }

    #[test]
    fn tokens_with_symmetric_or_no_algorithms_are_refused_before_any_key_is_used() {
        let keys = JwkSet { keys: Vec::new() };
        // {"alg":"HS256"}.{"sub":"x"}.sig
        let hs256 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        assert!(matches!(
            verify_id_token(hs256, &keys, "https://id", "c", "n"),
            Err(Rejection::Algorithm(Algorithm::HS256))
        ));
        assert!(matches!(
            verify_id_token("not a token", &keys, "https://id", "c", "n"),
            Err(Rejection::Invalid(_))
        ));
    }
}
