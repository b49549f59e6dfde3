//! The foreign keys of `connections` (its user must exist in `users`),
//! set aside while a run inserts most of the table and put back, checked in
//! one pass, before the run goes on.
//!
//! Why: PostgreSQL checks a foreign key once per inserted row, a lookup and
//! a row lock in `users` each. A district's first night inserts every
//! connection: at a million students that check was 6 of the 13 seconds
//! the connections took, and a single check of the whole table when the
//! key is put back costs under one. Nothing is given up: the key is put
//! back (as `pg_get_constraintdef` read it) in the run's own transaction,
//! which fails and rolls back, key and rows together, if a connection
//! names a user that does not exist, exactly as the per-row check would.
//!
//! The price is a lock: from the moment the key is set aside until the run
//! commits (seconds: the audit and the problems are written meanwhile),
//! SchoolEngage cannot read `connections` or write `users`. So the keys are
//! set aside only when the plan inserts most of the connections (a first
//! night; see `sync::apply`), and only if the locks come within a few
//! seconds; otherwise (another session holds them, or the database user
//! does not own the table) the run keeps the per-row check and says why in
//! its log.

use super::Tx;
use crate::store::{Doing, StoreError};
use std::time::Duration;

const SAVEPOINT: &str = "student_sync_foreign_keys";

/// The foreign keys of `connections` a run has set aside, to put back with
/// `put_back` in the same transaction.
#[derive(Debug)]
#[must_use = "the foreign keys must be put back before the run commits"]
pub struct ForeignKeysAside {
    keys: Vec<ForeignKey>,
}

#[derive(Debug, sqlx::FromRow)]
struct ForeignKey {
    /// The constraint's name, quoted for SQL.
    name: String,
    /// `FOREIGN KEY (user_id) REFERENCES users(id)`, as PostgreSQL wrote it.
    definition: String,
}

impl ForeignKeysAside {
    /// Sets the foreign keys of `connections` aside, waiting at most `wait`
    /// for the locks this takes. `None` when they stay (there are none, the
    /// locks did not come, or the database user may not alter the table):
    /// the transaction is as it was, and the rows are checked one by one.
    pub async fn set_aside(
        tx: &mut Tx<'_>,
        wait: Duration,
    ) -> Result<Option<ForeignKeysAside>, StoreError> {
        let doing = "setting the foreign keys of connections aside";
        run(tx, &format!("SAVEPOINT {SAVEPOINT}"), doing).await?;
        match drop_keys(tx, wait).await {
            Ok(keys) if keys.is_empty() => {
                run(tx, &format!("RELEASE SAVEPOINT {SAVEPOINT}"), doing).await?;
                Ok(None)
            }
            Ok(keys) => {
                run(tx, &format!("RELEASE SAVEPOINT {SAVEPOINT}"), doing).await?;
                tracing::debug!(
                    keys = keys.len(),
                    "the foreign keys of connections are set aside while most connections \
                     are inserted; they are put back, checked in one pass, before the audit"
                );
                Ok(Some(ForeignKeysAside { keys }))
            }
            Err(e) => {
                // Back to the savepoint: the keys, the locks and the lock
                // timeout are as they were.
                run(tx, &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"), doing).await?;
                run(tx, &format!("RELEASE SAVEPOINT {SAVEPOINT}"), doing).await?;
                tracing::info!(
                    "the connections are checked one by one against users, not in one pass \
                     at the end (slower on a first night, nothing else changes): {e}"
                );
                Ok(None)
            }
        }
    }

    /// Puts every key back as it was read, which checks every connection
    /// against `users` in one pass. A connection whose user does not exist
    /// fails the run here, as the per-row check would have.
    pub async fn put_back(self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        for key in &self.keys {
            let doing = format!(
                "putting back the foreign key {} of connections ({}), set aside while the \
                 run inserted most connections",
                key.name, key.definition
            );
            let sql = format!(
                "ALTER TABLE connections ADD CONSTRAINT {} {}",
                key.name, key.definition
            );
            sqlx::query(&sql)
                .execute(&mut **tx)
                .await
                .map_err(|e| match violation_detail(&e) {
                    Some(detail) => StoreError::ConnectionWithoutUser {
                        key: key.name.clone(),
                        detail,
                    },
                    None => StoreError::Query { doing, source: e },
                })?;
        }
        Ok(())
    }
}

/// Within the savepoint: reads the keys and drops them, waiting at most
/// `wait` for each lock; the lock timeout is the session's again after.
async fn drop_keys(tx: &mut Tx<'_>, wait: Duration) -> Result<Vec<ForeignKey>, StoreError> {
    let doing = "setting the foreign keys of connections aside";
    let before: String = sqlx::query_scalar("SELECT current_setting('lock_timeout')")
        .fetch_one(&mut **tx)
        .await
        .doing(doing)?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", wait.as_millis().max(1)))
        .execute(&mut **tx)
        .await
        .doing(doing)?;
    let keys: Vec<ForeignKey> = sqlx::query_as(
        "SELECT format('%I', conname) AS name, pg_get_constraintdef(oid) AS definition
           FROM pg_constraint
          WHERE conrelid = 'connections'::regclass AND contype = 'f'
          ORDER BY conname",
    )
    .fetch_all(&mut **tx)
    .await
    .doing(doing)?;
    for key in &keys {
        let sql = format!("ALTER TABLE connections DROP CONSTRAINT {}", key.name);
        run(tx, &sql, doing).await?;
    }
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(before)
        .execute(&mut **tx)
        .await
        .doing(doing)?;
    Ok(keys)
}

/// PostgreSQL's detail of a foreign key violation ("Key (user_id)=(42) is
/// not present in table \"users\"."), naming the row that broke it.
fn violation_detail(e: &sqlx::Error) -> Option<String> {
    let pg = e
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    match pg.code() {
        "23503" => Some(pg.detail().unwrap_or(pg.message()).to_string()),
        _ => None,
    }
}

async fn run(tx: &mut Tx<'_>, sql: &str, doing: &str) -> Result<(), StoreError> {
    sqlx::query(sql)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .doing(doing)
}
