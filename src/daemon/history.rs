//! The daemon's own reads of the run history (`sync_runs`), for run-state
//! decisions, progress and health. Writes to run rows stay in
//! `store::runs`; this file only adds the small queries the daemon needs.

use super::{db_err, DaemonError};
use crate::store::runs;
use crate::store::RunRecord;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The newest run of the whole district (spot syncs left out), if any.
pub async fn latest(pool: &PgPool) -> Result<Option<RunRecord>, DaemonError> {
    Ok(runs::latest_full_run(pool).await?)
}

/// The run in progress: id, phase, start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub id: i64,
    pub phase: String,
    pub started_at: DateTime<Utc>,
}

pub async fn current_running(pool: &PgPool) -> Result<Option<Running>, DaemonError> {
    let row: Option<(i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, phase, started_at FROM sync_runs
         WHERE status = 'running' ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(db_err("reading the run in progress"))?;
    Ok(row.map(|(id, phase, started_at)| Running {
        id,
        phase,
        started_at,
    }))
}

/// When the last successful full run finished.
pub async fn last_success(pool: &PgPool) -> Result<Option<DateTime<Utc>>, DaemonError> {
    Ok(runs::last_full_success(pool)
        .await?
        .and_then(|run| run.finished_at))
}

/// Does the database answer?
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// Marks every run still `running` as `interrupted`. Only for a caller that
/// holds the run lock: then no live process owns any of them. `finished_at`
/// stays empty, as nobody knows when the process died.
pub async fn mark_all_stale(pool: &PgPool, error: &str) -> Result<Vec<i64>, DaemonError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE sync_runs SET status = 'interrupted', error = $1
         WHERE status = 'running' RETURNING id",
    )
    .bind(error)
    .fetch_all(pool)
    .await
    .map_err(db_err("marking runs whose process died as interrupted"))?;
    Ok(ids)
}
