//! Queries on `oauth_states` (sign-ins in progress) and `user_identities` (provider identities
//! linked to users).

use rusqlite::{Connection, OptionalExtension, params};

use super::events;
use crate::clock;
use crate::store::StoreError;
use crate::store::accounts::UserRow;
use crate::store::logins::{
    DecideLink, IdentityFacts, IdentitySignIn, KnownUser, LinkDecision, LinkEvent, LinkStep,
    NewAccount, SignInOutcome,
};

pub use crate::store::logins::StateRow;

/// Stores a sign-in in progress, dropping those that expired before `now`.
pub fn insert_state(conn: &Connection, row: &StateRow, now: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM oauth_states WHERE expires_at < ?1", [now])?;
    conn.execute(
        "INSERT INTO oauth_states (state_hash, provider, pkce_verifier, nonce, return_code,
             redirect_uri, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            row.state_hash,
            row.provider,
            row.pkce_verifier,
            row.nonce,
            row.return_code,
            row.redirect_uri,
            row.created_at,
            row.expires_at,
        ],
    )?;
    Ok(())
}

/// Removes and returns the sign-in with this state hash: each state is used at most once.
pub fn take_state(conn: &Connection, state_hash: &str) -> Result<Option<StateRow>, StoreError> {
    Ok(conn
        .query_row(
            "DELETE FROM oauth_states WHERE state_hash = ?1
             RETURNING state_hash, provider, pkce_verifier, nonce, return_code, redirect_uri,
                 created_at, expires_at",
            [state_hash],
            |row| {
                Ok(StateRow {
                    state_hash: row.get(0)?,
                    provider: row.get(1)?,
                    pkce_verifier: row.get(2)?,
                    nonce: row.get(3)?,
                    return_code: row.get(4)?,
                    redirect_uri: row.get(5)?,
                    created_at: row.get(6)?,
                    expires_at: row.get(7)?,
                })
            },
        )
        .optional()?)
}

/// The user an identity is linked to.
pub fn identity_user(
    conn: &Connection,
    provider: &str,
    subject: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT user_id FROM user_identities WHERE provider = ?1 AND subject = ?2",
            [provider, subject],
            |row| row.get(0),
        )
        .optional()?)
}

/// Links an identity to a user, or records a new sign-in of a linked one.
pub fn upsert_identity(
    conn: &Connection,
    provider: &str,
    subject: &str,
    user_id: i64,
    email: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO user_identities (provider, subject, user_id, email, created_at, last_login_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT(provider, subject) DO UPDATE SET email = excluded.email,
             last_login_at = excluded.last_login_at",
        params![provider, subject, user_id, email, now],
    )?;
    Ok(())
}

/// The ids of users whose e-mail is `email`, ignoring ASCII case.
pub fn users_with_email(conn: &Connection, email: &str) -> Result<Vec<i64>, StoreError> {
    let mut statement =
        conn.prepare("SELECT id FROM users WHERE email = ?1 COLLATE NOCASE ORDER BY id")?;
    let ids = statement
        .query_map([email], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Creates a user without a local password; `None` when the name is taken.
pub fn insert_user_without_password(
    conn: &Connection,
    name: &str,
    email: &str,
    role: &str,
    now: i64,
) -> Result<Option<UserRow>, StoreError> {
    let id: Option<i64> = conn
        .query_row(
            "INSERT INTO users (name, email, password_hash, role, created_at)
             VALUES (?1, ?2, NULL, ?3, ?4)
             ON CONFLICT DO NOTHING RETURNING id",
            params![name, email, role, now],
            |row| row.get(0),
        )
        .optional()?;
    Ok(id.map(|id| UserRow {
        id,
        name: name.to_owned(),
        email: email.to_owned(),
        password_hash: None,
        role: role.to_owned(),
    }))
}

/// A user and whether it is enabled, by id.
pub fn known_user(conn: &Connection, id: i64) -> Result<Option<KnownUser>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, email, password_hash, role, disabled_at FROM users WHERE id = ?1",
            [id],
            |row| {
                Ok(KnownUser {
                    user: UserRow {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        email: row.get(2)?,
                        password_hash: row.get(3)?,
                        role: row.get(4)?,
                    },
                    enabled: row.get::<_, Option<i64>>(5)?.is_none(),
                })
            },
        )
        .optional()?)
}

/// What decides how `identity` signs in.
fn facts(conn: &Connection, identity: &IdentitySignIn) -> Result<IdentityFacts, StoreError> {
    let linked = match identity_user(conn, &identity.provider, &identity.subject)? {
        Some(user_id) => known_user(conn, user_id)?,
        None => None,
    };
    let mut same_email = Vec::new();
    if let (None, Some(email)) = (&linked, &identity.email) {
        for id in users_with_email(conn, email)? {
            same_email.extend(known_user(conn, id)?);
        }
    }
    Ok(IdentityFacts { linked, same_email })
}

/// Creates a user under the first free name of `new`.
fn create_user(
    conn: &Connection,
    new: NewAccount,
    now: i64,
) -> Result<Option<UserRow>, StoreError> {
    for name in new.names {
        if let Some(user) = insert_user_without_password(conn, &name, &new.email, &new.role, now)? {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// Signs an identity in inside the caller's transaction (see
/// [`crate::store::LoginStore::sign_in_identity`]).
pub fn sign_in(
    conn: &Connection,
    identity: &IdentitySignIn,
    decide: DecideLink,
    event: &LinkEvent,
) -> Result<SignInOutcome, StoreError> {
    let now = clock::now_ms();
    let (user, newly_linked) = match decide(&facts(conn, identity)?) {
        LinkDecision::Refuse(refusal) => return Ok(SignInOutcome::Refused(refusal)),
        LinkDecision::SignIn(user) => (user, false),
        LinkDecision::Link(user) => (user, true),
        LinkDecision::Create(new) => {
            let Some(user) = create_user(conn, new, now)? else {
                return Ok(SignInOutcome::NoFreeName);
            };
            events::record(conn, &event(&user, LinkStep::Created))?;
            (user, true)
        }
    };
    if newly_linked {
        events::record(conn, &event(&user, LinkStep::Linked))?;
    }
    let email = identity.email.as_deref().unwrap_or("");
    upsert_identity(
        conn,
        &identity.provider,
        &identity.subject,
        user.id,
        email,
        now,
    )?;
    events::record(conn, &event(&user, LinkStep::SignedIn))?;
    Ok(SignInOutcome::SignedIn(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::SCHEMA).unwrap();
        conn
    }

    fn state(hash: &str, expires_at: i64) -> StateRow {
        StateRow {
            state_hash: hash.into(),
            provider: "oidc".into(),
            pkce_verifier: "v".into(),
            nonce: "n".into(),
            return_code: "BCDF-GHJK".into(),
            redirect_uri: "http://127.0.0.1/api/auth/callback/oidc".into(),
            created_at: 0,
            expires_at,
        }
    }

    #[test]
    fn a_state_is_taken_once_and_expired_ones_are_swept() {
        let conn = db();
        insert_state(&conn, &state("old", 5), 0).unwrap();
        insert_state(&conn, &state("new", 100), 10).unwrap();
        assert!(take_state(&conn, "old").unwrap().is_none());
        let taken = take_state(&conn, "new").unwrap().unwrap();
        assert_eq!(taken.return_code, "BCDF-GHJK");
        assert!(take_state(&conn, "new").unwrap().is_none());
    }

    #[test]
    fn identities_link_once_and_emails_match_without_case() {
        let conn = db();
        let alice =
            insert_user_without_password(&conn, "alice", "Alice@Example.test", "maintainer", 1)
                .unwrap()
                .unwrap();
        assert!(
            insert_user_without_password(&conn, "alice", "", "maintainer", 1)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            users_with_email(&conn, "alice@example.TEST").unwrap(),
            [alice.id]
        );
        assert_eq!(identity_user(&conn, "github", "42").unwrap(), None);
        upsert_identity(&conn, "github", "42", alice.id, "a@x", 2).unwrap();
        upsert_identity(&conn, "github", "42", alice.id, "b@x", 3).unwrap();
        assert_eq!(
            identity_user(&conn, "github", "42").unwrap(),
            Some(alice.id)
        );
        assert_eq!(identity_user(&conn, "gitlab", "42").unwrap(), None);
    }
}
