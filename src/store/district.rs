//! Which district the database belongs to (`database_district`, one row),
//! and the one-writer gate every write of live data passes: a transaction
//! that holds the database's writer lock and has checked the district.
//!
//! The writer lock is a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`) under one constant key: advisory locks are per
//! database already, so it is keyed by the database, not by the `district`
//! setting (two districts' settings on one database would otherwise each get
//! a lock of their own). It goes with the transaction's commit or rollback.

use super::{Doing, StoreError};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// The key of the writer lock: `hashtext('student-sync writer')` would do,
/// but a constant is the same on every PostgreSQL version.
pub const WRITER_LOCK_KEY: i64 = 0x5354_5544_5752_4954; // "STUDWRIT"

/// The district the database has recorded, if any.
pub async fn recorded(pool: &PgPool) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT district FROM database_district")
        .fetch_optional(pool)
        .await
        .doing("reading which district the database belongs to")
}

/// Refuses a database recorded for another district. A database with no
/// district yet is fine: the first write records it.
pub async fn check(pool: &PgPool, district: &str) -> Result<(), StoreError> {
    match recorded(pool).await? {
        Some(theirs) if theirs != district => Err(mismatch(theirs, district)),
        _ => Ok(()),
    }
}

fn mismatch(recorded: String, configured: &str) -> StoreError {
    StoreError::WrongDistrict {
        recorded,
        configured: configured.to_string(),
    }
}

/// Records `district` if the database has none yet, else checks it, on the
/// caller's transaction (which should hold the writer lock).
pub async fn claim(conn: &mut PgConnection, district: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO database_district (district) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(district)
        .execute(&mut *conn)
        .await
        .doing("recording which district the database belongs to")?;
    let theirs: String = sqlx::query_scalar("SELECT district FROM database_district")
        .fetch_one(&mut *conn)
        .await
        .doing("reading which district the database belongs to")?;
    if theirs != district {
        return Err(mismatch(theirs, district));
    }
    Ok(())
}

/// Takes the writer lock on the caller's transaction, waiting for any other
/// writer's transaction to end.
pub async fn take_writer_lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut *conn)
        .await
        .doing("taking the database's writer lock")?;
    Ok(())
}

/// Who writes: the district the settings name, and the session holding the
/// run lock for this write (None for a caller that holds none, e.g. a test
/// driving the library directly).
#[derive(Debug, Clone)]
pub struct WriteGate {
    pub district: String,
    pub run_lock_backend: Option<i32>,
}

impl WriteGate {
    pub fn new(district: &str, run_lock_backend: Option<i32>) -> Self {
        WriteGate {
            district: district.to_string(),
            run_lock_backend,
        }
    }
}

/// Begins a write of live data: a transaction holding the writer lock, the
/// district checked (or recorded, on the first write), and, right before
/// anything is applied, the run lock checked again: still held by the
/// session the caller took it on. `repeatable_read` for a caller whose
/// reads and writes must see one snapshot (PostgreSQL takes it at the lock
/// statement, before waiting: a writer that committed meanwhile makes a
/// later write of the same row fail with a serialization error rather than
/// be lost).
pub async fn begin_write(
    pool: &PgPool,
    gate: &WriteGate,
    doing: &str,
    repeatable_read: bool,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await.doing(doing)?;
    if repeatable_read {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .doing(doing)?;
    }
    take_writer_lock(&mut tx).await?;
    claim(&mut tx, &gate.district).await?;
    if let Some(pid) = gate.run_lock_backend {
        if !super::lock::holds_run_lock(&mut tx, &gate.district, pid).await? {
            return Err(StoreError::RunLockLost { backend_pid: pid });
        }
    }
    Ok(tx)
}
