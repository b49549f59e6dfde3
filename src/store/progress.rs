//! A run's counts so far on its row (`sync_runs.progress`), written while
//! the run goes on a connection of its own, so `status` shows them. Never
//! inside the run's transaction: one short UPDATE of one row.

use super::{Doing, StoreError};
use sqlx::PgPool;

/// Stores the counts on the run's row while it is still running (a late
/// write after the run ended changes nothing).
pub async fn record(
    pool: &PgPool,
    run_id: i64,
    progress: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_runs SET progress = $2 WHERE id = $1 AND status = 'running'")
        .bind(run_id)
        .bind(progress)
        .execute(pool)
        .await
        .doing("recording a run's progress")?;
    Ok(())
}

/// The counts last stored on the run's row (`{}` before the first).
pub async fn read(pool: &PgPool, run_id: i64) -> Result<serde_json::Value, StoreError> {
    let value: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT progress FROM sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(pool)
            .await
            .doing("reading a run's progress")?;
    value.ok_or(StoreError::NoSuchRun(run_id))
}
