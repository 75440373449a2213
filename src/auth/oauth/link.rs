//! From a provider identity to a Packr user: an identity already linked signs in as its user;
//! otherwise a user with the same verified e-mail is linked, or (when allowed) a user is created.
//! Each sign-in is one transaction, audit events included.
//!
//! The rules: a verified e-mail alone links an identity to a maintainer or reader. It never
//! links one to an admin: whoever controls that address at some provider (a recycled mailbox,
//! a provider that verifies loosely) would otherwise hold the registry. An admin links a provider
//! explicitly, by completing the provider sign-in while signed in to Packr with their password
//! in the same browser (and the verified e-mail must still match). Accounts created on sign-in
//! are limited to `PACKR_OAUTH_ALLOWED_DOMAINS` when it is set. A disabled account never signs in.

use serde_json::json;

use super::{Identity, OAuthError};
use crate::audit::AuditEvent;
use crate::auth::accounts::{user_role, validate_user_name};
use crate::auth::{Origin, UserRole};
use crate::clock;
use crate::store::sqlite::events;
use crate::store::sqlite::oauth as rows;
use crate::store::sqlite::users::{self, UserRow};
use crate::store::{Sqlite, StoreError};

/// Longest base of a generated user name, leaving room for a `-NNN` suffix.
const NAME_BASE_LENGTH: usize = 56;
/// Suffixes tried before giving up on a unique name.
const NAME_ATTEMPTS: u32 = 1000;

/// How a sign-in ended inside its transaction.
enum Outcome {
    SignedIn(UserRow),
    NoAccount,
    SeveralAccounts,
    NoFreeName,
    AdminNeedsLink,
    DomainNotAllowed,
    Disabled(String),
}

/// What decides how an identity that is not linked yet may sign in.
#[derive(Debug, Clone, Default)]
pub struct LinkRules {
    /// Create a user for an identity that matches none.
    pub auto_create: bool,
    /// E-mail domains (lower-case) new users may have; empty for any.
    pub allowed_domains: Vec<String>,
}

impl LinkRules {
    /// Whether an account may be created for a verified `email` (`None`: the provider gave none).
    fn may_create(&self, email: Option<&str>) -> bool {
        if self.allowed_domains.is_empty() {
            return true;
        }
        let domain = email
            .and_then(|email| email.rsplit_once('@'))
            .map(|(_, d)| d);
        domain.is_some_and(|domain| {
            self.allowed_domains
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(domain))
        })
    }
}

/// Signs `identity` of `provider` in, linking or creating its user as `rules` allow;
/// `signed_in` is the Packr user already signed in to this browser, if any (the explicit link an
/// admin account needs).
pub async fn sign_in(
    db: &Sqlite,
    provider: &'static str,
    provider_name: &str,
    identity: Identity,
    rules: &LinkRules,
    signed_in: Option<i64>,
    origin: &Origin,
) -> Result<UserRow, OAuthError> {
    let origin = origin.clone();
    let email = identity.email.clone();
    let link_rules = rules.clone();
    let outcome = db
        .write(move |tx| link(tx, provider, &identity, &link_rules, signed_in, &origin))
        .await?;
    let provider = provider_name.to_owned();
    match outcome {
        Outcome::SignedIn(user) => Ok(user),
        Outcome::NoAccount => Err(OAuthError::NoAccount { provider, email }),
        Outcome::SeveralAccounts => Err(OAuthError::SeveralAccounts {
            provider,
            email: email.unwrap_or_default(),
        }),
        Outcome::NoFreeName => Err(OAuthError::Internal(
            "no free user name for a new account".into(),
        )),
        Outcome::AdminNeedsLink => Err(OAuthError::AdminNeedsLink {
            provider,
            email: email.unwrap_or_default(),
        }),
        Outcome::DomainNotAllowed => Err(OAuthError::DomainNotAllowed {
            provider,
            email,
            domains: rules.allowed_domains.join(", "),
        }),
        Outcome::Disabled(name) => Err(OAuthError::Disabled(name)),
    }
}

fn link(
    tx: &rusqlite::Transaction<'_>,
    provider: &'static str,
    identity: &Identity,
    rules: &LinkRules,
    signed_in: Option<i64>,
    origin: &Origin,
) -> Result<Outcome, StoreError> {
    let now = clock::now_ms();
    let email = identity.email.as_deref().unwrap_or("");
    let linked = match rows::identity_user(tx, provider, &identity.subject)? {
        Some(user_id) => users::find_by_id(tx, user_id)?,
        None => None,
    };
    let user = match linked {
        Some(user) if !is_enabled(tx, &user)? => return Ok(Outcome::Disabled(user.name)),
        Some(user) => user,
        None => {
            let matched = match &identity.email {
                Some(email) => match rows::users_with_email(tx, email)?.as_slice() {
                    [] => None,
                    [id] => users::find_by_id(tx, *id)?,
                    _ => return Ok(Outcome::SeveralAccounts),
                },
                None => None,
            };
            let user = match matched {
                Some(user) if user_role(&user) == UserRole::Admin && signed_in != Some(user.id) => {
                    return Ok(Outcome::AdminNeedsLink);
                }
                Some(user) if !is_enabled(tx, &user)? => return Ok(Outcome::Disabled(user.name)),
                Some(user) => user,
                None if rules.auto_create => {
                    if !rules.may_create(identity.email.as_deref()) {
                        return Ok(Outcome::DomainNotAllowed);
                    }
                    let Some(user) = create_user(tx, identity, now)? else {
                        return Ok(Outcome::NoFreeName);
                    };
                    let details = json!({ "via": provider });
                    events::record(tx, &by(&user, origin, "user.created", details))?;
                    user
                }
                None => return Ok(Outcome::NoAccount),
            };
            let details =
                json!({ "provider": provider, "subject": identity.subject, "email": email });
            events::record(tx, &by(&user, origin, "user.identity.linked", details))?;
            user
        }
    };
    rows::upsert_identity(tx, provider, &identity.subject, user.id, email, now)?;
    events::record(
        tx,
        &by(&user, origin, "user.login", json!({ "via": provider })),
    )?;
    Ok(Outcome::SignedIn(user))
}

fn is_enabled(tx: &rusqlite::Transaction<'_>, user: &UserRow) -> Result<bool, StoreError> {
    Ok(users::standing(tx, user.id)?.is_some_and(|s| s.disabled_at.is_none()))
}

fn by(
    user: &UserRow,
    origin: &Origin,
    action: &'static str,
    details: serde_json::Value,
) -> AuditEvent {
    AuditEvent::by_user(user.id, &user.name, origin, action, details)
}

/// Creates a maintainer without a password (like `npm adduser` sign-up), named after the
/// provider's user name or the e-mail's local part, with a numeric suffix when taken.
fn create_user(
    tx: &rusqlite::Transaction<'_>,
    identity: &Identity,
    now: i64,
) -> Result<Option<UserRow>, StoreError> {
    let base = name_base(identity);
    let email = identity.email.as_deref().unwrap_or("");
    let role = UserRole::Maintainer.as_str();
    for attempt in 1..=NAME_ATTEMPTS {
        let name = if attempt == 1 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        if let Some(user) = rows::insert_user_without_password(tx, &name, email, role, now)? {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// A valid user name from the identity: its user name, else its e-mail's local part, else `user`.
fn name_base(identity: &Identity) -> String {
    let local_part = identity
        .email
        .as_deref()
        .and_then(|email| email.split('@').next());
    [identity.username.as_deref(), local_part]
        .into_iter()
        .flatten()
        .map(sanitize)
        .find(|name| validate_user_name(name).is_ok())
        .unwrap_or_else(|| "user".to_owned())
}

/// Replaces characters user names may not hold with `-` and trims what may not lead.
fn sanitize(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.trim_start_matches(['.', '-'])
        .chars()
        .take(NAME_BASE_LENGTH)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(username: Option<&str>, email: Option<&str>) -> Identity {
        Identity {
            subject: "1".into(),
            email: email.map(str::to_owned),
            username: username.map(str::to_owned),
        }
    }

    #[test]
    fn allowed_domains_match_the_whole_domain_without_case() {
        let rules = LinkRules {
            auto_create: true,
            allowed_domains: vec!["example.com".into()],
        };
        assert!(rules.may_create(Some("jane@Example.COM")));
        assert!(!rules.may_create(Some("jane@evil-example.com")));
        assert!(!rules.may_create(Some("jane@example.com.evil.test")));
        assert!(!rules.may_create(Some("jane@sub.example.com")));
        assert!(!rules.may_create(None));
        assert!(LinkRules::default().may_create(None));
    }

    #[test]
    fn new_names_come_from_the_user_name_then_the_email() {
        assert_eq!(name_base(&identity(Some("octocat"), None)), "octocat");
        assert_eq!(name_base(&identity(Some("Jane Doe"), None)), "Jane-Doe");
        assert_eq!(
            name_base(&identity(Some("..."), Some("jane.doe@example.test"))),
            "jane.doe"
        );
        assert_eq!(name_base(&identity(None, None)), "user");
        assert_eq!(name_base(&identity(Some(&"x".repeat(80)), None)).len(), 56);
    }
}
