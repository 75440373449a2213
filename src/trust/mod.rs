//! Trusted publishing (npm-protocol.md §12.5): CI jobs exchange their OIDC ID token for a
//! 15-minute token that publishes one package, with no token stored anywhere. Maintainers
//! configure which repository and workflow (or GitLab project and pipeline file) may do so with
//! `npm trust`; registry admins may also trust one for every package of an org.

pub mod claims;
mod issuer;

use std::time::Duration;

use serde_json::{Value, json};

use crate::audit::AuditEvent;
use crate::auth::oauth::http::Http;
use crate::auth::tokens::{Issuer as TokenIssuer, TokenRequest};
use crate::auth::{AuthError, Caller, Origin, Role, Tokens, UserRole};
use crate::clock;
use crate::store::trust::{Exchange, TrustedPublisherRow};
use crate::store::{Store, StoreError};
pub use claims::Provider;
use issuer::IssuerKeys;

/// How long an exchanged token lives.
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// `issued_by` of exchanged tokens.
pub const ISSUED_BY: &str = "trusted-publishing";
/// The permission to publish, as npm names it.
pub const CREATE_PACKAGE: &str = "createPackage";
/// The permission to stage a publish, as npm names it.
pub const CREATE_STAGED_PACKAGE: &str = "createStagedPackage";

/// The issuers trusted publishing accepts ID tokens from.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// GitHub Actions' issuer.
    pub github_issuer: String,
    /// GitLab's issuer.
    pub gitlab_issuer: String,
}

impl Default for TrustSettings {
    fn default() -> Self {
        Self {
            github_issuer: "https://token.actions.githubusercontent.com".into(),
            gitlab_issuer: "https://gitlab.com".into(),
        }
    }
}

/// Why trusted publishing refused something.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// An ID token that was not accepted, and why.
    #[error("{0}")]
    Refused(String),
    /// The caller may not change this package's trusted publishers.
    #[error("{0}")]
    Forbidden(String),
    /// No such package or trusted publisher.
    #[error("{0}")]
    NotFound(String),
    /// A configuration npm should not have sent.
    #[error("{0}")]
    Invalid(String),
    /// The issuer's documents could not be fetched.
    #[error("{0}")]
    Unavailable(String),
    /// Issuing the token failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Trusted publishers and the exchange; cheap to clone.
#[derive(Clone)]
pub struct TrustedPublishing {
    store: Store,
    tokens: Tokens,
    http: Http,
    issuers: std::sync::Arc<[(Provider, IssuerKeys)]>,
}

impl TrustedPublishing {
    /// The service, fetching issuers' documents through `http` when first needed.
    pub fn new(store: Store, tokens: Tokens, http: Http, settings: &TrustSettings) -> Self {
        let issuers = vec![
            (Provider::Github, IssuerKeys::new(&settings.github_issuer)),
            (Provider::Gitlab, IssuerKeys::new(&settings.gitlab_issuer)),
        ];
        Self {
            store,
            tokens,
            http,
            issuers: issuers.into(),
        }
    }

    /// Exchanges a CI ID token for a publish token of `package`. `host` is Packr's public host
    /// name: the audience must be `npm:<host>`.
    pub async fn exchange(
        &self,
        package: &str,
        id_token: &str,
        host: &str,
        origin: &Origin,
    ) -> Result<String, TrustError> {
        let unverified = issuer::unverified_claims(id_token).map_err(TrustError::Refused)?;
        let iss = unverified.get("iss").and_then(Value::as_str).unwrap_or("");
        let Some((provider, keys)) = self
            .issuers
            .iter()
            .find(|(_, keys)| keys.issuer() == iss.trim_end_matches('/'))
        else {
            return Err(TrustError::Refused(format!(
                "the ID token's issuer {iss:?} is not one this registry trusts (GitHub: {}, GitLab: {})",
                self.issuers[0].1.issuer(),
                self.issuers[1].1.issuer()
            )));
        };
        let audience = format!("npm:{host}");
        let claims = keys.verify(&self.http, id_token, &audience).await?;
        let publishers = self.publishers_for(package).await?;
        let mut reasons = Vec::new();
        let mut matched = None;
        for row in publishers.iter().filter(|r| r.kind == provider.as_str()) {
            match claims::mismatch(*provider, row, &claims) {
                None => {
                    matched = Some(row);
                    break;
                }
                Some(reason) => reasons.push(reason),
            }
        }
        let Some(publisher) = matched else {
            return Err(TrustError::Refused(if reasons.is_empty() {
                format!(
                    "no trusted publisher for {package} from {}: add one with `npm trust {} {package} ...`",
                    provider.as_str(),
                    provider.as_str()
                )
            } else {
                format!(
                    "no trusted publisher of {package} matches the ID token: {}",
                    reasons.join("; ")
                )
            }));
        };
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
            .ok_or_else(|| TrustError::Refused("the ID token has no jti claim".into()))?;
        let exp_ms = claims.get("exp").and_then(Value::as_i64).unwrap_or(0) * 1000;
        let identity = claims::identity(*provider, keys.issuer(), &claims, &publisher.id);
        let user = self
            .store
            .find_user_by_id(publisher.created_by)
            .await?
            .ok_or_else(|| {
                TrustError::Refused(format!(
                    "the account that configured trusted publisher {} no longer exists",
                    publisher.id
                ))
            })?;
        let event = AuditEvent::by_user(
            user.id,
            &user.name,
            origin,
            "trusted_publishing.exchanged",
            json!({ "identity": identity, "permissions": publisher.permissions }),
        )
        .on_package(package);
        let exchange = Exchange {
            issuer: keys.issuer().to_owned(),
            jti: jti.to_owned(),
            expires_at: exp_ms,
            package: package.to_owned(),
            identity: identity.clone(),
        };
        if !self
            .store
            .record_exchange(exchange, clock::now_ms(), event)
            .await?
        {
            return Err(TrustError::Refused(format!(
                "the ID token (jti {jti}) was already exchanged: each ID token is exchanged once"
            )));
        }
        let scope = if publisher.permissions.iter().any(|p| p == CREATE_PACKAGE) {
            format!("publish:{package}")
        } else {
            format!("stage:{package}")
        };
        let request = TokenRequest {
            role: Role::CiPublish,
            scopes: vec![scope],
            ttl: Some(TOKEN_TTL),
            name: Some(format!(
                "trusted publishing: {} {}",
                identity["repository"].as_str().unwrap_or_default(),
                identity["workflow"].as_str().unwrap_or_default()
            )),
        };
        let issued = self
            .tokens
            .create(
                &user,
                request,
                Default::default(),
                TokenIssuer::TrustedPublishing,
                origin,
            )
            .await?;
        self.store
            .link_exchange(keys.issuer(), jti, &issued.info.id)
            .await?;
        Ok(issued.token)
    }

    /// The trusted publishers that apply to `package`: its own, then its org's.
    async fn publishers_for(&self, package: &str) -> Result<Vec<TrustedPublisherRow>, StoreError> {
        let mut rows = self.store.package_trusted_publishers(package).await?;
        if let Some(slug) = org_of(package) {
            rows.extend(self.store.org_trusted_publishers(slug).await?);
        }
        Ok(rows)
    }

    /// The identity recorded for an exchanged token, to put on what it publishes.
    pub async fn identity_of(&self, caller: &Caller) -> Result<Option<Value>, StoreError> {
        if !caller.scopes.iter().any(|s| s.starts_with("publish:")) {
            return Ok(None);
        }
        self.store.exchange_identity(&caller.token_id).await
    }

    async fn check_may_configure(&self, caller: &Caller, package: &str) -> Result<(), TrustError> {
        caller.require(crate::auth::Permission::Publish)?;
        if caller.scopes.iter().any(|s| s.contains(':')) {
            return Err(TrustError::Forbidden(
                "a trusted-publishing token cannot change trusted publishers".into(),
            ));
        }
        if caller.is_admin() || caller.user_role == UserRole::Admin {
            return Ok(());
        }
        let facts = self.store.write_facts(package, caller.user_id).await?;
        if !facts.exists {
            return Err(TrustError::NotFound(format!(
                "{package} does not exist: publish it once before trusting a CI publisher for it"
            )));
        }
        let org_admin = facts
            .org
            .as_ref()
            .and_then(|o| o.member_role.as_deref())
            .is_some_and(|r| r == "owner" || r == "admin");
        if facts.is_maintainer || org_admin {
            Ok(())
        } else {
            Err(TrustError::Forbidden(format!(
                "only the maintainers of {package} or its org's admins may change its trusted publishers"
            )))
        }
    }

    /// `npm trust github|gitlab`: adds the configurations of npm's body (an array or one object).
    pub async fn add(
        &self,
        caller: &Caller,
        package: &str,
        body: Value,
    ) -> Result<Vec<TrustedPublisherRow>, TrustError> {
        self.check_may_configure(caller, package).await?;
        self.add_rows(caller, Some(package), None, body).await
    }

    /// Adds an org-wide trusted publisher (registry admins, through the admin API).
    pub async fn add_for_org(
        &self,
        caller: &Caller,
        org: &str,
        body: Value,
    ) -> Result<Vec<TrustedPublisherRow>, TrustError> {
        self.check_org_admin(caller, org).await?;
        self.add_rows(caller, None, Some(org), body).await
    }

    async fn check_org_admin(&self, caller: &Caller, org: &str) -> Result<(), TrustError> {
        if !(caller.is_admin() || caller.user_role == UserRole::Admin) {
            return Err(TrustError::Forbidden(
                "only registry admins may change an org's trusted publishers".into(),
            ));
        }
        let standing = self.store.scope_standing(org, caller.user_id).await?;
        if !matches!(standing, crate::store::orgs::ScopeStanding::Org { .. }) {
            return Err(TrustError::NotFound(format!("there is no org {org}")));
        }
        Ok(())
    }

    async fn add_rows(
        &self,
        caller: &Caller,
        package: Option<&str>,
        org: Option<&str>,
        body: Value,
    ) -> Result<Vec<TrustedPublisherRow>, TrustError> {
        let items = match body {
            Value::Array(items) => items,
            item @ Value::Object(_) => vec![item],
            _ => {
                return Err(TrustError::Invalid(
                    "the body must be a trusted publisher configuration or an array of them".into(),
                ));
            }
        };
        let now = clock::now_ms();
        let mut rows = Vec::new();
        for item in items {
            rows.push(parse_config(&item, caller.user_id, package, org, now)?);
        }
        if rows.is_empty() {
            return Err(TrustError::Invalid("no trusted publisher was given".into()));
        }
        let events = rows
            .iter()
            .map(|row| {
                let event = AuditEvent::by(caller, "trusted_publisher.added", json!(row));
                match (package, org) {
                    (Some(package), _) => event.on_package(package),
                    (None, Some(org)) => event.on_org(org),
                    (None, None) => event,
                }
            })
            .collect();
        self.store
            .add_trusted_publishers(rows.clone(), events)
            .await?;
        Ok(rows)
    }

    /// `npm trust list`: for those who may change them (which CI may publish is not for every
    /// reader to map).
    pub async fn list(
        &self,
        caller: &Caller,
        package: &str,
    ) -> Result<Vec<TrustedPublisherRow>, TrustError> {
        self.check_may_configure(caller, package).await?;
        Ok(self.store.package_trusted_publishers(package).await?)
    }

    /// An org's org-wide trusted publishers (registry admins).
    pub async fn list_for_org(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<Vec<TrustedPublisherRow>, TrustError> {
        self.check_org_admin(caller, org).await?;
        Ok(self.store.org_trusted_publishers(org).await?)
    }

    /// `npm trust revoke --id`.
    pub async fn revoke(&self, caller: &Caller, package: &str, id: &str) -> Result<(), TrustError> {
        self.check_may_configure(caller, package).await?;
        let event = AuditEvent::by(caller, "trusted_publisher.removed", json!({ "id": id }))
            .on_package(package);
        if self
            .store
            .remove_trusted_publisher(id, Some(package), None, event)
            .await?
        {
            Ok(())
        } else {
            Err(TrustError::NotFound(format!(
                "{package} has no trusted publisher {id}; `npm trust list {package}` shows their ids"
            )))
        }
    }

    /// Removes an org-wide trusted publisher (registry admins).
    pub async fn revoke_for_org(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<(), TrustError> {
        self.check_org_admin(caller, org).await?;
        let event =
            AuditEvent::by(caller, "trusted_publisher.removed", json!({ "id": id })).on_org(org);
        if self
            .store
            .remove_trusted_publisher(id, None, Some(org), event)
            .await?
        {
            Ok(())
        } else {
            Err(TrustError::NotFound(format!(
                "the org {org} has no trusted publisher {id}"
            )))
        }
    }
}

/// The org slug of `@slug/name`.
fn org_of(package: &str) -> Option<&str> {
    package.strip_prefix('@')?.split_once('/').map(|(s, _)| s)
}

/// One configuration as `npm trust` sends it:
/// `{"type":"github","claims":{"repository":…,"workflow_ref":{"file":…},"environment"?},
/// "permissions"?:[…]}`.
fn parse_config(
    item: &Value,
    created_by: i64,
    package: Option<&str>,
    org: Option<&str>,
    now: i64,
) -> Result<TrustedPublisherRow, TrustError> {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
    let provider = match kind {
        "github" => Provider::Github,
        "gitlab" => Provider::Gitlab,
        other => {
            return Err(TrustError::Invalid(format!(
                "trusted publishers of type {other:?} are not supported here: use github or gitlab"
            )));
        }
    };
    let given = item.get("claims").cloned().unwrap_or(Value::Null);
    let repository = given
        .get(provider.repository_claim())
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| r.contains('/'))
        .ok_or_else(|| {
            TrustError::Invalid(format!(
                "a {kind} trusted publisher needs claims.{} (owner/name)",
                provider.repository_claim()
            ))
        })?;
    let file = given
        .get(provider.file_claim())
        .and_then(|f| f.get("file"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            TrustError::Invalid(format!(
                "a {kind} trusted publisher needs claims.{}.file",
                provider.file_claim()
            ))
        })?;
    let mut claims = json!({
        provider.repository_claim(): repository,
        provider.file_claim(): { "file": file },
    });
    if let Some(environment) = given
        .get("environment")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        claims["environment"] = json!(environment);
    }
    let permissions: Vec<String> = match item.get("permissions") {
        None | Some(Value::Null) => vec![CREATE_PACKAGE.to_owned()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|p| match p.as_str() {
                Some(p @ (CREATE_PACKAGE | CREATE_STAGED_PACKAGE)) => Ok(p.to_owned()),
                _ => Err(TrustError::Invalid(format!(
                    "unknown permission {p}: use {CREATE_PACKAGE} or {CREATE_STAGED_PACKAGE}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(TrustError::Invalid("permissions must be an array".into())),
    };
    if permissions.is_empty() {
        return Err(TrustError::Invalid(format!(
            "permissions must name {CREATE_PACKAGE} and/or {CREATE_STAGED_PACKAGE}"
        )));
    }
    Ok(TrustedPublisherRow {
        id: uuid::Uuid::new_v4().to_string(),
        package: package.map(str::to_owned),
        org: org.map(str::to_owned),
        kind: kind.to_owned(),
        claims,
        permissions,
        created_by,
        created_at: now,
    })
}

/// The answer npm prints for one configuration (`npm trust list`, and after `npm trust github`).
pub fn to_npm(row: &TrustedPublisherRow) -> Value {
    json!({
        "id": row.id,
        "type": row.kind,
        "claims": row.claims,
        "permissions": row.permissions,
    })
}
