//! Queries on `users`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::StoreError;

use crate::store::accounts::{NewUser, UserAudit, UserWrite};
pub use crate::store::accounts::{Standing, UserRow};

const COLUMNS: &str = "id, name, email, password_hash, role";

fn from_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        role: row.get(4)?,
    })
}

/// Looks a user up by login name.
pub fn find_by_name(conn: &Connection, name: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE name = ?1");
    Ok(conn.query_row(&sql, [name], from_row).optional()?)
}

/// The name of the account whose name differs from `name` only in case, if there is one. Names
/// are ASCII, so SQLite's `NOCASE` is the whole comparison.
pub fn case_variant(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT name FROM users WHERE name = ?1 COLLATE NOCASE AND name <> ?1 LIMIT 1",
            [name],
            |row| row.get(0),
        )
        .optional()?)
}

/// Looks a user up by id.
pub fn find_by_id(conn: &Connection, id: i64) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// Looks users up by login names, keeping the order given; unknown names are skipped.
pub fn find_many(conn: &Connection, names: &[String]) -> Result<Vec<UserRow>, StoreError> {
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        if let Some(user) = find_by_name(conn, name)? {
            found.push(user);
        }
    }
    Ok(found)
}

/// Creates a user, or updates e-mail, password and role when the name exists; returns its id.
pub fn upsert(
    conn: &Connection,
    name: &str,
    email: &str,
    password_hash: &str,
    role: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let id = conn.query_row(
        "INSERT INTO users (name, email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(name) DO UPDATE SET email = excluded.email,
             password_hash = excluded.password_hash, role = excluded.role
         RETURNING id",
        params![name, email, password_hash, role, now],
        |row| row.get(0),
    )?;
    Ok(id)
}

/// Creates a user; `None` when the name is taken (exactly or, with the index of migration 6,
/// in another case).
pub fn insert(
    conn: &Connection,
    name: &str,
    email: &str,
    password_hash: &str,
    role: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let id = conn
        .query_row(
            "INSERT INTO users (name, email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING RETURNING id",
            params![name, email, password_hash, role, now],
            |row| row.get(0),
        )
        .optional()?;
    Ok(id)
}

/// The standing of a user, by id.
pub fn standing(conn: &Connection, id: i64) -> Result<Option<Standing>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT disabled_at, session_generation FROM users WHERE id = ?1",
            [id],
            |row| {
                Ok(Standing {
                    disabled_at: row.get(0)?,
                    session_generation: row.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Disables (`Some(now)`) or enables (`None`) a user, ending its sessions either way; answers
/// the user's standing before, `None` for an unknown id. A second disable keeps the first time.
pub fn set_disabled(
    conn: &Connection,
    id: i64,
    disabled_at: Option<i64>,
) -> Result<Option<Standing>, StoreError> {
    let before = standing(conn, id)?;
    if before.is_some() {
        conn.execute(
            "UPDATE users SET session_generation = session_generation + 1,
                 disabled_at = CASE WHEN ?2 IS NULL THEN NULL ELSE COALESCE(disabled_at, ?2) END
             WHERE id = ?1",
            params![id, disabled_at],
        )?;
    }
    Ok(before)
}

/// Ends every browser session of a user (a password reset).
pub fn end_sessions(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET session_generation = session_generation + 1 WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

/// A value that changes whenever any account's standing or role may have changed: every such
/// change bumps a session generation, and adding or removing a user changes the count.
pub fn standing_stamp(conn: &Connection) -> Result<(i64, i64), StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(session_generation), 0) FROM users",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}

/// [`crate::store::AccountStore::put_user`] inside the writer's transaction.
fn put(conn: &Connection, user: &NewUser) -> Result<UserWrite, StoreError> {
    if let Some(existing) = case_variant(conn, &user.name)? {
        return Ok(UserWrite::CaseVariant(existing));
    }
    let id = upsert(
        conn,
        &user.name,
        &user.email,
        &user.password_hash,
        &user.role,
        user.now,
    )?;
    end_sessions(conn, id)?;
    Ok(UserWrite::Written(id))
}

/// [`crate::store::AccountStore::create_user`] inside the writer's transaction.
fn create(conn: &Connection, user: &NewUser) -> Result<UserWrite, StoreError> {
    if let Some(existing) = case_variant(conn, &user.name)? {
        return Ok(UserWrite::CaseVariant(existing));
    }
    let id = insert(
        conn,
        &user.name,
        &user.email,
        &user.password_hash,
        &user.role,
        user.now,
    )?;
    Ok(id.map_or(UserWrite::Exists, UserWrite::Written))
}

#[async_trait::async_trait]
impl crate::store::AccountStore for super::Sqlite {
    async fn find_user_by_name(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| find_by_name(conn, &name)).await
    }

    async fn find_user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        self.read(move |conn| find_by_id(conn, id)).await
    }

    async fn put_user(&self, user: NewUser) -> Result<UserWrite, StoreError> {
        self.write(move |tx| put(tx, &user)).await
    }

    async fn create_user(&self, user: NewUser) -> Result<UserWrite, StoreError> {
        self.write(move |tx| create(tx, &user)).await
    }

    async fn user_standing(&self, id: i64) -> Result<Option<Standing>, StoreError> {
        self.read(move |conn| standing(conn, id)).await
    }

    async fn set_user_disabled(
        &self,
        name: &str,
        disabled_at: Option<i64>,
        audit: UserAudit,
    ) -> Result<Option<bool>, StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let Some(user) = find_by_name(tx, &name)? else {
                return Ok(None);
            };
            let before = set_disabled(tx, user.id, disabled_at)?;
            let changed = before.is_some_and(|b| b.disabled_at.is_some() != disabled_at.is_some());
            if changed {
                super::events::record(tx, &audit(&user))?;
            }
            Ok(Some(changed))
        })
        .await
    }

    async fn standing_stamp(&self) -> Result<(i64, i64), StoreError> {
        self.read(standing_stamp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::apply(&mut conn, super::super::SCHEMA).unwrap();
        conn
    }

    #[test]
    fn disabling_and_resets_end_sessions_and_move_the_stamp() {
        let conn = db();
        let id = upsert(&conn, "alice", "", "phc", "maintainer", 1).unwrap();
        let fresh = Standing {
            disabled_at: None,
            session_generation: 0,
        };
        assert_eq!(standing(&conn, id).unwrap(), Some(fresh));
        let stamp = standing_stamp(&conn).unwrap();

        assert_eq!(set_disabled(&conn, id, Some(10)).unwrap(), Some(fresh));
        let disabled = standing(&conn, id).unwrap().unwrap();
        assert_eq!(
            (disabled.disabled_at, disabled.session_generation),
            (Some(10), 1)
        );
        assert_ne!(standing_stamp(&conn).unwrap(), stamp);
        // A second disable keeps the first time.
        set_disabled(&conn, id, Some(20)).unwrap();
        assert_eq!(standing(&conn, id).unwrap().unwrap().disabled_at, Some(10));

        set_disabled(&conn, id, None).unwrap();
        end_sessions(&conn, id).unwrap();
        let enabled = standing(&conn, id).unwrap().unwrap();
        assert_eq!((enabled.disabled_at, enabled.session_generation), (None, 4));
        assert_eq!(set_disabled(&conn, id + 1, Some(1)).unwrap(), None);
        assert_eq!(standing(&conn, id + 1).unwrap(), None);
    }

    #[test]
    fn a_name_that_differs_only_in_case_is_taken() {
        let conn = db();
        insert(&conn, "alice", "", "h", "maintainer", 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            case_variant(&conn, "ALICE").unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(case_variant(&conn, "alice").unwrap(), None);
        assert_eq!(case_variant(&conn, "bob").unwrap(), None);
        assert_eq!(
            insert(&conn, "Alice", "", "h", "maintainer", 0).unwrap(),
            None
        );
        // OAuth auto-create moves on to its next candidate name instead.
        let oauth =
            super::super::oauth::insert_user_without_password(&conn, "Alice", "", "reader", 0);
        assert!(oauth.unwrap().is_none());
    }
}
