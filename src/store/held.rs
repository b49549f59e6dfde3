//! Held runs: the stored plan of a run that crossed a safety threshold, and
//! the decisions on it (`approve`, `discard`) with who made them. A held run
//! is final for the daemon (never resumed); only an admin moves it on.

use super::runs::RunStatus;
use super::{Doing, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

/// A held run still waiting for a decision, for `/healthz`, `/metrics` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldRun {
    pub run_id: i64,
    pub night: NaiveDate,
    pub held_at: Option<DateTime<Utc>>,
    /// Which thresholds it crossed and by how much, one `; `-separated line.
    pub reason: String,
}

/// A held run's stored plan.
pub struct StoredPlan {
    pub run_id: i64,
    /// The plan as JSON bytes.
    pub plan: Vec<u8>,
    pub state_fingerprint: String,
    pub reason: String,
}

/// Stores the plan and marks the run `held`, in one transaction through
/// the writer gate.
#[allow(clippy::too_many_arguments)]
pub async fn hold(
    pool: &PgPool,
    gate: &super::district::WriteGate,
    run_id: i64,
    plan: &[u8],
    state_fingerprint: &str,
    reason: &str,
    counts: &serde_json::Value,
    report: &serde_json::Value,
) -> Result<(), StoreError> {
    let mut tx =
        super::district::begin_write(pool, gate, "starting to store a held plan", false).await?;
    sqlx::query("INSERT INTO held_plans (run_id, plan, state_fingerprint) VALUES ($1, $2, $3)")
        .bind(run_id)
        .bind(plan)
        .bind(state_fingerprint)
        .execute(&mut *tx)
        .await
        .doing("storing a held run's plan")?;
    sqlx::query(
        "UPDATE sync_runs SET status = 'held', phase = 'done', finished_at = now(),
                counts = $2, report = $3, hold_reason = $4
         WHERE id = $1",
    )
    .bind(run_id)
    .bind(counts)
    .bind(report)
    .bind(reason)
    .execute(&mut *tx)
    .await
    .doing("marking a run held")?;
    tx.commit().await.doing("committing a held plan")?;
    Ok(())
}

/// The newest held run with no successful full run after it (a later night
/// that went through makes an old hold moot), if any.
pub async fn latest_held(pool: &PgPool) -> Result<Option<HeldRun>, StoreError> {
    let row = sqlx::query(
        "SELECT r.id, r.night, r.finished_at, COALESCE(r.hold_reason, '') AS reason
         FROM sync_runs r
         WHERE r.status = 'held'
           AND NOT EXISTS (SELECT 1 FROM sync_runs n
                           WHERE n.id > r.id AND n.status = 'succeeded' AND n.trigger <> 'spot')
         ORDER BY r.id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .doing("reading the latest held run")?;
    Ok(row.map(|r| HeldRun {
        run_id: r.get("id"),
        night: r.get("night"),
        held_at: r.get("finished_at"),
        reason: r.get("reason"),
    }))
}

async fn status_of(pool: &PgPool, run_id: i64) -> Result<RunStatus, StoreError> {
    let status: Option<RunStatus> =
        sqlx::query_scalar("SELECT status FROM sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(pool)
            .await
            .doing("reading a run's status")?;
    status.ok_or(StoreError::NoSuchRun(run_id))
}

/// A held run's plan; `NotHeld` when the run is anything but `held`.
pub async fn load(pool: &PgPool, run_id: i64) -> Result<StoredPlan, StoreError> {
    let status = status_of(pool, run_id).await?;
    if status != RunStatus::Held {
        return Err(StoreError::NotHeld { run_id, status });
    }
    let row = sqlx::query(
        "SELECT h.plan, h.state_fingerprint, COALESCE(r.hold_reason, '') AS reason
         FROM held_plans h JOIN sync_runs r ON r.id = h.run_id WHERE h.run_id = $1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await
    .doing("reading a held run's plan")?
    .ok_or(StoreError::HeldPlanMissing(run_id))?;
    Ok(StoredPlan {
        run_id,
        plan: row.get("plan"),
        state_fingerprint: row.get("state_fingerprint"),
        reason: row.get("reason"),
    })
}

/// A full run newer than `run_id` that was applied or held, if any: approving
/// an older plan over it would put older PowerSchool data back.
pub async fn newer_full_run(
    pool: &PgPool,
    run_id: i64,
) -> Result<Option<(i64, String)>, StoreError> {
    sqlx::query_as(
        "SELECT id, status FROM sync_runs
         WHERE id > $1 AND trigger <> 'spot' AND status IN ('succeeded', 'held')
         ORDER BY id DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await
    .doing("looking for runs newer than a held one")
}

/// On the approval's transaction, after the plan was applied (which marked
/// the run `succeeded`): who approved it, and the stored plan dropped.
pub async fn record_approval(
    tx: &mut PgConnection,
    run_id: i64,
    decided_by: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_runs SET decided_by = $2, decided_at = now() WHERE id = $1")
        .bind(run_id)
        .bind(decided_by)
        .execute(&mut *tx)
        .await
        .doing("recording who approved a held run")?;
    sqlx::query("DELETE FROM held_plans WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .doing("dropping an approved run's stored plan")?;
    Ok(())
}

/// Locks a held run's row on the caller's transaction (`FOR UPDATE`), so
/// that of an approval and a discard racing only one can decide it; the
/// other then finds it no longer `held`.
pub async fn lock_held(conn: &mut PgConnection, run_id: i64) -> Result<(), StoreError> {
    let status: Option<RunStatus> =
        sqlx::query_scalar("SELECT status FROM sync_runs WHERE id = $1 FOR UPDATE")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await
            .doing("locking a held run's row")?;
    match status {
        None => Err(StoreError::NoSuchRun(run_id)),
        Some(RunStatus::Held) => Ok(()),
        Some(status) => Err(StoreError::NotHeld { run_id, status }),
    }
}

/// Drops a held run's plan and marks it `discarded`, with who did it: under
/// the writer lock, with the run's row locked.
pub async fn discard(pool: &PgPool, run_id: i64, decided_by: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.doing("starting to discard a held run")?;
    super::district::take_writer_lock(&mut tx).await?;
    lock_held(&mut tx, run_id).await?;
    let updated = sqlx::query(
        "UPDATE sync_runs SET status = 'discarded', decided_by = $2, decided_at = now()
         WHERE id = $1 AND status = 'held'",
    )
    .bind(run_id)
    .bind(decided_by)
    .execute(&mut *tx)
    .await
    .doing("marking a held run discarded")?
    .rows_affected();
    if updated == 0 {
        drop(tx);
        let status = status_of(pool, run_id).await?;
        return Err(StoreError::NotHeld { run_id, status });
    }
    sqlx::query("DELETE FROM held_plans WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .doing("dropping a discarded run's stored plan")?;
    tx.commit().await.doing("committing a discard")?;
    Ok(())
}

/// Who decided on a run, and when.
pub async fn decision(
    pool: &PgPool,
    run_id: i64,
) -> Result<(Option<String>, Option<DateTime<Utc>>), StoreError> {
    sqlx::query_as("SELECT decided_by, decided_at FROM sync_runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(pool)
        .await
        .doing("reading a run's decision")?
        .ok_or(StoreError::NoSuchRun(run_id))
}
