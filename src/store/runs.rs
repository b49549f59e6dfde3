//! Run history: one row per run, written before any work starts so that a
//! killed process leaves a `running` row for the daemon to find on restart.

use super::{Doing, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Row, Transaction};
use strum::{AsRefStr, Display, EnumString, IntoStaticStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(Serialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunTrigger {
    Schedule,
    Manual,
    Resume,
    /// A spot sync of one student or one guardian (`student-sync spot`).
    Spot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(Serialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
    /// Final: the plan crossed a safety threshold and waits in `held_plans`
    /// for `approve` (then `succeeded`) or `discard` (then `discarded`).
    Held,
    /// Final: a held run an admin dropped.
    Discarded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(Serialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunPhase {
    Fetching,
    Planning,
    Applying,
    Done,
}

static_str!(RunTrigger, RunStatus, RunPhase);

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub trigger: RunTrigger,
    pub night: NaiveDate,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub phase: RunPhase,
    pub status: RunStatus,
    pub counts: serde_json::Value,
    pub error: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i32>,
}

const INSERT_RUN: &str = "
    INSERT INTO sync_runs (trigger, night, host, pid)
    VALUES ($1, $2, $3, $4)
    RETURNING id";

/// Writes the run's row (status `running`, phase `fetching`) and commits it at once.
pub async fn start_run(
    pool: &PgPool,
    trigger: RunTrigger,
    night: NaiveDate,
) -> Result<i64, StoreError> {
    let host = super::hostname();
    let row = sqlx::query(INSERT_RUN)
        .bind(trigger.as_str())
        .bind(night)
        .bind(host)
        .bind(std::process::id() as i32)
        .fetch_one(pool)
        .await
        .doing("recording the start of a run")?;
    Ok(row.get(0))
}

pub async fn set_phase(pool: &PgPool, run_id: i64, phase: RunPhase) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_runs SET phase = $2 WHERE id = $1")
        .bind(run_id)
        .bind(phase.as_str())
        .execute(pool)
        .await
        .doing("recording a run's phase")?;
    Ok(())
}

/// Marks the run succeeded inside the run's own transaction, so the counts
/// and the live changes commit together or not at all.
pub async fn finish_succeeded(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
    counts: &serde_json::Value,
    report: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sync_runs SET status = 'succeeded', phase = 'done', finished_at = now(),
                counts = $2, report = $3
         WHERE id = $1",
    )
    .bind(run_id)
    .bind(counts)
    .bind(report)
    .execute(&mut **tx)
    .await
    .doing("recording a run's success")?;
    Ok(())
}

/// Marks a run failed or interrupted, after its transaction rolled back.
pub async fn finish_unsuccessful(
    pool: &PgPool,
    run_id: i64,
    status: RunStatus,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sync_runs SET status = $2, finished_at = now(), error = $3
         WHERE id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(status.as_str())
    .bind(error)
    .execute(pool)
    .await
    .doing("recording a run's failure")?;
    Ok(())
}

const SELECT_RUNS: &str = "
    SELECT id, trigger, night, started_at, finished_at, phase, status, counts, error, host, pid
    FROM sync_runs";

fn run_from_row(row: &sqlx::postgres::PgRow) -> RunRecord {
    RunRecord {
        id: row.get("id"),
        trigger: row.get("trigger"),
        night: row.get("night"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        phase: row.get("phase"),
        status: row.get("status"),
        counts: row.get("counts"),
        error: row.get("error"),
        host: row.get("host"),
        pid: row.get("pid"),
    }
}

/// The newest runs first.
pub async fn recent_runs(pool: &PgPool, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT_RUNS} ORDER BY id DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(pool)
        .await
        .doing("reading the run history")?;
    Ok(rows.iter().map(run_from_row).collect())
}

/// The newest run of the whole district: spot syncs of one student or one
/// guardian say nothing about how the night went, so they are left out.
pub async fn latest_full_run(pool: &PgPool) -> Result<Option<RunRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "{SELECT_RUNS} WHERE trigger <> 'spot' ORDER BY id DESC LIMIT 1"
    ))
    .fetch_optional(pool)
    .await
    .doing("reading the run history")?;
    Ok(row.as_ref().map(run_from_row))
}

pub async fn get_run(pool: &PgPool, run_id: i64) -> Result<RunRecord, StoreError> {
    let row = sqlx::query(&format!("{SELECT_RUNS} WHERE id = $1"))
        .bind(run_id)
        .fetch_optional(pool)
        .await
        .doing("reading a run")?;
    row.as_ref()
        .map(run_from_row)
        .ok_or(StoreError::NoSuchRun(run_id))
}

/// Records what a spot sync covers (`student 5001`, `guardian a@b.org`).
pub async fn set_scope(pool: &PgPool, run_id: i64, scope: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_runs SET scope = $2 WHERE id = $1")
        .bind(run_id)
        .bind(scope)
        .execute(pool)
        .await
        .doing("recording a spot sync's scope")?;
    Ok(())
}

/// The run in progress: id, phase, start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInProgress {
    pub id: i64,
    pub phase: RunPhase,
    pub started_at: DateTime<Utc>,
}

/// The newest run whose row says `running` (its process may be gone: only
/// the run lock tells).
pub async fn current_running(pool: &PgPool) -> Result<Option<RunInProgress>, StoreError> {
    let row: Option<(i64, RunPhase, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, phase, started_at FROM sync_runs
         WHERE status = 'running' ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .doing("reading the run in progress")?;
    Ok(row.map(|(id, phase, started_at)| RunInProgress {
        id,
        phase,
        started_at,
    }))
}

/// Marks every run still `running` as `interrupted`. Only for a caller that
/// holds the run lock: then no live process owns any of them. `finished_at`
/// stays empty, as nobody knows when the process died.
pub async fn mark_all_stale(pool: &PgPool, error: &str) -> Result<Vec<i64>, StoreError> {
    sqlx::query_scalar(
        "UPDATE sync_runs SET status = 'interrupted', error = $1
         WHERE status = 'running' RETURNING id",
    )
    .bind(error)
    .fetch_all(pool)
    .await
    .doing("marking runs whose process died as interrupted")
}

/// The newest successful full run (spot syncs do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LastFullRun {
    pub id: i64,
    /// Rows the guardian query returned then, when its counts say.
    pub guardians: Option<i64>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The id of the last successful full run, as a subquery: the run the
/// safety checks compare against, the one `prune` never removes, and the
/// one whose problems a run may share (`write::insert_problems`). One
/// definition, so that a run never shares the problems of a run `prune`
/// may remove.
macro_rules! last_full_success_id {
    () => {
        "(SELECT max(id) FROM sync_runs WHERE status = 'succeeded' AND trigger <> 'spot')"
    };
}
pub(crate) use last_full_success_id;

pub async fn last_full_success(pool: &PgPool) -> Result<Option<LastFullRun>, StoreError> {
    let row: Option<(i64, Option<i64>, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as(concat!(
            "SELECT id, (counts->'fetched'->>'guardians')::bigint, finished_at FROM sync_runs
             WHERE id = ",
            last_full_success_id!()
        ))
        .fetch_optional(pool)
        .await
        .doing("reading the last successful run")?;
    Ok(row.map(|(id, guardians, finished_at)| LastFullRun {
        id,
        guardians,
        finished_at,
    }))
}
