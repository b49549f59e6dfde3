//! What the daemon does when it becomes active, decided from the run history
//! alone (a pure function, so every branch has a test):
//! - the latest run is still `running`: its process is gone (the caller holds
//!   the run lock, which that process would hold if it were alive), so mark it
//!   `interrupted` and resume at once;
//! - the latest run is `interrupted` (stopped by a signal): resume at once;
//! - tonight's run failed: do not retry tonight, wait for the next night;
//! - otherwise: wait for the schedule.
//!
//! A resumed run repeats the whole night (fetch, plan, apply in one
//! transaction): the interrupted run's transaction rolled back, so nothing is
//! half-applied and nothing needs to be picked up from where it stopped.

use super::schedule::local_text;
use crate::store::runs::{RunPhase, RunRecord, RunStatus};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// The error recorded on a run found `running` with its process gone.
pub const STALE_RUN_ERROR: &str = "process died (found running at start-up)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupDecision {
    /// Start a run now with trigger `resume` for the run's night. When
    /// `stale` the run was left `running` and must first be marked
    /// `interrupted`.
    Resume {
        run_id: i64,
        night: NaiveDate,
        phase: RunPhase,
        stale: bool,
        /// Who left it running (host and pid, when recorded).
        owner: Option<String>,
    },
    /// Tonight's run failed: wait for the next night.
    WaitNextNight {
        run_id: i64,
        night: NaiveDate,
        error: String,
    },
    /// Wait for the schedule. `last` describes the latest run, if any.
    WaitSchedule { last: Option<LastRun> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub run_id: i64,
    pub night: NaiveDate,
    pub status: RunStatus,
    pub error: Option<String>,
}

/// Decides from the latest run (by id) and the time now in the district.
pub fn decide(latest: Option<&RunRecord>, now: DateTime<Utc>, tz: Tz) -> StartupDecision {
    let Some(run) = latest else {
        return StartupDecision::WaitSchedule { last: None };
    };
    let tonight = now.with_timezone(&tz).date_naive();
    match run.status {
        RunStatus::Running | RunStatus::Interrupted => StartupDecision::Resume {
            run_id: run.id,
            night: run.night,
            phase: run.phase,
            stale: run.status == RunStatus::Running,
            owner: match (&run.host, run.pid) {
                (Some(h), Some(p)) => Some(format!("pid {p} on {h}")),
                (None, Some(p)) => Some(format!("pid {p}")),
                (Some(h), None) => Some(format!("a process on {h}")),
                (None, None) => None,
            },
        },
        RunStatus::Failed if run.night == tonight => StartupDecision::WaitNextNight {
            run_id: run.id,
            night: run.night,
            error: one_line(run.error.as_deref().unwrap_or("no error recorded")),
        },
        status => StartupDecision::WaitSchedule {
            last: Some(LastRun {
                run_id: run.id,
                night: run.night,
                status,
                error: run.error.as_deref().map(one_line),
            }),
        },
    }
}

impl StartupDecision {
    /// The decision and its reason in one line for the on-call engineer;
    /// `next` is the next scheduled fire (after blackout).
    pub fn log_line(&self, next: DateTime<Tz>) -> String {
        let next = local_text(next);
        match self {
            StartupDecision::Resume {
                run_id,
                night,
                phase,
                stale: true,
                owner,
            } => format!(
                "start-up: run {run_id} (night {night}) was left running in phase {phase} by {} \
                 that is gone; marking it interrupted and resuming now",
                owner.as_deref().unwrap_or("a process")
            ),
            StartupDecision::Resume {
                run_id,
                night,
                phase,
                stale: false,
                ..
            } => format!(
                "start-up: run {run_id} (night {night}) was interrupted in phase {phase}; resuming now"
            ),
            StartupDecision::WaitNextNight {
                run_id,
                night,
                error,
            } => format!(
                "start-up: tonight's run {run_id} (night {night}) failed: {error}; not retrying \
                 tonight, next run {next} (`student-sync run --now` retries sooner)"
            ),
            StartupDecision::WaitSchedule { last: None } => {
                format!("start-up: no run yet; first run {next}")
            }
            StartupDecision::WaitSchedule {
                last: Some(last), ..
            } => match &last.error {
                Some(error) => format!(
                    "start-up: last run {} (night {}) {}: {error}; waiting for the schedule, next run {next}",
                    last.run_id, last.night, last.status
                ),
                None => format!(
                    "start-up: last run {} (night {}) {}; waiting for the schedule, next run {next}",
                    last.run_id, last.night, last.status
                ),
            },
        }
    }
}

/// Errors can span lines (a database error's detail); a log line must not.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
