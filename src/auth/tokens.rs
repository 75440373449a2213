//! Registry tokens: JWTs signed by the registry, each backed by a database row holding only its hash.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use serde_json::json;

use tokio_util::sync::CancellationToken;

use super::checked::{CheckedToken, CheckedTokens};
use super::cidr::CidrList;
use super::usage::TokenUsage;
use super::{AuthError, Caller, Origin, Permission, Role};
use crate::audit::AuditEvent;
use crate::clock;
use crate::orgs;
use crate::store::accounts::UserRow;
use crate::store::tokens::{FoundToken, TokenFilter, TokenRow};
use crate::store::{OrgStore, Store};

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

/// A caller found valid by [`Tokens::authorize`], shared with the token cache rather than copied
/// (its `origin` is not filled in: reads are not audited).
#[derive(Clone)]
pub struct CheckedCaller(Arc<CheckedToken>);

impl std::ops::Deref for CheckedCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0.caller
    }
}

/// Issues, checks and revokes tokens.
#[derive(Clone)]
pub struct Tokens {
    store: Store,
    encoding: EncodingKey,
    decoding: DecodingKey,
    checked: Arc<CheckedTokens>,
    usage: Arc<TokenUsage>,
}

/// What listings show of a token: never the token or its hash.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// The token id (the JWT's `jti`); also npm's `key`.
    pub id: String,
    /// The owner's login name.
    pub user: String,
    /// Preset role name.
    pub role: String,
    /// Scope restriction, empty for all scopes.
    pub scopes: Vec<String>,
    /// Label.
    pub name: Option<String>,
    /// Networks the token may be used from, empty for anywhere.
    pub cidr: Vec<String>,
    /// A short non-secret piece of the token (the start of its signature) to tell tokens apart.
    pub display: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry time (ms).
    pub expires_at: Option<i64>,
    /// Revocation time (ms).
    pub revoked_at: Option<i64>,
    /// Last use (ms), as of the last usage flush.
    pub last_used_at: Option<i64>,
    /// Uses, as of the last usage flush.
    pub use_count: i64,
    /// Who issued it for a service account (`operator` or an admin's name); `None` when its
    /// owner made it.
    pub issued_by: Option<String>,
}

impl TokenInfo {
    fn from_row(row: TokenRow, user: String) -> Self {
        Self {
            id: row.id,
            user,
            role: row.role,
            scopes: row.scopes,
            name: row.name,
            cidr: row.cidr,
            display: row.display,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
            use_count: row.use_count,
            issued_by: row.issued_by,
        }
    }
}

/// A newly created token: the token itself, shown once, and what listings will show of it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The bearer token.
    pub token: String,
    /// Its stored details.
    pub info: TokenInfo,
}

/// Which tokens [`Tokens::list`] answers.
#[derive(Debug, Clone, Default)]
pub struct TokenListing {
    /// Only this user's tokens (by id).
    pub user_id: Option<i64>,
    /// Leave out revoked and expired tokens.
    pub live_only: bool,
    /// Page size.
    pub limit: u32,
    /// Tokens to skip.
    pub offset: u32,
}

/// How many characters of the signature listings show.
const DISPLAY_CHARS: usize = 6;

/// Who issues a token. A token its owner makes can only narrow what the owner may do; one a
/// registry admin or the operator issues for a service account is recorded as theirs, and only
/// such a CI token scoped to an org writes there without its user being a member.
#[derive(Clone, Copy)]
pub enum Issuer<'a> {
    /// The owner for themselves (npm token create, logins), through this caller when given.
    Owner(Option<&'a Caller>),
    /// A registry admin through the admin API.
    Admin(&'a Caller),
    /// The operator at the command line (`packr token create`).
    Operator,
    /// A trusted-publishing exchange ([`crate::trust`]): scoped to one package
    /// (`publish:<name>` or `stage:<name>`), for the account that configured the publisher.
    TrustedPublishing,
}

/// `issued_by` of tokens made with `packr token create`.
pub const OPERATOR: &str = "operator";

/// Hex SHA-256 of a token: what the database keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Signs with HS256 under `secret`.
    pub fn new(store: Store, secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            checked: Arc::default(),
            usage: Arc::new(TokenUsage::new(store.clone())),
            store,
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

    /// Issues a token, auditing its creation and, when given, the action that caused it.
    pub async fn issue_audited(
        &self,
        user: &UserRow,
        request: TokenRequest,
        origin: &Origin,
        also: Option<&'static str>,
    ) -> Result<String, AuthError> {
        let issued = self
            .issue_row(
                user,
                request,
                CidrList::default(),
                Issuer::Owner(None),
                origin,
                also,
            )
            .await?;
        Ok(issued.token)
    }

    /// Creates a token on someone's request (`npm token create`, the admin API, `packr token
    /// create`), usable only from `cidr` when that is not empty; `issuer` decides whether its
    /// scopes may reach beyond what the user can write, and who the creation is audited as.
    pub async fn create(
        &self,
        user: &UserRow,
        request: TokenRequest,
        cidr: CidrList,
        issuer: Issuer<'_>,
        origin: &Origin,
    ) -> Result<IssuedToken, AuthError> {
        let allowed = super::accounts::user_role(user).max_token_role();
        if request.role > allowed {
            return Err(AuthError::Invalid(format!(
                "user {} is a {} and may hold tokens up to {allowed}, not {}",
                user.name, user.role, request.role
            )));
        }
        // A token for a disabled account would be refused at every use: say so now instead.
        let standing = self.store.user_standing(user.id).await?;
        if standing.is_some_and(|s| s.disabled_at.is_some()) {
            return Err(AuthError::AccountDisabled(user.name.clone()));
        }
        self.issue_row(user, request, cidr, issuer, origin, None)
            .await
    }

    /// Refuses a scope the user cannot write: on a token a user makes for themselves, a scope
    /// only narrows what the user can already do.
    async fn check_own_scopes(&self, user: &UserRow, scopes: &[String]) -> Result<(), AuthError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let refusal = orgs::own_scopes_refusal(&*self.store as &dyn OrgStore, user, scopes).await?;
        match refusal {
            Some(message) => Err(AuthError::ScopeNotAllowed(message)),
            None => Ok(()),
        }
    }

    async fn issue_row(
        &self,
        user: &UserRow,
        request: TokenRequest,
        cidr: CidrList,
        issuer: Issuer<'_>,
        origin: &Origin,
        also: Option<&'static str>,
    ) -> Result<IssuedToken, AuthError> {
        if !matches!(issuer, Issuer::TrustedPublishing) {
            for scope in &request.scopes {
                validate_scope(scope)?;
            }
        }
        let (actor, issued_by) = match issuer {
            Issuer::Owner(actor) => {
                self.check_own_scopes(user, &request.scopes).await?;
                (actor, None)
            }
            Issuer::Admin(admin) => (Some(admin), Some(admin.name.clone())),
            Issuer::Operator => (None, Some(OPERATOR.to_owned())),
            Issuer::TrustedPublishing => (None, Some(crate::trust::ISSUED_BY.to_owned())),
        };
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
            cidr: cidr.to_strings(),
            display: display_piece(&token),
            last_used_at: None,
            use_count: 0,
            issued_by,
        };
        let mut details = json!({
            "token_id": row.id, "role": row.role, "scopes": row.scopes, "name": row.name,
            "expires": row.expires_at.map(clock::iso),
        });
        if let Some(issuer) = &row.issued_by {
            details["issued_by"] = json!(issuer);
        }
        if !row.cidr.is_empty() {
            details["cidr"] = json!(row.cidr);
        }
        let created = match actor {
            Some(actor) => AuditEvent::by(actor, "token.created", details.clone()),
            None => AuditEvent::by_user(
                user.id,
                &user.name,
                origin,
                "token.created",
                details.clone(),
            ),
        };
        let mut events = vec![created];
        if let Some(action) = also {
            events.insert(
                0,
                AuditEvent::by_user(user.id, &user.name, origin, action, details),
            );
        }
        self.store.insert_token(row.clone(), events).await?;
        Ok(IssuedToken {
            token,
            info: TokenInfo::from_row(row, user.name.clone()),
        })
    }

    /// Checks a bearer token used from `ip`: signature, then the database row (revoked, expired,
    /// hash), then the token's CIDR allow-list; counts the use when it passes. A token checked in
    /// the last few seconds is taken from memory, but its expiry and allow-list are checked on
    /// every use.
    pub async fn authenticate(&self, token: &str, ip: Option<IpAddr>) -> Result<Caller, AuthError> {
        Ok(self.check(token, ip).await?.caller.clone())
    }

    /// [`Tokens::authenticate`] for a request that only needs `permission`: the hot read path
    /// then copies nothing out of the checked token.
    pub async fn authorize(
        &self,
        token: &str,
        ip: Option<IpAddr>,
        permission: Permission,
    ) -> Result<CheckedCaller, AuthError> {
        let checked = self.check(token, ip).await?;
        checked.caller.require(permission)?;
        Ok(CheckedCaller(checked))
    }

    async fn check(&self, token: &str, ip: Option<IpAddr>) -> Result<Arc<CheckedToken>, AuthError> {
        let hash = token_hash(token);
        let checked = match self.checked.get(&hash) {
            Some(checked) => checked,
            None => self.check_in_database(token, hash).await?,
        };
        if !checked.cidr.allows(ip) {
            return Err(AuthError::AddressNotAllowed {
                ip: ip.map_or_else(
                    || "an unknown address".to_owned(),
                    |ip| ip.to_canonical().to_string(),
                ),
            });
        }
        self.usage.record(&checked.caller.token_id, clock::now_ms());
        Ok(checked)
    }

    async fn check_in_database(
        &self,
        token: &str,
        hash: String,
    ) -> Result<Arc<CheckedToken>, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the database row below, which also covers tokens without `exp`.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        let epoch = self.checked.epoch();
        let Some(FoundToken {
            token: row,
            user,
            standing,
        }) = self.store.find_token(&claims.jti).await?
        else {
            return Err(AuthError::InvalidToken);
        };
        let expired = row.expires_at.is_some_and(|at| at <= clock::now_ms());
        if row.revoked_at.is_some() || expired || row.token_hash != hash {
            return Err(AuthError::InvalidToken);
        }
        if standing.disabled_at.is_some() {
            return Err(AuthError::AccountDisabled(user.name));
        }
        // The row keeps the role the token was issued with; a user demoted since then holds it
        // only up to what the account may hold now.
        let issued = Role::parse(&row.role).ok_or(AuthError::InvalidToken)?;
        let role = issued.min(super::accounts::user_role(&user).max_token_role());
        // A stored list that no longer parses must not open the token to every address.
        let cidr = CidrList::parse(&row.cidr).map_err(|_| AuthError::InvalidToken)?;
        let user_role = super::accounts::user_role(&user);
        let checked = Arc::new(CheckedToken {
            caller: Caller {
                user_id: user.id,
                name: user.name,
                email: user.email,
                token_id: row.id,
                role,
                scopes: row.scopes,
                user_role,
                service_token: row.issued_by.is_some(),
                origin: super::Origin::default(),
            },
            cidr: Arc::new(cidr),
            checked: Instant::now(),
            expires_at: row.expires_at,
        });
        self.checked.put(hash, Arc::clone(&checked), epoch);
        Ok(checked)
    }

    /// Revokes a token given as text; revoking an unknown or already revoked token is not an error.
    pub async fn revoke(&self, token: &str, origin: &Origin) -> Result<(), AuthError> {
        let hash = token_hash(token);
        self.checked.forget(&hash);
        let origin = origin.clone();
        let audit = Box::new(move |token: &TokenRow, user: &UserRow| AuditEvent {
            token_id: Some(token.id.clone()),
            ..AuditEvent::by_user(
                user.id,
                &user.name,
                &origin,
                "token.revoked",
                json!({ "token_id": token.id }),
            )
        });
        self.store
            .revoke_token_by_hash(&hash, clock::now_ms(), audit)
            .await?;
        Ok(())
    }

    /// Revokes the token with this id, audited as done by `actor` when given, else by its owner.
    /// Answers whether it was live until now; revoking a revoked token changes nothing.
    pub async fn revoke_id(
        &self,
        id: &str,
        actor: Option<&Caller>,
        origin: &Origin,
    ) -> Result<bool, AuthError> {
        let (actor, origin) = (actor.cloned(), origin.clone());
        let audit = Box::new(move |token: &TokenRow, owner: &UserRow| {
            let details = json!({ "token_id": token.id, "owner": owner.name });
            match &actor {
                Some(actor) => AuditEvent::by(actor, "token.revoked", details),
                None => AuditEvent {
                    token_id: Some(token.id.clone()),
                    ..AuditEvent::by_user(owner.id, &owner.name, &origin, "token.revoked", details)
                },
            }
        });
        let revoked = self
            .store
            .revoke_token_by_id(id, clock::now_ms(), audit)
            .await?;
        match revoked {
            Some(token) => {
                self.checked.forget(&token.token_hash);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Finds the id of a token named by its id, a prefix of at least 6 characters unique among
    /// the live tokens (what `npm token list` shows), or the token itself; only among `owner`'s
    /// tokens when given.
    pub async fn find_id(&self, owner: Option<i64>, reference: &str) -> Result<String, AuthError> {
        let reference = reference.trim();
        let unknown = || AuthError::UnknownToken(reference.chars().take(12).collect());
        if reference.contains('.') {
            let row = self
                .store
                .find_token_by_hash(&token_hash(reference))
                .await?;
            return row
                .filter(|row| owner.is_none_or(|owner| owner == row.user_id))
                .map(|row| row.id)
                .ok_or_else(unknown);
        }
        let prefix = reference.to_ascii_lowercase();
        if prefix.len() < 6 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Invalid(format!(
                "`{reference}` is not a token id: give at least 6 characters of the id shown by `npm token list`"
            )));
        }
        let found = self.store.token_ids_with_prefix(owner, &prefix).await?;
        if found.iter().any(|(id, _)| *id == prefix) {
            return Ok(prefix);
        }
        let live: Vec<&String> = found
            .iter()
            .filter_map(|(id, live)| live.then_some(id))
            .collect();
        match live.as_slice() {
            [] => Err(unknown()),
            [id] => Ok((*id).clone()),
            _ => Err(AuthError::Invalid(format!(
                "token id `{reference}` is ambiguous: give more of its characters"
            ))),
        }
    }

    /// Tokens matching `listing`, newest first, and how many match in all.
    pub async fn list(&self, listing: TokenListing) -> Result<(Vec<TokenInfo>, i64), AuthError> {
        let filter = TokenFilter {
            user_id: listing.user_id,
            live_at: listing.live_only.then(clock::now_ms),
            limit: listing.limit,
            offset: listing.offset,
        };
        let (rows, total) = self.store.list_tokens(filter).await?;
        let tokens = rows
            .into_iter()
            .map(|(row, user)| TokenInfo::from_row(row, user))
            .collect();
        Ok((tokens, total))
    }

    /// Writes the usage counted since the last flush (see [`super::usage`]).
    pub async fn flush_usage(&self) -> Result<usize, AuthError> {
        Ok(self.usage.flush().await?)
    }

    /// Watches the accounts every `every` until `stop` is cancelled, and forgets the checked
    /// tokens whenever one changed (see [`super::account_watch`]); `serve` runs it.
    pub async fn watch_accounts_until(&self, every: Duration, stop: CancellationToken) {
        super::account_watch::run(&self.store, &self.checked, every, stop).await;
    }

    /// Forgets every checked token, so each is checked against the database on its next use:
    /// another instance revoked one.
    pub fn forget_checked(&self) {
        self.checked.clear();
    }

    /// Writes usage data every `every` until `stop` is cancelled, then once more; `serve` runs it.
    pub async fn flush_usage_until(&self, every: Duration, stop: CancellationToken) {
        self.usage.flush_until(every, stop).await;
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

/// The start of a token's signature: unique enough to tell tokens apart in a listing, and too
/// short to help anyone forge one.
fn display_piece(token: &str) -> String {
    let signature = token.rsplit('.').next().unwrap_or_default();
    signature.chars().take(DISPLAY_CHARS).collect()
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
