//! From a provider identity to a Packr user: an identity already linked signs in as its user;
//! otherwise a user with the same verified e-mail is linked, or (when allowed) a user is created.
//! Each sign-in is one transaction, audit events included.

use serde_json::json;

use super::{Identity, OAuthError};
use crate::audit::AuditEvent;
use crate::auth::accounts::validate_user_name;
use crate::auth::{Origin, UserRole};
use crate::clock;
use crate::store::sqlite::audit;
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
}

/// Signs `identity` of `provider` in, linking or creating its user as the rules allow.
pub async fn sign_in(
    db: &Sqlite,
    provider: &'static str,
    provider_name: &str,
    identity: Identity,
    auto_create: bool,
    origin: &Origin,
) -> Result<UserRow, OAuthError> {
    let origin = origin.clone();
    let email = identity.email.clone();
    let outcome = db
        .write(move |tx| link(tx, provider, &identity, auto_create, &origin))
        .await?;
    match outcome {
        Outcome::SignedIn(user) => Ok(user),
        Outcome::NoAccount => Err(OAuthError::NoAccount {
            provider: provider_name.to_owned(),
            email,
        }),
        Outcome::SeveralAccounts => Err(OAuthError::SeveralAccounts {
            provider: provider_name.to_owned(),
            email: email.unwrap_or_default(),
        }),
        Outcome::NoFreeName => Err(OAuthError::Internal(
            "no free user name for a new account".into(),
        )),
    }
}

fn link(
    tx: &rusqlite::Transaction<'_>,
    provider: &'static str,
    identity: &Identity,
    auto_create: bool,
    origin: &Origin,
) -> Result<Outcome, StoreError> {
    let now = clock::now_ms();
    let email = identity.email.as_deref().unwrap_or("");
    let linked = match rows::identity_user(tx, provider, &identity.subject)? {
        Some(user_id) => users::find_by_id(tx, user_id)?,
        None => None,
    };
    let user = match linked {
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
                Some(user) => user,
                None if auto_create => {
                    let Some(user) = create_user(tx, identity, now)? else {
                        return Ok(Outcome::NoFreeName);
                    };
                    let details = json!({ "via": provider });
                    audit::record(tx, &by(&user, origin, "user.created", details))?;
                    user
                }
                None => return Ok(Outcome::NoAccount),
            };
            let details =
                json!({ "provider": provider, "subject": identity.subject, "email": email });
            audit::record(tx, &by(&user, origin, "user.identity.linked", details))?;
            user
        }
    };
    rows::upsert_identity(tx, provider, &identity.subject, user.id, email, now)?;
    audit::record(
        tx,
        &by(&user, origin, "user.login", json!({ "via": provider })),
    )?;
    Ok(Outcome::SignedIn(user))
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
