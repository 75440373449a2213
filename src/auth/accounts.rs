//! User accounts: creation, password login and look-ups.

use serde_json::json;

use super::password::Passwords;
use super::{AuthError, UserRole};
use crate::audit::AuditEvent;
use crate::clock;
use crate::store::Store;
use crate::store::accounts::{NewUser, Standing, UserRow, UserWrite};

/// The account service.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    passwords: Passwords,
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
    /// The account service on a metadata store, hashing one password at a time (the command
    /// line's pace; the server raises it with [`Accounts::with_password_concurrency`]).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            passwords: Passwords::new(1),
        }
    }

    /// The same service running at most `concurrency` Argon2 hashes and checks at once
    /// (`PACKR_PASSWORD_CONCURRENCY`).
    pub fn with_password_concurrency(self, concurrency: usize) -> Self {
        Self {
            passwords: Passwords::new(concurrency),
            ..self
        }
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
        let hash = self.passwords.hash(password).await?;
        let user = NewUser {
            name: name.to_owned(),
            email: email.to_owned(),
            password_hash: hash,
            role: role.as_str().to_owned(),
            now: clock::now_ms(),
        };
        match self.store.put_user(user.clone()).await? {
            UserWrite::Written(id) => Ok(UserRow {
                id,
                name: user.name,
                email: user.email,
                password_hash: Some(user.password_hash),
                role: user.role,
            }),
            UserWrite::CaseVariant(existing) => Err(name_taken(&existing, name)),
            UserWrite::Exists => Err(AuthError::Internal(format!(
                "the store refused to update user {name}"
            ))),
        }
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
        let hash = self.passwords.hash(password).await?;
        let user = NewUser {
            name: name.to_owned(),
            email: email.to_owned(),
            password_hash: hash,
            role: UserRole::Maintainer.as_str().to_owned(),
            now: clock::now_ms(),
        };
        match self.store.create_user(user).await? {
            UserWrite::Written(_) => self
                .find(name)
                .await?
                .ok_or(AuthError::NoSuchUser(name.to_owned())),
            UserWrite::CaseVariant(existing) => Err(name_taken(&existing, name)),
            UserWrite::Exists => Err(AuthError::BadPassword),
        }
    }

    /// Checks a name and password. An unknown name, or an account without a local password,
    /// gets [`AuthError::BadPassword`] after the same Argon2 work as a wrong password, so that
    /// neither the answer nor its time tells which names exist.
    pub async fn login(&self, name: &str, password: &str) -> Result<UserRow, AuthError> {
        let user = self.find(name).await?;
        let Some((user, phc)) = user.and_then(|u| u.password_hash.clone().map(|phc| (u, phc)))
        else {
            self.passwords.verify_nothing(password.to_owned()).await?;
            return Err(AuthError::BadPassword);
        };
        if self.passwords.verify(password.to_owned(), phc).await? {
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
        Ok(self.store.user_standing(user_id).await?)
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
        let action = if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        let audit = Box::new(move |user: &UserRow| {
            let details = json!({ "user": user.name, "user_id": user.id, "via": via });
            AuditEvent::by_operator(action, details)
        });
        let changed = self
            .store
            .set_user_disabled(name, disabled.then(clock::now_ms), audit)
            .await?;
        changed.ok_or_else(|| AuthError::NoSuchUser(name.to_owned()))
    }

    /// Looks a user up by id.
    pub async fn find_by_id(&self, id: i64) -> Result<Option<UserRow>, AuthError> {
        Ok(self.store.find_user_by_id(id).await?)
    }

    /// Looks a user up by name.
    pub async fn find(&self, name: &str) -> Result<Option<UserRow>, AuthError> {
        Ok(self.store.find_user_by_name(name).await?)
    }
}

/// The refusal of `wanted` when `existing` differs from it only in case.
fn name_taken(existing: &str, wanted: &str) -> AuthError {
    AuthError::Invalid(format!(
        "a user named `{existing}` already exists, and user names are unique regardless of case: choose a name other than `{wanted}`"
    ))
}

/// The account's role, falling back to reader for an unknown stored value.
pub fn user_role(user: &UserRow) -> UserRole {
    UserRole::parse(&user.role).unwrap_or(UserRole::Reader)
}
