//! One sync run: fetch → plan (stage, reconcile, rules) → apply in one
//! transaction, with the run's row written first and its report at the end.
//! Also the small pieces built on the same path: the access
//! export, `plan` (the same fetch and plan, writing nothing), safety holds
//! with `approve`/`discard`, and spot syncs of one student or guardian.

use crate::config::Settings;
use crate::powerschool::{DistrictSnapshot, PowerSchoolClient};
use crate::store::digest::Detail;
use crate::store::district::WriteGate;
use crate::store::runs::{self, RunPhase, RunStatus, RunTrigger};
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod apply;
mod baseline;
mod error;
pub mod explain;
pub mod facts;
pub mod hold;
pub mod plan;
mod prepare;
pub mod preview;
pub mod progress;
pub mod report;
pub mod safety;
pub mod screen;
pub mod spot;

pub use apply::FailPoint;
pub(crate) use error::to_json;
pub use error::SyncError;
pub use plan::{plan, Plan};
pub use prepare::{prepare, prepare_owned, read_state, Prepared, StateRead};
pub use preview::{preview, preview_observed};
pub use progress::{ProgressCounts, RunProgress};
pub use report::RunReport;

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
    /// The backend pid of the session holding the run lock for this run:
    /// checked again, under the writer lock, right before anything is
    /// applied. None when the caller holds no run lock (library tests).
    pub run_lock_backend: Option<i32>,
    /// Told of the run's phases, records fetched and rows written (the
    /// command line draws bars from it). A run without one makes its own:
    /// the counts always reach the run's row for `status`.
    pub progress: Option<Arc<RunProgress>>,
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
            run_lock_backend: None,
            progress: None,
        }
    }

    /// The writer gate of this run's writes (see `store::district`).
    pub fn gate(&self, settings: &Settings) -> WriteGate {
        WriteGate::new(&settings.district, self.run_lock_backend)
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
    // A database of another district is refused before anything is written.
    crate::store::district::check(pool, &settings.district).await?;
    let run_id = runs::start_run(pool, options.trigger, options.night).await?;
    let mut options = options.clone();
    let progress = options
        .progress
        .get_or_insert_with(RunProgress::new)
        .clone();
    progress.set_phase(RunPhase::Fetching);
    let row_updates = progress::spawn_row_updates(pool.clone(), run_id, progress.clone());
    let options = &options;
    let result = {
        use tracing::Instrument;
        let work = within_deadline(
            pool,
            settings.sync.run_deadline,
            run_id,
            run_attempts(pool, settings, client, options, run_id),
        )
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
    row_updates.abort();
    if result.is_ok() {
        progress.set_phase(RunPhase::Done);
    }
    match result {
        Ok(report) => Ok(RunOutcome { run_id, report }),
        // Already recorded (status `held`, plan stored) and logged.
        Err(e @ SyncError::Held { .. }) => Err(e),
        Err(e) => {
            let status = match e {
                SyncError::Cancelled(_) => RunStatus::Interrupted,
                _ => RunStatus::Failed,
            };
            tracing::error!(run_id, error = %e, "run {} {}", run_id, status.as_str());
            mark_unsuccessful(pool, run_id, status, &e).await;
            Err(e)
        }
    }
}

/// Records that a run ended without success (`failed`, or `interrupted` so
/// the next start resumes it). The run's own error is what the caller
/// returns; a failure to record it is only logged.
async fn mark_unsuccessful(pool: &PgPool, run_id: i64, status: RunStatus, error: &SyncError) {
    if let Err(mark) = runs::finish_unsuccessful(pool, run_id, status, &error.to_string()).await {
        tracing::error!(run_id, error = %mark, "could not record the run's failure");
    }
}

/// The run's work, stopped (its transaction rolled back) when it passes
/// `sync.run_deadline_mins`.
async fn within_deadline(
    pool: &PgPool,
    deadline: Duration,
    run_id: i64,
    work: impl std::future::Future<Output = Result<RunReport, SyncError>>,
) -> Result<RunReport, SyncError> {
    match tokio::time::timeout(deadline, work).await {
        Ok(r) => r,
        Err(_) => {
            let phase = runs::get_run(pool, run_id)
                .await
                .map(|r| r.phase.to_string())
                .unwrap_or_else(|_| "unknown".to_string());
            let secs = deadline.as_secs();
            let limit = if secs >= 60 && secs.is_multiple_of(60) {
                format!("{} min", secs / 60)
            } else {
                format!("{:.1} s", deadline.as_secs_f64())
            };
            Err(SyncError::Deadline { limit, phase })
        }
    }
}

/// The run's phases, tried again (from the fetch, on the same run row)
/// when the database fails in passing: a restart or failover that night
/// costs a retry, not the night. `database.transient_retries` times at
/// most, waiting `database.retry_backoff_secs`, doubled each time.
async fn run_attempts(
    pool: &PgPool,
    settings: &Settings,
    client: &PowerSchoolClient,
    options: &RunOptions,
    run_id: i64,
) -> Result<RunReport, SyncError> {
    use backon::{ExponentialBuilder, Retryable};
    let retries = settings.database.transient_retries;
    let backoff = ExponentialBuilder::new()
        .with_factor(2.0)
        .with_min_delay(settings.database.retry_backoff)
        .with_max_delay(Duration::from_secs(300))
        .with_max_times(retries as usize);
    let attempts = std::sync::atomic::AtomicU32::new(0);
    (|| async {
        if attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
            // Best effort: the attempt records its own phases from here.
            let _ = runs::set_phase(pool, run_id, RunPhase::Fetching).await;
            if let Some(p) = &options.progress {
                p.set_phase(RunPhase::Fetching);
            }
        }
        run_phases(pool, settings, client, options, run_id).await
    })
    .retry(backoff)
    .when(SyncError::is_transient_database)
    .notify(|e, wait| {
        let retry = attempts.load(std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            run_id,
            retry,
            retries,
            error = %e,
            "run {run_id}: the database failed in passing ({e}); nothing was applied, \
             trying the run again in {:.1} s (retry {retry} of {retries})",
            wait.as_secs_f64()
        );
    })
    .await
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
    let client = &baseline::believing_last_run(pool, client).await?;
    let fetch = async {
        match &options.progress {
            Some(p) => client.observed_by(p.clone()).fetch_district().await,
            None => client.fetch_district().await,
        }
    };
    // The state is read while PowerSchool answers (the database and the
    // HTTP fetch wait on different machines), on a task of its own: a task
    // polls one future at a time, so decoding the state's rows beside the
    // fetch would hold back the fetch's requests. A fetch error (or a
    // cancelled run) drops the handle, which drops the read: its read-only
    // snapshot is rolled back.
    let (mut snapshot, read) = if prepare::may_read_during_fetch(pool) {
        use futures::FutureExt;
        use tracing::Instrument;
        let pool = pool.clone();
        let (reading, read) = async move { read_state(&pool, Detail::Digests).await }
            .in_current_span()
            .remote_handle();
        tokio::spawn(reading);
        let (snapshot, read) =
            tokio::try_join!(async { fetch.await.map_err(SyncError::from) }, read)?;
        (snapshot, Some(read))
    } else {
        (fetch.await?, None)
    };
    screen::screen(&mut snapshot);
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
    finish_with_state(pool, settings, options, run_id, snapshot, read, started).await
}

/// Plan and apply for a snapshot already fetched. A plan that crosses a
/// safety threshold is stored instead, the run marked `held`, and
/// `SyncError::Held` returned.
pub async fn finish_from_snapshot(
    pool: &PgPool,
    settings: &Settings,
    options: &RunOptions,
    run_id: i64,
    snapshot: DistrictSnapshot,
    started: Instant,
) -> Result<RunReport, SyncError> {
    finish_with_state(pool, settings, options, run_id, snapshot, None, started).await
}

/// `finish_from_snapshot` with the state already read during the fetch, or
/// read now (None).
async fn finish_with_state(
    pool: &PgPool,
    settings: &Settings,
    options: &RunOptions,
    run_id: i64,
    snapshot: DistrictSnapshot,
    read: Option<StateRead>,
    started: Instant,
) -> Result<RunReport, SyncError> {
    let (plan, safety, fingerprint) =
        planning_phase(pool, settings, options, run_id, snapshot, read).await?;
    let gate = options.gate(settings);
    if safety.holds() {
        let held = hold_for_approval(pool, &gate, run_id, &plan, &safety, &fingerprint, started);
        return Err(held.await);
    }
    applying_phase(pool, &gate, options, run_id, plan, started).await
}

/// The run's planning phase: the state read, the plan made and measured
/// against the safety thresholds (see `prepare`). The fetched records are
/// consumed by the plan and the state freed before anything is written:
/// the plan holds all it needs.
async fn planning_phase(
    pool: &PgPool,
    settings: &Settings,
    options: &RunOptions,
    run_id: i64,
    snapshot: DistrictSnapshot,
    read: Option<StateRead>,
) -> Result<(Plan, safety::SafetyCheck, String), SyncError> {
    runs::set_phase(pool, run_id, RunPhase::Planning).await?;
    if let Some(p) = &options.progress {
        p.set_phase(RunPhase::Planning);
    }
    let phase = Instant::now();
    tracing::info!(
        "run {run_id} planning: reading the current state and deciding every connection"
    );
    let Prepared {
        plan,
        safety,
        fingerprint,
        state,
    } = heartbeat(run_id, "planning", async {
        let read = match read {
            Some(read) => read,
            None => read_state(pool, Detail::Digests).await?,
        };
        prepare_owned(settings, snapshot, read, options.today).await
    })
    .await?;
    drop(state);
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        "plan ready: {}",
        report::one_line(&plan.counts)
    );
    Ok((plan, safety, fingerprint))
}

/// Stores a plan that crossed a safety threshold (with the fingerprint of
/// the state it was made from) and marks the run `held`; nothing is
/// applied. Returns the error the run ends with: `SyncError::Held`, or what
/// kept the plan from being stored.
async fn hold_for_approval(
    pool: &PgPool,
    gate: &WriteGate,
    run_id: i64,
    plan: &Plan,
    safety: &safety::SafetyCheck,
    fingerprint: &str,
    started: Instant,
) -> SyncError {
    let reason = safety.reason();
    let mut report = RunReport::from_plan(run_id, plan);
    report.duration = started.elapsed();
    let encoded = || -> Result<_, SyncError> {
        let bytes = serde_json::to_vec(plan).map_err(|source| SyncError::Serialise {
            what: "the held plan",
            source,
        })?;
        Ok((
            to_json(&plan.counts, "the plan's counts")?,
            to_json(&report, "the run's report")?,
            bytes,
        ))
    };
    let (counts, report_json, bytes) = match encoded() {
        Ok(e) => e,
        Err(e) => return e,
    };
    let stored = hold::store_hold(
        pool,
        gate,
        run_id,
        &bytes,
        fingerprint,
        &reason,
        &counts,
        &report_json,
    )
    .await;
    if let Err(e) = stored {
        return e.into();
    }
    tracing::warn!(
        run_id,
        thresholds = %reason,
        "run {run_id} HELD for approval, nothing applied: {reason}; review with \
         `student-sync approve {run_id} --dry-run`, then `student-sync approve {run_id}` \
         or `student-sync discard {run_id}`"
    );
    SyncError::Held { run_id, reason }
}

/// The run's applying phase: every write of the plan in one transaction,
/// then the plan freed.
async fn applying_phase(
    pool: &PgPool,
    gate: &WriteGate,
    options: &RunOptions,
    run_id: i64,
    plan: Plan,
    started: Instant,
) -> Result<RunReport, SyncError> {
    let phase = Instant::now();
    tracing::info!(
        "run {run_id} applying in one transaction: {}",
        report::one_line(&plan.counts)
    );
    let progress = options.progress.as_deref();
    let mut plan = plan;
    let mut report = apply_run(pool, gate, run_id, &mut plan, options.fail_point, progress).await?;
    report.duration = started.elapsed();
    tracing::info!(
        seconds = phase.elapsed().as_secs_f64(),
        total_seconds = report.duration.as_secs_f64(),
        "run {run_id} succeeded: {}",
        report::one_line(&plan.counts)
    );
    drop(plan);
    Ok(report)
}

/// Applies a run's plan: the run's phase becomes `applying`, and the plan's
/// rows, problems, audit and the run's report (stored with a zero
/// duration) commit in one transaction. Nightly and spot runs both write
/// through here; returns the report.
async fn apply_run(
    pool: &PgPool,
    gate: &WriteGate,
    run_id: i64,
    plan: &mut Plan,
    fail_point: Option<FailPoint>,
    progress: Option<&RunProgress>,
) -> Result<RunReport, SyncError> {
    runs::set_phase(pool, run_id, RunPhase::Applying).await?;
    if let Some(p) = progress {
        p.will_write(apply::rows_to_write(plan));
        p.set_phase(RunPhase::Applying);
    }
    let report = RunReport::from_plan(run_id, plan);
    let report_json = to_json(&report, "the run's report")?;
    heartbeat(
        run_id,
        "applying",
        apply::apply(pool, gate, run_id, plan, &report_json, fail_point, progress),
    )
    .await?;
    Ok(report)
}

/// The daemon's run-lock key for the district (`hashtext` of it is the lock).
pub fn run_lock_key(settings: &Settings) -> String {
    crate::store::lock::run_lock_key(&settings.district)
}

/// How often a long phase says it is still going.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Runs one phase, logging every `HEARTBEAT` that it is still going, so a
/// quiet log never leaves on-call guessing whether a run is stuck. (The
/// fetch logs records so far and their rate itself.)
async fn heartbeat<T>(run_id: i64, phase: &str, work: impl std::future::Future<Output = T>) -> T {
    // tokio's clock, so tests can run it on paused time.
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => tracing::info!(
                phase,
                seconds = started.elapsed().as_secs(),
                "run {run_id} still {phase}: {} s so far",
                started.elapsed().as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_phase_says_every_ten_seconds_that_it_is_still_going() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let out = heartbeat(7, "applying", async {
            tokio::time::sleep(Duration::from_secs(35)).await;
            42
        })
        .await;
        assert_eq!(out, 42, "the phase's own result comes back");
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("still applying"))
            .collect();
        assert_eq!(lines.len(), 3, "at 10, 20 and 30 s: {text}");
        assert!(
            lines[0].contains("run 7 still applying: 10 s so far"),
            "{text}"
        );
        assert!(lines[2].contains("30 s so far"), "{text}");
    }
}
