//! One sync run: fetch → plan (stage, reconcile, rules) → apply in one
//! transaction, with the run's row written first and its report at the end.
//! Also the small pieces built on the same path: seeding a world and the
//! access export.

use crate::config::Settings;
use crate::powerschool::{DistrictSnapshot, PowerSchoolClient, PowerSchoolError};
use crate::store::runs::{self, RunPhase, RunStatus, RunTrigger};
use crate::store::{state::CurrentState, StoreError};
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use std::time::{Duration, Instant};

pub mod apply;
pub mod explain;
pub mod plan;
pub mod report;
pub mod seed;
pub mod world_settings;

pub use apply::FailPoint;
pub use plan::{plan, Plan};
pub use report::RunReport;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("fetching from PowerSchool failed: {0}")]
    PowerSchool(#[from] PowerSchoolError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("failure injected {0} (test fail point)")]
    Injected(&'static str),
    #[error("the run was cancelled: {0}")]
    Cancelled(String),
}

/// How one run is started.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub trigger: RunTrigger,
    /// The district night the run belongs to.
    pub night: NaiveDate,
    /// The district's local date, for the scheduling-year rule.
    pub today: NaiveDate,
    pub fail_point: Option<FailPoint>,
    /// Set to true to cancel the run: its transaction rolls back and its row
    /// says `interrupted`, so the next start resumes it.
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
}

impl RunOptions {
    /// A run for now, in the district's time zone.
    pub fn now(settings: &Settings, trigger: RunTrigger) -> RunOptions {
        let today = chrono::Utc::now()
            .with_timezone(&settings.schedule.timezone)
            .date_naive();
        RunOptions {
            trigger,
            night: today,
            today,
            fail_point: None,
            cancel: None,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: i64,
    pub report: RunReport,
}

/// One full run against the configured PowerSchool. The run's row is
/// committed before anything else; a failure marks it `failed` after the
/// run's transaction has rolled back.
pub async fn run_once(
    pool: &PgPool,
    settings: &Settings,
    client: &PowerSchoolClient,
    options: &RunOptions,
) -> Result<RunOutcome, SyncError> {
    let run_id = runs::start_run(pool, options.trigger, options.night).await?;
    let result = {
        use tracing::Instrument;
        let work = run_phases(pool, settings, client, options, run_id)
            .instrument(tracing::info_span!("run", run_id));
        match options.cancel.clone() {
            None => work.await,
            Some(mut cancel) => {
                // Dropping the unfinished work drops its transaction, which rolls back.
                tokio::select! {
                    r = work => r,
                    _ = cancel.wait_for(|c| *c) => Err(SyncError::Cancelled("stop requested (signal)".into())),
                }
            }
        }
    };
    match result {
        Ok(report) => Ok(RunOutcome { run_id, report }),
        Err(e) => {
            let status = match e {
                SyncError::Cancelled(_) => RunStatus::Interrupted,
                _ => RunStatus::Failed,
            };
            tracing::error!(run_id, error = %e, "run {} {}", run_id, status.as_str());
            if let Err(mark) = runs::finish_unsuccessful(pool, run_id, status, &e.to_string()).await
            {
                tracing::error!(run_id, error = %mark, "could not record the run's failure");
            }
            Err(e)
        }
    }
}

async fn run_phases(
    pool: &PgPool,
    settings: &Settings,
    client: &PowerSchoolClient,
    options: &RunOptions,
    run_id: i64,
) -> Result<RunReport, SyncError> {
    let started = Instant::now();
    tracing::info!(trigger = options.trigger.as_str(), night = %options.night, "run {run_id} started: fetching from PowerSchool");
    let snapshot = client.fetch_district().await?;
    let fetch_time = started.elapsed();
    tracing::info!(
        guardians = snapshot.guardians.len(),
        students = snapshot.students.len(),
        independent_students = snapshot.independent_students.len(),
        contacts = snapshot.contacts.len(),
        problems = snapshot.problems.len(),
        seconds = fetch_time.as_secs_f64(),
        "fetch finished"
    );
    finish_from_snapshot(pool, settings, options, run_id, &snapshot, started).await
}

/// Plan and apply for a snapshot already fetched.
pub async fn finish_from_snapshot(
    pool: &PgPool,
    settings: &Settings,
    options: &RunOptions,
    run_id: i64,
    snapshot: &DistrictSnapshot,
    started: Instant,
) -> Result<RunReport, SyncError> {
    runs::set_phase(pool, run_id, RunPhase::Planning).await?;
    let phase = Instant::now();
    let state = CurrentState::load(pool).await?;
    let plan = plan::plan(snapshot, &state, &settings.sync, options.today);
    drop(state);
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        "plan ready: {}",
        report::one_line(&plan.counts)
    );

    runs::set_phase(pool, run_id, RunPhase::Applying).await?;
    let phase = Instant::now();
    let mut report = RunReport::from_plan(run_id, &plan);
    report.duration = Duration::ZERO;
    let report_json = serde_json::to_value(&report).expect("report serialises");
    apply::apply(pool, run_id, &plan, &report_json, options.fail_point).await?;
    report.duration = started.elapsed();
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        total_seconds = report.duration.as_secs_f64(),
        "run {run_id} succeeded: {}",
        report::one_line(&plan.counts)
    );
    Ok(report)
}
