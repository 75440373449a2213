//! PostgreSQL schema versions. `schema.sql` holds the schema of version [`BASELINE`]; [`STEPS`]
//! holds each later version's changes (`schema_vN.sql`), with the version it brings the database
//! to. A new database gets `schema.sql` and then every step, an existing one the steps it lacks,
//! so both end up with the same schema by construction. The versions applied are rows of
//! `schema_version`, one per version.
//!
//! Every run is one transaction that first takes a transaction-scoped advisory lock, so
//! instances starting at once queue behind each other: the first migrates, the others then find
//! the work done. PostgreSQL's DDL is transactional, so a failed or interrupted run leaves the
//! database as it was, and the next start tries again. A database whose version is newer than
//! this binary knows is refused: an older Packr could misread or damage a newer schema.
//!
//! To change the schema: write the change as `schema_vN.sql` (SQL that brings a database of the
//! previous version there) and append `(N, include_str!("schema_vN.sql"))` to [`STEPS`], `N` one
//! more than the last version.

use tokio_postgres::Client;

use super::PgError;

/// The version `schema.sql` was first released as.
pub const BASELINE: i64 = 1;

/// One schema change and the version it brings the database to.
type Step = (i64, &'static str);

/// Every change after [`BASELINE`], in version order.
const STEPS: &[Step] = &[
    (2, include_str!("schema_v2.sql")),
    (3, include_str!("schema_v3.sql")),
];

/// The schema of version [`BASELINE`], for a new database (which then gets every step).
const SCHEMA: &str = include_str!("schema.sql");

/// Key of the advisory lock migrations hold (`packrmig` in ASCII). Advisory locks are per
/// database, so databases sharing a server do not wait for each other.
const LOCK_KEY: i64 = 0x7061_636b_726d_6967;

/// Who applied a version, as `schema_version.applied_by` records it.
const APPLIED_BY: &str = concat!("packr ", env!("CARGO_PKG_VERSION"));

/// The newest schema version this binary knows.
pub fn latest() -> i64 {
    latest_of(STEPS)
}

fn latest_of(steps: &[Step]) -> i64 {
    steps.last().map_or(BASELINE, |(version, _)| *version)
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new database got the whole schema at this version.
    Created(i64),
    /// An existing database went from one version to the other.
    Upgraded {
        /// The version before.
        from: i64,
        /// The version now.
        to: i64,
    },
    /// The database already was at this version.
    Current(i64),
}

impl Outcome {
    /// The version the database is at now.
    pub fn version(self) -> i64 {
        match self {
            Self::Created(version)
            | Self::Current(version)
            | Self::Upgraded { to: version, .. } => version,
        }
    }
}

/// Brings the database up to date with `schema.sql` and [`STEPS`].
pub async fn run(client: &mut Client) -> Result<Outcome, PgError> {
    run_steps(client, SCHEMA, STEPS).await
}

/// What a database at `current` (None: new) needs, or why it must be left alone.
fn plan<'s>(current: Option<(i64, String)>, steps: &'s [Step]) -> Result<Plan<'s>, PgError> {
    let known = latest_of(steps);
    match current {
        None => Ok(Plan::Create),
        Some((found, applied_by)) if found > known => Err(PgError::NewerSchema {
            found,
            known,
            applied_by,
        }),
        Some((found, _)) => Ok(Plan::Steps {
            from: found,
            pending: steps.iter().filter(|(v, _)| *v > found).collect(),
        }),
    }
}

/// The version the database's schema is at (0 before the first migration).
pub async fn current_version(client: &Client) -> Result<i64, PgError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?;
    Ok(row.get(0))
}

enum Plan<'s> {
    Create,
    Steps { from: i64, pending: Vec<&'s Step> },
}

async fn run_steps(client: &mut Client, schema: &str, steps: &[Step]) -> Result<Outcome, PgError> {
    let tx = client.transaction().await?;
    // First, before anything is read or created: the others wait here until this commits.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    BIGINT PRIMARY KEY,
             applied_at BIGINT NOT NULL,  -- Unix milliseconds
             applied_by TEXT NOT NULL     -- `packr <version>`
         )",
    )
    .await?;
    let current = tx
        .query_opt(
            "SELECT version, applied_by FROM schema_version ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)));
    let outcome = match plan(current, steps)? {
        Plan::Create => {
            tx.batch_execute(schema).await?;
            stamp(&tx, BASELINE).await?;
            for (version, sql) in steps {
                tx.batch_execute(sql).await?;
                stamp(&tx, *version).await?;
            }
            Outcome::Created(latest_of(steps))
        }
        Plan::Steps { from, pending } if pending.is_empty() => Outcome::Current(from),
        Plan::Steps { from, pending } => {
            for (version, sql) in pending {
                tx.batch_execute(sql).await?;
                stamp(&tx, *version).await?;
            }
            Outcome::Upgraded {
                from,
                to: latest_of(steps),
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn stamp(tx: &tokio_postgres::Transaction<'_>, version: i64) -> Result<(), PgError> {
    tx.execute(
        "INSERT INTO schema_version (version, applied_at, applied_by)
         VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT, $2)",
        &[&version, &APPLIED_BY],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_STEPS: &[Step] = &[(2, "SELECT 2"), (3, "SELECT 3")];

    #[test]
    fn versions_rise_one_at_a_time_from_the_baseline() {
        let mut previous = BASELINE;
        for (version, _) in STEPS {
            assert_eq!(*version, previous + 1, "steps must be numbered in order");
            previous = *version;
        }
        assert_eq!(latest(), previous);
    }

    #[test]
    fn a_new_database_is_created_and_an_old_one_gets_only_the_steps_it_lacks() {
        assert!(matches!(plan(None, TWO_STEPS), Ok(Plan::Create)));
        let Ok(Plan::Steps { from, pending }) = plan(Some((2, "packr 0.1.0".into())), TWO_STEPS)
        else {
            panic!("expected steps");
        };
        assert_eq!(from, 2);
        assert_eq!(pending.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [3]);
        let Ok(Plan::Steps { pending, .. }) = plan(Some((3, String::new())), TWO_STEPS) else {
            panic!("expected no steps");
        };
        assert!(pending.is_empty());
    }

    #[test]
    fn a_newer_database_is_refused_naming_both_versions_and_who_migrated_it() {
        let Err(err) = plan(Some((9, "packr 2.0.0".into())), TWO_STEPS) else {
            panic!("a newer database was accepted");
        };
        let message = err.to_string();
        for part in ["version 9", "packr 2.0.0", "version 3"] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
    }
}
