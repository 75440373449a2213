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
use crate::store::LoginStore;
use crate::store::accounts::UserRow;
use crate::store::logins::{
    IdentityFacts, IdentitySignIn, LinkDecision, LinkRefusal, LinkStep, NewAccount, SignInOutcome,
};

/// Longest base of a generated user name, leaving room for a `-NNN` suffix.
const NAME_BASE_LENGTH: usize = 56;
/// Suffixes tried before giving up on a unique name.
const NAME_ATTEMPTS: u32 = 1000;

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
    store: &dyn LoginStore,
    provider: &'static str,
    provider_name: &str,
    identity: Identity,
    rules: &LinkRules,
    signed_in: Option<i64>,
    origin: &Origin,
) -> Result<UserRow, OAuthError> {
    let email = identity.email.clone();
    let request = IdentitySignIn {
        provider: provider.to_owned(),
        subject: identity.subject.clone(),
        email: identity.email.clone(),
    };
    let (subject, link_rules) = (identity.subject.clone(), rules.clone());
    let decide =
        Box::new(move |facts: &IdentityFacts| decide(facts, &identity, &link_rules, signed_in));
    let origin = origin.clone();
    let event = Box::new(move |user: &UserRow, step: LinkStep| {
        let (action, details) = match step {
            LinkStep::Created => ("user.created", json!({ "via": provider })),
            LinkStep::Linked => (
                "user.identity.linked",
                json!({
                    "provider": provider,
                    "subject": subject,
                    "email": email_or_empty(&email),
                }),
            ),
            LinkStep::SignedIn => ("user.login", json!({ "via": provider })),
        };
        AuditEvent::by_user(user.id, &user.name, &origin, action, details)
    });
    let provider = provider_name.to_owned();
    let email = request.email.clone();
    match store.sign_in_identity(request, decide, event).await? {
        SignInOutcome::SignedIn(user) => Ok(user),
        SignInOutcome::NoFreeName => Err(OAuthError::Internal(
            "no free user name for a new account".into(),
        )),
        SignInOutcome::Refused(refusal) => Err(match refusal {
            LinkRefusal::NoAccount => OAuthError::NoAccount { provider, email },
            LinkRefusal::SeveralAccounts => OAuthError::SeveralAccounts {
                provider,
                email: email.unwrap_or_default(),
            },
            LinkRefusal::AdminNeedsLink => OAuthError::AdminNeedsLink {
                provider,
                email: email.unwrap_or_default(),
            },
            LinkRefusal::DomainNotAllowed => OAuthError::DomainNotAllowed {
                provider,
                email,
                domains: rules.allowed_domains.join(", "),
            },
            LinkRefusal::Disabled(name) => OAuthError::Disabled(name),
        }),
    }
}

fn email_or_empty(email: &Option<String>) -> &str {
    email.as_deref().unwrap_or("")
}

/// How `identity` signs in, given what the store knows about it: as its linked user; else as the
/// one user with its verified e-mail (never an admin's unless that admin is `signed_in`); else
/// as a new user when `rules` allow. A disabled account never signs in.
fn decide(
    facts: &IdentityFacts,
    identity: &Identity,
    rules: &LinkRules,
    signed_in: Option<i64>,
) -> LinkDecision {
    if let Some(linked) = &facts.linked {
        return if linked.enabled {
            LinkDecision::SignIn(linked.user.clone())
        } else {
            LinkDecision::Refuse(LinkRefusal::Disabled(linked.user.name.clone()))
        };
    }
    match facts.same_email.as_slice() {
        [] if !rules.auto_create => LinkDecision::Refuse(LinkRefusal::NoAccount),
        [] if !rules.may_create(identity.email.as_deref()) => {
            LinkDecision::Refuse(LinkRefusal::DomainNotAllowed)
        }
        [] => LinkDecision::Create(new_account(identity)),
        [matched]
            if user_role(&matched.user) == UserRole::Admin
                && signed_in != Some(matched.user.id) =>
        {
            LinkDecision::Refuse(LinkRefusal::AdminNeedsLink)
        }
        [matched] if !matched.enabled => {
            LinkDecision::Refuse(LinkRefusal::Disabled(matched.user.name.clone()))
        }
        [matched] => LinkDecision::Link(matched.user.clone()),
        _ => LinkDecision::Refuse(LinkRefusal::SeveralAccounts),
    }
}

/// A maintainer without a password (like `npm adduser` sign-up), named after the provider's
/// user name or the e-mail's local part, with a numeric suffix when taken.
fn new_account(identity: &Identity) -> NewAccount {
    let base = name_base(identity);
    let names = (1..=NAME_ATTEMPTS).map(move |attempt| {
        if attempt == 1 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        }
    });
    NewAccount {
        names: Box::new(names),
        email: email_or_empty(&identity.email).to_owned(),
        role: UserRole::Maintainer.as_str().to_owned(),
    }
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
