//! Registry tokens: JWTs signed by the registry, each backed by a database row holding only its hash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use serde_json::json;

use super::{AuthError, Caller, Origin, Role};
use crate::audit::AuditEvent;
use crate::clock;
use crate::store::Sqlite;
use crate::store::sqlite::audit;
use crate::store::sqlite::tokens::{self as token_rows, TokenRow};
use crate::store::sqlite::users::UserRow;

/// The claims of a Packr token (SPEC §4).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's login name.
    pub sub: String,
    /// The user's id.
    pub user_id: i64,
    /// The preset role.
    pub role: String,
    /// The permissions the role grants.
    pub permissions: Vec<String>,
    /// Scope restriction; empty for all scopes.
    pub scopes: Vec<String>,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expiry (seconds), when the token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Token id: the key of its database row.
    pub jti: String,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The token's role (at most the user's).
    pub role: Role,
    /// Scope restriction.
    pub scopes: Vec<String>,
    /// Lifetime; `None` never expires.
    pub ttl: Option<Duration>,
    /// Label.
    pub name: Option<String>,
}

/// How long a checked token is trusted without asking the database again. Revocations on this
/// instance take effect at once; this bounds how long another instance's revocation takes.
const CHECKED_TOKEN_TTL: Duration = Duration::from_secs(10);
/// Checked tokens remembered at most; the memory is dropped wholesale past it.
const CHECKED_TOKEN_CAPACITY: usize = 10_000;

/// Recently checked tokens by hash: the hot read path then does no database call.
#[derive(Default)]
struct CheckedTokens {
    entries: Mutex<HashMap<String, (Caller, Instant, Option<i64>)>>,
}

impl CheckedTokens {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Caller, Instant, Option<i64>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, hash: &str) -> Option<Caller> {
        let entries = self.lock();
        let (caller, checked, expires_at) = entries.get(hash)?;
        let fresh = checked.elapsed() < CHECKED_TOKEN_TTL
            && expires_at.is_none_or(|at| at > clock::now_ms());
        fresh.then(|| caller.clone())
    }

    fn put(&self, hash: String, caller: Caller, expires_at: Option<i64>) {
        let mut entries = self.lock();
        if entries.len() >= CHECKED_TOKEN_CAPACITY {
            entries.clear();
        }
        entries.insert(hash, (caller, Instant::now(), expires_at));
    }

    fn forget(&self, hash: &str) {
        self.lock().remove(hash);
    }
}

/// Issues, checks and revokes tokens.
#[derive(Clone)]
pub struct Tokens {
    db: Sqlite,
    encoding: EncodingKey,
    decoding: DecodingKey,
    checked: Arc<CheckedTokens>,
}

/// Hex SHA-256 of a token: what the database keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Signs with HS256 under `secret`.
    pub fn new(db: Sqlite, secret: &[u8]) -> Self {
        Self {
            db,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            checked: Arc::default(),
        }
    }

    /// Issues a token for a user, records its hash and audits the creation.
    pub async fn issue(
        &self,
        user: &UserRow,
        request: TokenRequest,
        origin: &Origin,
    ) -> Result<String, AuthError> {
        self.issue_audited(user, request, origin, None).await
    }

    /// Issues a 30-day login token, auditing the login and the token creation together.
    pub async fn issue_login(
        &self,
        user: &UserRow,
        label: &str,
        origin: &Origin,
    ) -> Result<String, AuthError> {
        let request = login_token_request(user, label);
        self.issue_audited(user, request, origin, Some("user.login"))
            .await
    }

    async fn issue_audited(
        &self,
        user: &UserRow,
        request: TokenRequest,
        origin: &Origin,
        also: Option<&'static str>,
    ) -> Result<String, AuthError> {
        for scope in &request.scopes {
            validate_scope(scope)?;
        }
        let now = clock::now_ms();
        let expires_at = request
            .ttl
            .map(|ttl| now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)));
        let claims = Claims {
            sub: user.name.clone(),
            user_id: user.id,
            role: request.role.as_str().to_owned(),
            permissions: request
                .role
                .permissions()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            scopes: request.scopes.clone(),
            iat: now / 1000,
            exp: expires_at.map(|ms| ms / 1000),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("signing a token failed: {e}")))?;
        let row = TokenRow {
            id: claims.jti,
            user_id: user.id,
            token_hash: token_hash(&token),
            role: request.role.as_str().to_owned(),
            scopes: request.scopes,
            name: request.name,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        let details = json!({
            "token_id": row.id, "role": row.role, "scopes": row.scopes, "name": row.name,
            "expires": row.expires_at.map(clock::iso),
        });
        let mut events = vec![AuditEvent::by_user(
            user.id,
            &user.name,
            origin,
            "token.created",
            details.clone(),
        )];
        if let Some(action) = also {
            events.insert(
                0,
                AuditEvent::by_user(user.id, &user.name, origin, action, details),
            );
        }
        self.db
            .write(move |tx| {
                token_rows::insert(tx, &row)?;
                for event in &events {
                    audit::record(tx, event)?;
                }
                Ok(())
            })
            .await?;
        Ok(token)
    }

    /// Checks a bearer token: signature, then the database row (revoked, expired, hash).
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthError> {
        let hash = token_hash(token);
        if let Some(caller) = self.checked.get(&hash) {
            return Ok(caller);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the database row below, which also covers tokens without `exp`.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        let found = self
            .db
            .read(move |conn| token_rows::find_with_user(conn, &claims.jti))
            .await?;
        let Some((row, user)) = found else {
            return Err(AuthError::InvalidToken);
        };
        let expired = row.expires_at.is_some_and(|at| at <= clock::now_ms());
        if row.revoked_at.is_some() || expired || row.token_hash != hash {
            return Err(AuthError::InvalidToken);
        }
        let role = Role::parse(&row.role).ok_or(AuthError::InvalidToken)?;
        let caller = Caller {
            user_id: user.id,
            name: user.name,
            email: user.email,
            token_id: row.id,
            role,
            scopes: row.scopes,
            origin: super::Origin::default(),
        };
        self.checked.put(hash, caller.clone(), row.expires_at);
        Ok(caller)
    }

    /// Revokes a token given as text; revoking an unknown or already revoked token is not an error.
    pub async fn revoke(&self, token: &str, origin: &Origin) -> Result<(), AuthError> {
        let hash = token_hash(token);
        self.checked.forget(&hash);
        let origin = origin.clone();
        self.db
            .write(move |tx| {
                if let Some((token_id, user)) =
                    token_rows::revoke_by_hash(tx, &hash, clock::now_ms())?
                {
                    let event = AuditEvent {
                        token_id: Some(token_id.clone()),
                        ..AuditEvent::by_user(
                            user.id,
                            &user.name,
                            &origin,
                            "token.revoked",
                            json!({ "token_id": token_id }),
                        )
                    };
                    audit::record(tx, &event)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}

/// A scope restriction must look like `@acme`.
fn validate_scope(scope: &str) -> Result<(), AuthError> {
    let ok = scope.strip_prefix('@').is_some_and(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "scope `{scope}` must look like @acme (lower-case)"
        )))
    }
}

/// Lifetime of tokens issued by a password login.
pub const LOGIN_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

/// What a password login issues: a 30-day token with the user's strongest role, unscoped.
pub fn login_token_request(user: &UserRow, label: &str) -> TokenRequest {
    TokenRequest {
        role: super::accounts::user_role(user).max_token_role(),
        scopes: Vec::new(),
        ttl: Some(LOGIN_TOKEN_TTL),
        name: Some(label.to_owned()),
    }
}
