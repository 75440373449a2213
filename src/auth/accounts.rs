//! User accounts: creation, password login and look-ups.

use serde_json::json;

use super::{AuthError, UserRole, password};
use crate::audit::AuditEvent;
use crate::clock;
use crate::store::Sqlite;
use crate::store::sqlite::audit;
use crate::store::sqlite::users::{self, Standing, UserRow};

/// The account service.
#[derive(Clone)]
pub struct Accounts {
    db: Sqlite,
}

/// Checks a login name: 1-64 characters of `a-z A-Z 0-9 . _ -`, not starting with `.` or `-`.
pub fn validate_user_name(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "user name `{name}` must be 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
        )))
    }
}

fn validate_password(password: &str) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::Invalid("the password must not be empty".into()));
    }
    Ok(())
}

impl Accounts {
    /// The account service on a metadata store.
    pub fn new(db: Sqlite) -> Self {
        Self { db }
    }

    /// Creates a user, or resets the e-mail, password and role of an existing one.
    pub async fn put_user(
        &self,
        name: &str,
        email: &str,
        password: String,
        role: UserRole,
    ) -> Result<UserRow, AuthError> {
        validate_user_name(name)?;
        validate_password(&password)?;
        let hash = password::hash(password).await?;
        let (name, email) = (name.to_owned(), email.to_owned());
        let user = self
            .db
            .write(move |tx| {
                let id = users::upsert(tx, &name, &email, &hash, role.as_str(), clock::now_ms())?;
                // A new password ends every browser session signed in with the old one.
                users::end_sessions(tx, id)?;
                Ok(UserRow {
                    id,
                    name,
                    email,
                    password_hash: Some(hash),
                    role: role.as_str().to_owned(),
                })
            })
            .await?;
        Ok(user)
    }

    /// Creates an account through `npm adduser` (when sign-up is open) as a reader-less maintainer.
    pub async fn sign_up(
        &self,
        name: &str,
        email: &str,
        password: String,
    ) -> Result<UserRow, AuthError> {
        validate_user_name(name)?;
        validate_password(&password)?;
        let hash = password::hash(password).await?;
        let (name_owned, email) = (name.to_owned(), email.to_owned());
        let role = UserRole::Maintainer.as_str();
        let id = self
            .db
            .write(move |tx| users::insert(tx, &name_owned, &email, &hash, role, clock::now_ms()))
            .await?;
        match id {
            Some(_) => self
                .find(name)
                .await?
                .ok_or(AuthError::NoSuchUser(name.to_owned())),
            None => Err(AuthError::BadPassword),
        }
    }

    /// Checks a name and password; an unknown name is [`AuthError::NoSuchUser`].
    pub async fn login(&self, name: &str, password: &str) -> Result<UserRow, AuthError> {
        let user = self
            .find(name)
            .await?
            .ok_or_else(|| AuthError::NoSuchUser(name.to_owned()))?;
        let Some(phc) = user.password_hash.clone() else {
            return Err(AuthError::BadPassword);
        };
        if password::verify(password.to_owned(), phc).await? {
            self.require_enabled(user).await
        } else {
            Err(AuthError::BadPassword)
        }
    }

    /// Passes `user` through unless the account is disabled.
    async fn require_enabled(&self, user: UserRow) -> Result<UserRow, AuthError> {
        match self.standing(user.id).await? {
            Some(standing) if standing.disabled_at.is_none() => Ok(user),
            Some(_) => Err(AuthError::AccountDisabled(user.name)),
            None => Err(AuthError::NoSuchUser(user.name)),
        }
    }

    /// Whether a user's tokens and sessions work, and the generation its sessions carry.
    pub async fn standing(&self, user_id: i64) -> Result<Option<Standing>, AuthError> {
        Ok(self
            .db
            .read(move |conn| users::standing(conn, user_id))
            .await?)
    }

    /// Disables (`disabled`) or enables a user: a disabled user's tokens, sessions and logins
    /// stop working (a running server forgets the tokens it checked within a second, see
    /// `auth::account_watch`), and either change ends the user's sessions. Audited as done by
    /// `via` (the command that did it); answers whether anything changed.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        via: &'static str,
    ) -> Result<bool, AuthError> {
        let name_owned = name.to_owned();
        let changed = self
            .db
            .write(move |tx| {
                let Some(user) = users::find_by_name(tx, &name_owned)? else {
                    return Ok(None);
                };
                let now = clock::now_ms();
                let before = users::set_disabled(tx, user.id, disabled.then_some(now))?;
                let changed = before.is_some_and(|b| b.disabled_at.is_some() != disabled);
                if changed {
                    let action = if disabled {
                        "user.disabled"
                    } else {
                        "user.enabled"
                    };
                    let details = json!({ "user": user.name, "user_id": user.id, "via": via });
                    audit::record(tx, &AuditEvent::by_operator(action, details))?;
                }
                Ok(Some(changed))
            })
            .await?;
        changed.ok_or_else(|| AuthError::NoSuchUser(name.to_owned()))
    }

    /// Looks a user up by id.
    pub async fn find_by_id(&self, id: i64) -> Result<Option<UserRow>, AuthError> {
        Ok(self
            .db
            .read(move |conn| users::find_by_id(conn, id))
            .await?)
    }

    /// Looks a user up by name.
    pub async fn find(&self, name: &str) -> Result<Option<UserRow>, AuthError> {
        let name = name.to_owned();
        Ok(self
            .db
            .read(move |conn| users::find_by_name(conn, &name))
            .await?)
    }
}

/// The account's role, falling back to reader for an unknown stored value.
pub fn user_role(user: &UserRow) -> UserRole {
    UserRole::parse(&user.role).unwrap_or(UserRole::Reader)
}
