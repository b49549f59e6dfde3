//! Keeping the database from growing without end: old runs and the record
//! problems they reported are removed in small batches, each batch its own
//! short transaction (never inside a run's). The access audit is pruned only
//! when a number of days is set for it.
//!
//! A run is removed when it started more than `keep_days` ago AND is not
//! among the newest `keep_runs` runs. Never removed: a running or held run,
//! the newest successful full run (the safety checks compare against it),
//! and a run whose problems a later run shares (`problems_stored_by`): it goes
//! once they have.

use super::runs::last_full_success_id;
use super::{Doing, StoreError};
use crate::config::RetentionSettings;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// Runs removed per transaction; their problems go in the same one.
const RUN_BATCH: i64 = 200;
/// Audit rows removed per transaction.
const AUDIT_BATCH: i64 = 10_000;

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub runs: u64,
    pub problems: u64,
    pub held_plans: u64,
    pub audit_rows: u64,
    /// The oldest and newest run removed.
    pub oldest_run: Option<i64>,
    pub newest_run: Option<i64>,
}

impl Pruned {
    pub fn is_empty(&self) -> bool {
        self.runs == 0 && self.audit_rows == 0
    }

    /// One line for the log and the `prune` command.
    pub fn to_text(&self) -> String {
        let runs = match (self.oldest_run, self.newest_run) {
            (Some(a), Some(b)) if a != b => format!(" (runs {a} to {b})"),
            (Some(a), _) => format!(" (run {a})"),
            _ => String::new(),
        };
        format!(
            "pruned {} runs{runs}, {} record problems, {} discarded plans, {} access-audit rows",
            self.runs, self.problems, self.held_plans, self.audit_rows
        )
    }
}

/// The runs past the retention, oldest first, at most `limit`.
const PRUNABLE_RUNS: &str = concat!(
    "
    SELECT id FROM sync_runs
     WHERE started_at < now() - make_interval(days => $1)
       AND status NOT IN ('running', 'held')
       AND id < (SELECT COALESCE(min(id), 0) FROM
                   (SELECT id FROM sync_runs ORDER BY id DESC LIMIT $2) newest)
       AND NOT EXISTS (SELECT 1 FROM sync_runs later WHERE later.problems_stored_by = sync_runs.id)
       AND id IS DISTINCT FROM ",
    last_full_success_id!(),
    "
     ORDER BY id
     LIMIT $3"
);

/// Removes what the retention no longer keeps, a batch at a time.
pub async fn prune(pool: &PgPool, retention: &RetentionSettings) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    loop {
        let ids: Vec<i64> = sqlx::query_scalar(PRUNABLE_RUNS)
            .bind(retention.keep_days as i32)
            .bind(i64::from(retention.keep_runs))
            .bind(RUN_BATCH)
            .fetch_all(pool)
            .await
            .doing("finding runs past the retention")?;
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            break;
        };
        pruned.oldest_run.get_or_insert(*first);
        pruned.newest_run = Some(*last);
        remove_runs(pool, &ids, &mut pruned).await?;
    }
    if let Some(days) = retention.audit_keep_days {
        pruned.audit_rows = prune_audit(pool, days).await?;
    }
    Ok(pruned)
}

/// One batch: the runs' problems, discarded plans and rows, in one short
/// transaction.
async fn remove_runs(pool: &PgPool, ids: &[i64], pruned: &mut Pruned) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.doing("starting a prune batch")?;
    let problems = sqlx::query("DELETE FROM run_problems WHERE run_id = ANY($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await
        .doing("pruning old runs' record problems")?;
    let plans = sqlx::query("DELETE FROM held_plans WHERE run_id = ANY($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await
        .doing("pruning old runs' discarded plans")?;
    let runs = sqlx::query(
        "DELETE FROM sync_runs WHERE id = ANY($1) AND status NOT IN ('running', 'held')",
    )
    .bind(ids)
    .execute(&mut *tx)
    .await
    .doing("pruning old runs")?;
    tx.commit().await.doing("committing a prune batch")?;
    pruned.problems += problems.rows_affected();
    pruned.held_plans += plans.rows_affected();
    pruned.runs += runs.rows_affected();
    Ok(())
}

/// Audit rows older than `days`, a batch per transaction. The audit's
/// append-only trigger lets a delete through only in a transaction that
/// says it is this prune.
async fn prune_audit(pool: &PgPool, days: u32) -> Result<u64, StoreError> {
    let mut removed = 0;
    loop {
        let mut tx = pool.begin().await.doing("starting an audit prune batch")?;
        sqlx::query("SELECT set_config('student_sync.pruning_audit', 'on', true)")
            .execute(&mut *tx)
            .await
            .doing("marking the audit prune")?;
        let done = sqlx::query(
            "DELETE FROM access_audit WHERE id IN (
                 SELECT id FROM access_audit
                  WHERE recorded_at < now() - make_interval(days => $1)
                  ORDER BY id LIMIT $2)",
        )
        .bind(days as i32)
        .bind(AUDIT_BATCH)
        .execute(&mut *tx)
        .await
        .doing("pruning the access audit")?
        .rows_affected();
        tx.commit().await.doing("committing an audit prune batch")?;
        removed += done;
        if done < AUDIT_BATCH as u64 {
            return Ok(removed);
        }
    }
}

/// The database's size and the oldest run it keeps, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Footprint {
    pub database_bytes: i64,
    pub runs_kept: i64,
    pub oldest_run: Option<i64>,
    pub oldest_run_started_at: Option<DateTime<Utc>>,
}

pub async fn footprint(pool: &PgPool) -> Result<Footprint, StoreError> {
    let (database_bytes, runs_kept, oldest_run, oldest_run_started_at): (
        i64,
        i64,
        Option<i64>,
        Option<DateTime<Utc>>,
    ) = sqlx::query_as(
        "SELECT pg_database_size(current_database()),
                (SELECT count(*) FROM sync_runs),
                (SELECT min(id) FROM sync_runs),
                (SELECT started_at FROM sync_runs ORDER BY id LIMIT 1)",
    )
    .fetch_one(pool)
    .await
    .doing("measuring the database")?;
    Ok(Footprint {
        database_bytes,
        runs_kept,
        oldest_run,
        oldest_run_started_at,
    })
}

/// For tests and seeding history: a finished run row with a given start.
pub async fn insert_finished_run(
    pool: &PgPool,
    trigger: super::RunTrigger,
    status: super::RunStatus,
    started_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO sync_runs (trigger, night, started_at, finished_at, phase, status)
         VALUES ($1, $2, $3, $3, 'done', $4) RETURNING id",
    )
    .bind(trigger.as_str())
    .bind(started_at.date_naive())
    .bind(started_at)
    .bind(status.as_str())
    .fetch_one(pool)
    .await
    .doing("recording a past run")
}
