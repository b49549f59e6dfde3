//! `student-sync run --now`: one `manual` run beside (or without) a daemon.
//! It waits for the run lock, saying who holds it, runs even after a failure
//! tonight, and is cancelled (and marked `interrupted`) on a stop.

use super::locking;
use super::run_task::{cancel_budget, latest_run_id, mark_stale_runs, prune_history, RunTask};
use super::signals::Shutdown;
use super::DaemonError;
use crate::config::Settings;
use crate::powerschool::PowerSchoolClient;
use crate::store::lock::{self, LockKind};
use crate::store::runs::{self, RunStatus};
use crate::store::RunTrigger;
use crate::sync::{RunOptions, RunOutcome, RunProgress, RunReport, SyncError};
use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::PgPool;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What `student-sync run --now` did.
#[derive(Debug, Clone, Serialize)]
pub struct RunNowOutcome {
    pub run_id: i64,
    pub trigger: &'static str,
    pub night: NaiveDate,
    pub status: &'static str,
    /// How long it waited for the run lock before starting.
    pub waited_seconds: f64,
    pub duration_seconds: f64,
    pub report: RunReport,
}

impl RunNowOutcome {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "Manual run {} (night {}) succeeded in {:.1} s",
            self.run_id, self.night, self.duration_seconds
        );
        if self.waited_seconds >= 1.0 {
            let _ = write!(
                out,
                " after waiting {:.0} s for the run lock",
                self.waited_seconds
            );
        }
        let _ = writeln!(out, ".");
        out.push_str(&self.report.to_text());
        out
    }
}

/// `run --now`: waits for the run lock, then one `manual` run, cancelled
/// (and marked `interrupted`) on a stop.
pub(super) async fn run_now(
    settings: &Settings,
    pool: &PgPool,
    shutdown: watch::Receiver<bool>,
    progress: Option<Arc<RunProgress>>,
) -> Result<RunNowOutcome, DaemonError> {
    let mut shutdown = Shutdown::new(shutdown);
    note_failed_tonight(pool, settings.schedule.timezone).await?;
    let waiting = Instant::now();
    let run_lock = locking::take(
        settings,
        pool,
        LockKind::Run,
        &lock::application_name("run --now"),
        &mut shutdown,
        |who| {
            tracing::info!(holder = %who, "run --now: waiting for the run lock, held by {who}; the manual run starts when it is free");
        },
    )
    .await?
    .ok_or(DaemonError::StoppedBeforeRun)?;
    let waited = waiting.elapsed();
    mark_stale_runs(pool).await?;
    let client = match PowerSchoolClient::new(&settings.powerschool) {
        Ok(c) => c,
        Err(e) => {
            run_lock.release().await;
            return Err(e.into());
        }
    };
    let mut options = RunOptions {
        progress,
        ..RunOptions::now(settings, RunTrigger::Manual)
    };
    options.run_lock_backend = Some(run_lock.backend_pid());
    let night = options.night;
    tracing::info!(%night, "run --now: starting a manual run for night {night}");
    let started = Instant::now();
    let run = RunTask::spawn(pool.clone(), settings.clone(), client, options);
    let result = until_done_or_stopped(run, settings, &mut shutdown).await;
    let took = started.elapsed();
    if result.is_ok() {
        prune_history(pool, settings).await;
    }
    run_lock.release().await;
    match result {
        Ok(outcome) => Ok(succeeded(outcome, night, waited, took)),
        Err(e) => Err(failed(e, latest_run_id(pool).await.unwrap_or(0))),
    }
}

/// Says so when tonight's latest finished run failed: `run --now` runs
/// anyway, as asked (a run in progress is waited for, not reported here).
async fn note_failed_tonight(pool: &PgPool, tz: Tz) -> Result<(), DaemonError> {
    let finished = runs::recent_runs(pool, 20)
        .await?
        .into_iter()
        .find(|r| r.status != RunStatus::Running);
    if let Some(last) = finished {
        if last.status == RunStatus::Failed
            && last.night == Utc::now().with_timezone(&tz).date_naive()
        {
            tracing::info!(
                run_id = last.id,
                "run --now: tonight's run {} failed ({}); running anyway, as asked",
                last.id,
                last.error.as_deref().unwrap_or("no error recorded")
            );
        }
    }
    Ok(())
}

/// The run's result; on a stop, it is cancelled and given the grace period.
async fn until_done_or_stopped(
    mut run: RunTask,
    settings: &Settings,
    shutdown: &mut Shutdown,
) -> Result<RunOutcome, SyncError> {
    tokio::select! {
        result = run.finished() => return result,
        _ = shutdown.requested() => {}
    }
    tracing::info!("stopping: cancelling the manual run (it rolls back and is marked interrupted)");
    run.cancel(cancel_budget(settings.daemon.grace_period))
        .await
        .unwrap_or_else(|| {
            Err(SyncError::Cancelled(
                "did not stop within the grace period".into(),
            ))
        })
}

fn succeeded(
    outcome: RunOutcome,
    night: NaiveDate,
    waited: Duration,
    took: Duration,
) -> RunNowOutcome {
    RunNowOutcome {
        run_id: outcome.run_id,
        trigger: RunTrigger::Manual.as_str(),
        night,
        status: RunStatus::Succeeded.as_str(),
        waited_seconds: waited.as_secs_f64(),
        duration_seconds: took.as_secs_f64(),
        report: outcome.report,
    }
}

fn failed(error: SyncError, run_id: i64) -> DaemonError {
    match error {
        SyncError::Cancelled(_) => DaemonError::RunInterrupted { run_id },
        held @ SyncError::Held { .. } => DaemonError::RunHeld(held),
        source => DaemonError::RunFailed { run_id, source },
    }
}
