//! Sign-in through OAuth providers (SPEC §4): GitHub, GitLab, Google and a generic OpenID Connect
//! provider, with the authorization code grant, PKCE (S256), a single-use `state` kept server-side
//! and, for OpenID Connect, a nonce checked in a verified ID token.
//!
//! [`OAuth::begin`] makes the authorization URL and stores the sign-in in progress;
//! [`OAuth::take_pending`] and [`OAuth::complete`] handle the provider's redirect back: exchange
//! the code, learn who signed in ([`oidc`] or [`github`]), and map that identity to a Packr user
//! ([`link`]). Providers come from configuration only; no client secret is stored.

mod github;
pub mod http;
mod link;
mod oidc;
mod provider;

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use oauth2::basic::BasicErrorResponse;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError, Scope,
    TokenResponse,
};
use sha2::Sha256;

use self::http::{Http, HttpError};
use self::link::LinkRules;
use self::provider::{Kind, Provider};
use super::Origin;
use crate::clock;
use crate::config::{OAuthConfig, ProviderConfig};
use crate::outbound::HttpClient;
use crate::store::accounts::UserRow;
use crate::store::logins::StateRow;
use crate::store::{Store, StoreError};

/// How long a person has to sign in at the provider.
pub const STATE_TTL: Duration = Duration::from_secs(600);

/// Why an OAuth sign-in failed; every message tells the person what to do next.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A provider id that is not configured.
    #[error("there is no sign-in provider `{0}` on this registry")]
    UnknownProvider(String),
    /// A `state` that is unknown, used, expired, or another provider's.
    #[error(
        "this sign-in link is invalid, expired or already used; start again from the page your terminal opened"
    )]
    BadState,
    /// Input that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The provider refused the code exchange, or its answer failed the checks (ID token).
    #[error("{provider} did not complete the sign-in: {detail}. Start again from the login page.")]
    Refused {
        /// The provider's display name.
        provider: String,
        /// What was refused.
        detail: String,
    },
    /// The provider could not be reached or answered nonsense.
    #[error(
        "{provider} could not be reached or answered unexpectedly ({detail}); try again later or sign in with a password"
    )]
    Unreachable {
        /// The provider's display name.
        provider: String,
        /// What failed.
        detail: String,
    },
    /// No user matches the identity, and accounts are not created on sign-in.
    #[error("{}", no_account_message(provider, email.as_deref()))]
    NoAccount {
        /// The provider's display name.
        provider: String,
        /// The verified e-mail address, if the provider gave one.
        email: Option<String>,
    },
    /// Several users have the identity's e-mail address, so it cannot pick one.
    #[error(
        "several Packr accounts have the e-mail address {email} that {provider} verified; ask an administrator to give each account its own address"
    )]
    SeveralAccounts {
        /// The provider's display name.
        provider: String,
        /// The shared e-mail address.
        email: String,
    },
    /// The identity's verified e-mail is an admin's, and the admin did not link it explicitly.
    #[error(
        "the e-mail address {email} that {provider} verified belongs to an administrator account, which is never signed in by e-mail alone; an administrator links {provider} by signing in with their password on the login page first, then choosing \"Link {provider}\" there"
    )]
    AdminNeedsLink {
        /// The provider's display name.
        provider: String,
        /// The admin's address.
        email: String,
    },
    /// Accounts are created on sign-in only for some e-mail domains, and this is not one.
    #[error("{}", domain_message(provider, email.as_deref(), domains))]
    DomainNotAllowed {
        /// The provider's display name.
        provider: String,
        /// The verified e-mail address, if the provider gave one.
        email: Option<String>,
        /// The allowed domains, comma-separated.
        domains: String,
    },
    /// The identity's account is disabled.
    #[error(
        "the account {0} is disabled on this registry; ask a registry admin to run `packr user enable {0}`"
    )]
    Disabled(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something on the server side failed.
    #[error("{0}")]
    Internal(String),
}

fn no_account_message(provider: &str, email: Option<&str>) -> String {
    match email {
        Some(email) => format!(
            "no Packr account has the e-mail address {email} that {provider} verified, and this registry does not create accounts on sign-in; ask an administrator to create your account with that address, then sign in again"
        ),
        None => format!(
            "{provider} did not share a verified e-mail address, so your identity matches no Packr account, and this registry does not create accounts on sign-in; verify your address at {provider} or ask an administrator to create your account"
        ),
    }
}

fn domain_message(provider: &str, email: Option<&str>, domains: &str) -> String {
    let whose = match email {
        Some(email) => format!("{provider} verified {email}"),
        None => format!("{provider} shared no verified address"),
    };
    format!(
        "this registry creates accounts on sign-in only for e-mail addresses at {domains}, and {whose}; sign in with an account at one of those domains, or ask an administrator to create your account"
    )
}

/// A provider failure before it is named: the provider refused, or could not be used.
#[derive(Debug)]
enum Failure {
    Refused(String),
    Unreachable(String),
}

impl From<HttpError> for Failure {
    fn from(err: HttpError) -> Self {
        if err.is_refusal() {
            Self::Refused(err.to_string())
        } else {
            Self::Unreachable(err.to_string())
        }
    }
}

impl Failure {
    fn at(self, provider: &ProviderConfig) -> OAuthError {
        let provider = provider.display_name.clone();
        match self {
            Self::Refused(detail) => OAuthError::Refused { provider, detail },
            Self::Unreachable(detail) => OAuthError::Unreachable { provider, detail },
        }
    }
}

/// Who signed in at a provider.
#[derive(Debug, Clone)]
struct Identity {
    /// The provider's stable id of the person.
    subject: String,
    /// A verified e-mail address; unverified ones are dropped.
    email: Option<String>,
    /// The provider's user name, a hint for new accounts.
    username: Option<String>,
}

/// Where the browser goes to sign in, and the state to bind to it.
#[derive(Debug)]
pub struct Started {
    /// The provider's authorization URL with all parameters.
    pub authorize_url: String,
    /// The `state` parameter, which the browser also keeps in a cookie.
    pub state: String,
}

/// A sign-in whose state came back valid; used once.
#[derive(Debug)]
pub struct Pending {
    row: StateRow,
}

impl Pending {
    /// The device user code the sign-in started from (may be empty).
    pub fn return_code(&self) -> &str {
        &self.row.return_code
    }
}

/// The OAuth sign-in service; cheap to clone.
#[derive(Clone)]
pub struct OAuth {
    inner: Arc<Inner>,
}

struct Inner {
    providers: Vec<Provider>,
    rules: LinkRules,
    http: Http,
    store: Store,
    key: Vec<u8>,
}

impl OAuth {
    /// The providers of `config`, keeping sign-ins in `store` under hashes keyed with `key`.
    pub fn new(config: &OAuthConfig, store: Store, http: HttpClient, key: Vec<u8>) -> Self {
        let providers = config.providers.iter().map(Provider::new).collect();
        Self {
            inner: Arc::new(Inner {
                providers,
                rules: LinkRules {
                    auto_create: config.auto_create_users,
                    allowed_domains: config.allowed_domains.clone(),
                },
                http: Http::new(http),
                store,
                key,
            }),
        }
    }

    /// The configured providers, in button order.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.inner.providers.iter().map(|p| &p.config)
    }

    fn provider(&self, id: &str) -> Result<&Provider, OAuthError> {
        self.inner
            .providers
            .iter()
            .find(|p| p.config.id == id)
            .ok_or_else(|| OAuthError::UnknownProvider(id.chars().take(40).collect()))
    }

    /// Keyed hash of a state: what is stored, so the database never holds a usable state.
    fn state_hash(&self, state: &str) -> Result<String, OAuthError> {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.inner.key)
            .map_err(|e| OAuthError::Internal(format!("OAuth state key: {e}")))?;
        mac.update(b"oauth-state\0");
        mac.update(state.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether two states are the same, compared through their keyed hashes (constant time in
    /// the secret).
    pub fn same_state(&self, a: &str, b: &str) -> bool {
        matches!((self.state_hash(a), self.state_hash(b)), (Ok(a), Ok(b)) if a == b)
    }

    /// Starts a sign-in at `provider` for the device user code `return_code`; the provider will
    /// send the browser back to `<base_url>/api/auth/callback/<provider>`.
    pub async fn begin(
        &self,
        provider: &str,
        return_code: &str,
        base_url: &str,
    ) -> Result<Started, OAuthError> {
        let provider = self.provider(provider)?;
        let endpoints = provider.endpoints(&self.inner.http).await?;
        let redirect_uri = format!("{base_url}/api/auth/callback/{}", provider.config.id);
        let client = provider.client(&endpoints, &redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(
                provider
                    .scopes()
                    .iter()
                    .map(|s| Scope::new((*s).to_owned())),
            )
            .set_pkce_challenge(challenge);
        if matches!(provider.kind, Kind::Oidc(_)) {
            request = request.add_extra_param("nonce", nonce.secret());
        }
        let (url, state) = request.url();
        let now = clock::now_ms();
        let row = StateRow {
            state_hash: self.state_hash(state.secret())?,
            provider: provider.config.id.to_owned(),
            pkce_verifier: verifier.into_secret(),
            nonce: nonce.into_secret(),
            return_code: return_code.to_owned(),
            redirect_uri,
            created_at: now,
            expires_at: now + i64::try_from(STATE_TTL.as_millis()).unwrap_or(600_000),
        };
        self.inner.store.insert_oauth_state(row, now).await?;
        Ok(Started {
            authorize_url: url.to_string(),
            state: state.into_secret(),
        })
    }

    /// Takes the sign-in `state` names, if it is unused, unexpired and `provider`'s: whatever
    /// happens next, that state cannot be used again.
    pub async fn take_pending(&self, provider: &str, state: &str) -> Result<Pending, OAuthError> {
        self.provider(provider)?;
        let hash = self.state_hash(state)?;
        let row = self
            .inner
            .store
            .take_oauth_state(&hash)
            .await?
            .filter(|row| row.provider == provider && row.expires_at > clock::now_ms())
            .ok_or(OAuthError::BadState)?;
        Ok(Pending { row })
    }

    /// Finishes a sign-in with the provider's authorization `code`: exchanges it (with the PKCE
    /// verifier), identifies the person, and signs them in as their Packr user. `signed_in` is
    /// the user already signed in to the browser, which may link the identity (see `link`).
    pub async fn complete(
        &self,
        pending: Pending,
        code: &str,
        signed_in: Option<i64>,
        origin: &Origin,
    ) -> Result<UserRow, OAuthError> {
        let row = pending.row;
        let provider = self.provider(&row.provider)?;
        let http = &self.inner.http;
        let endpoints = provider.endpoints(http).await?;
        let answer = provider
            .client(&endpoints, &row.redirect_uri)?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(row.pkce_verifier))
            .request_async(http)
            .await
            .map_err(|err| exchange_failure(err).at(&provider.config))?;
        let access_token = answer.access_token().secret();
        let identity = match &provider.kind {
            Kind::Oidc(issuer) => {
                let id_token = answer.extra_fields().id_token.as_deref();
                let client_id = &provider.config.client_id;
                issuer
                    .identify(http, id_token, access_token, client_id, &row.nonce)
                    .await
            }
            Kind::GitHub { api_url, .. } => github::identify(http, api_url, access_token).await,
        }
        .map_err(|f| f.at(&provider.config))?;
        link::sign_in(
            self.inner.store.as_ref(),
            provider.config.id,
            &provider.config.display_name,
            identity,
            &self.inner.rules,
            signed_in,
            origin,
        )
        .await
    }
}

/// Sorts a failed code exchange: an error answer (or one that is not a token) is a refusal.
fn exchange_failure(err: RequestTokenError<HttpError, BasicErrorResponse>) -> Failure {
    match err {
        RequestTokenError::ServerResponse(answer) => {
            Failure::Refused(format!("the code exchange failed: {answer}"))
        }
        RequestTokenError::Parse(_, _) => {
            Failure::Refused("the token endpoint did not answer with a token".into())
        }
        RequestTokenError::Request(err) => Failure::from(err),
        RequestTokenError::Other(detail) => Failure::Unreachable(detail),
    }
}
