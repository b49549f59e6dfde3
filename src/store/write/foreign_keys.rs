//! The foreign key from `connections` to `users` (a connection's user must
//! exist), set aside while a run inserts most of the connections and put
//! back, checked in one pass, before the run goes on.
//!
//! Why: PostgreSQL checks a foreign key once per inserted row, a lookup and
//! a row lock in `users` each. A district's first night inserts every
//! connection: at a million students that check was 6 of the 13 seconds
//! the connections took, and one check of the whole table when the key is
//! put back costs under one. Nothing is given up: the key is put back (as
//! `pg_get_constraintdef` read it) in the run's own transaction, which fails
//! and rolls back, key and rows together, if a connection names a user that
//! does not exist, exactly as the per-row check would have.
//!
//! The price is a lock: from the moment the key is set aside until the run
//! commits (the connections, the audit and the problems are written
//! meanwhile: about 15 s at a million students), no other session can read
//! or write `users` or `connections` (SchoolEngage's logins wait). So the
//! key is set aside only when the plan inserts most of the connections (a
//! first night; see `sync::apply`), and only if both tables are free at
//! that moment (`LOCK … NOWAIT`: nobody waits behind a run that would then
//! give up). The run keeps the per-row check, and its log says why, when
//! the tables are in use, when the key is `NOT VALID` (re-adding it would
//! check nothing), when the database user lacks the `REFERENCES` privilege
//! on `users` that re-adding it needs, or when a stored connection already
//! names a missing user (written with the checks off: the one-pass check
//! would fail every such night, the per-row check never looks at it).

use super::Tx;
use crate::store::{Doing, StoreError};

const SAVEPOINT: &str = "student_sync_foreign_keys";

/// How a run's connections were checked against `users`: what
/// `with_keys_set_aside` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChecks {
    /// In one pass, once they were written: the keys were set aside
    /// meanwhile, and are back.
    InOnePass,
    /// One by one, as they were written: the keys stayed, for this reason.
    PerRow(String),
}

/// Runs `write` (a run's writes of connections) with the foreign keys from
/// `connections` to `users` set aside, when they may be (see the module's
/// doc), and puts them back, which checks every connection in one pass,
/// before it returns. The keys cannot be left aside: if `write` or the
/// check fails, the transaction goes back to the savepoint taken before
/// the keys were set aside (the keys are there again, and nothing `write`
/// did is), and the error is returned.
pub async fn with_keys_set_aside<T, E: From<StoreError>>(
    tx: &mut Tx<'_>,
    write: impl AsyncFnOnce(&mut Tx<'_>) -> Result<T, E>,
) -> Result<(T, KeyChecks), E> {
    let keys = match set_aside(tx).await? {
        Ok(keys) => keys,
        Err(Kept(why)) => return Ok((write(tx).await?, KeyChecks::PerRow(why))),
    };
    let done = match write(tx).await {
        Ok(written) => put_back(tx, &keys).await.map(|()| written).map_err(E::from),
        Err(e) => Err(e),
    };
    let doing = "putting the foreign key from connections to users back";
    match done {
        Ok(written) => {
            run(tx, &format!("RELEASE SAVEPOINT {SAVEPOINT}"), doing).await?;
            Ok((written, KeyChecks::InOnePass))
        }
        Err(e) => {
            // The error is what the caller needs; a failed rollback (the
            // connection lost) leaves a transaction nobody can commit.
            let back = run(tx, &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"), doing).await;
            if back.is_ok() {
                run(tx, &format!("RELEASE SAVEPOINT {SAVEPOINT}"), doing).await?;
            }
            Err(e)
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct ForeignKey {
    /// The constraint's name, quoted for SQL.
    name: String,
    /// `FOREIGN KEY (user_id) REFERENCES users(id)`, as PostgreSQL wrote it.
    definition: String,
    /// False for a key added `NOT VALID`.
    validated: bool,
}

/// Why the keys stay where they are.
struct Kept(String);

/// Sets the foreign keys from `connections` to `users` aside, or says why
/// they stay (see the module's doc for when): the transaction is then as it
/// was, and the rows are checked one by one.
async fn set_aside(tx: &mut Tx<'_>) -> Result<Result<Vec<ForeignKey>, Kept>, StoreError> {
    let doing = "setting the foreign key from connections to users aside";
    run(tx, &format!("SAVEPOINT {SAVEPOINT}"), doing).await?;
    let kept = match drop_keys(tx).await {
        // The savepoint stays open: `with_keys_set_aside` goes back to it if
        // anything fails before the keys are back.
        Ok(Ok(keys)) => {
            tracing::info!(
                keys = keys.len(),
                "the foreign key from connections to users is set aside while this run \
                     inserts most connections: until the run commits, other sessions \
                     (SchoolEngage's logins too) wait to read or write users and connections; \
                     the key is put back, checking every connection in one pass, before the \
                     audit is written"
            );
            return Ok(Ok(keys));
        }
        Ok(Err(Kept(why))) => why,
        // PostgreSQL's own words: the run goes on, so `StoreError`'s advice
        // (which speaks of a failed run) would mislead here.
        Err(StoreError::Query { source, .. }) => source.to_string(),
        Err(e) => e.to_string(),
    };
    // Back to the savepoint: the keys and the locks are as they were.
    let back = run(tx, &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"), doing).await;
    if back.is_err() {
        tracing::warn!("the foreign key from connections to users stays: {kept}");
    }
    back?;
    run(tx, &format!("RELEASE SAVEPOINT {SAVEPOINT}"), doing).await?;
    tracing::info!(
        "the connections are checked against users one by one, not in one pass at \
             the end (slower on a first night; nothing else changes): {kept}"
    );
    Ok(Err(Kept(kept)))
}

/// Puts every key back as it was read, which checks every connection
/// against `users` in one pass. A connection whose user does not exist
/// fails the run here, as the per-row check would have.
async fn put_back(tx: &mut Tx<'_>, keys: &[ForeignKey]) -> Result<(), StoreError> {
    for key in keys {
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

/// Within the savepoint: reads the keys, checks that they may be set
/// aside, takes both tables (without waiting) and drops the keys.
async fn drop_keys(tx: &mut Tx<'_>) -> Result<Result<Vec<ForeignKey>, Kept>, StoreError> {
    let doing = "setting the foreign key from connections to users aside";
    let keys: Vec<ForeignKey> = sqlx::query_as(
        "SELECT format('%I', conname) AS name, pg_get_constraintdef(oid) AS definition,
                convalidated AS validated
           FROM pg_constraint
          WHERE conrelid = 'connections'::regclass AND contype = 'f'
            AND confrelid = 'users'::regclass
          ORDER BY conname",
    )
    .fetch_all(&mut **tx)
    .await
    .doing(doing)?;
    if keys.is_empty() {
        return Ok(Err(Kept("connections has no foreign key to users".into())));
    }
    if let Some(key) = keys.iter().find(|k| !k.validated) {
        return Ok(Err(Kept(format!(
            "the foreign key {} is NOT VALID, and putting it back would check nothing",
            key.name
        ))));
    }
    let may_reference: bool =
        sqlx::query_scalar("SELECT has_table_privilege('users', 'REFERENCES')")
            .fetch_one(&mut **tx)
            .await
            .doing(doing)?;
    if !may_reference {
        return Ok(Err(Kept(
            "the database user lacks the REFERENCES privilege on users, which putting the \
             key back needs"
                .into(),
        )));
    }
    if let Err(e) = sqlx::query("LOCK TABLE connections, users IN ACCESS EXCLUSIVE MODE NOWAIT")
        .execute(&mut **tx)
        .await
    {
        return Ok(Err(Kept(format!(
            "another session is using users or connections ({e})"
        ))));
    }
    let orphan: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT c.id, c.student_dcid, c.user_id FROM connections c
          WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id)
          ORDER BY c.id LIMIT 1",
    )
    .fetch_optional(&mut **tx)
    .await
    .doing(doing)?;
    if let Some((id, student, user)) = orphan {
        return Ok(Err(Kept(format!(
            "connection {id} (student {student}) names user {user}, who is not in users \
             (it was written with the key's checks off); delete that connection or put the \
             user back"
        ))));
    }
    for key in &keys {
        let sql = format!("ALTER TABLE connections DROP CONSTRAINT {}", key.name);
        run(tx, &sql, doing).await?;
    }
    Ok(Ok(keys))
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
