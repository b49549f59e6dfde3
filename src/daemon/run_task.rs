//! One run of the daemon, from taking the run lock to its outcome line: the
//! run on a task of its own, followed phase by phase, cancelled (within the
//! grace period) on a stop, then counted in `/metrics` and logged in one line
//! that says what comes next. `run --now` uses the same task and lock.

use super::clock::Clock;
use super::decision::STALE_RUN_ERROR;
use super::locking;
use super::progress::Progress;
use super::schedule::local_text;
use super::service::Daemon;
use super::signals::{Stop, Stops};
use super::{telemetry, DaemonError};
use crate::config::Settings;
use crate::powerschool::PowerSchoolClient;
use crate::store::lock::{self, HeldLock, LockKind};
use crate::store::runs::{self, RunStatus};
use crate::store::RunTrigger;
use crate::sync::{self, report, RunOptions, RunOutcome, SyncError};
use chrono::{NaiveDate, Utc};
use sqlx::PgPool;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a running run's phase is read back for STATUS and metrics.
const PROGRESS_POLL: Duration = Duration::from_millis(500);

/// How a run attempt ended, for the loop.
pub(super) enum RunEnd {
    Succeeded,
    /// Failed (or could not start): no more scheduled runs for its night.
    Failed,
    Stopped(Stop),
}

impl RunEnd {
    /// The loop goes on (with the night whose run failed, if one did) or
    /// stops. A failed night stays failed after a later success of another.
    pub fn next(
        self,
        night: NaiveDate,
        failed_night: Option<NaiveDate>,
    ) -> ControlFlow<Stop, Option<NaiveDate>> {
        match self {
            RunEnd::Succeeded => ControlFlow::Continue(failed_night),
            RunEnd::Failed => ControlFlow::Continue(Some(night)),
            RunEnd::Stopped(stop) => ControlFlow::Break(stop),
        }
    }
}

/// How following a run ended.
enum Watched {
    Ended {
        /// Boxed: a run's outcome is large beside a stop.
        result: Box<Result<RunOutcome, SyncError>>,
        /// The stop that cancelled it, if one did.
        stopped: Option<Stop>,
    },
    /// Cancelled, but it did not stop within the grace period.
    Abandoned(Stop),
}

impl<C: Clock> Daemon<C> {
    /// Waits for the run lock, saying who holds it. None when stopped.
    pub(super) async fn run_lock(
        &self,
        why: &str,
        stops: &mut Stops,
    ) -> Result<Option<HeldLock>, DaemonError> {
        let notifier = self.notifier.clone();
        locking::take(
            &self.settings,
            &self.pool,
            LockKind::Run,
            &lock::application_name("daemon"),
            &mut stops.shutdown,
            |who| {
                tracing::info!(holder = %who, "waiting for the run lock, held by {who} ({why})");
                notifier.status(&format!("waiting for the run in progress by {who}"));
            },
        )
        .await
    }

    /// One run, from taking the run lock (unless `held` already is it) to
    /// its outcome line.
    pub(super) async fn execute(
        &self,
        trigger: RunTrigger,
        night: NaiveDate,
        held: Option<HeldLock>,
        stops: &mut Stops,
    ) -> Result<RunEnd, DaemonError> {
        let run_lock = match held {
            Some(l) => l,
            None => match self
                .run_lock("this run starts when it is free", stops)
                .await?
            {
                Some(l) => l,
                None => return Ok(RunEnd::Stopped(Stop::Requested)),
            },
        };
        let client = match PowerSchoolClient::new(&self.settings.powerschool) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, %night, "cannot start the run for night {night}: {e}");
                telemetry::run_finished(
                    trigger.as_str(),
                    RunStatus::Failed.as_str(),
                    Duration::ZERO,
                );
                run_lock.release().await;
                return Ok(RunEnd::Failed);
            }
        };
        telemetry::set_in_progress(true);
        let started = Instant::now();
        let mut progress = Progress::new(self.notifier.clone(), night);
        let mut options = self.run_options(trigger, night);
        options.run_lock_backend = Some(run_lock.backend_pid());
        let phases = crate::sync::RunProgress::new();
        options.progress = Some(phases.clone());
        self.liveness.run_started();
        let run = RunTask::spawn(self.pool.clone(), self.settings.clone(), client, options);
        let watched = self.follow(run, &mut progress, stops).await;
        self.notifier
            .status(&format!("{} ended (night {night})", progress.run_text()));
        self.liveness.run_ended();
        self.health_refresh.notify_one();
        let took = started.elapsed();
        telemetry::set_in_progress(false);
        let (result, stopped) = match watched {
            Watched::Ended { result, stopped } => (*result, stopped),
            // Its lock goes with its connection, dropped here.
            Watched::Abandoned(stop) => return Ok(RunEnd::Stopped(stop)),
        };
        if result.is_ok() {
            for (phase, took) in phases.finished_phases() {
                telemetry::phase_finished(phase.as_str(), took);
            }
        }
        let run_id = match &result {
            Ok(outcome) => Some(outcome.run_id),
            Err(_) => match progress.run_id {
                Some(id) => Some(id),
                None => latest_run_id(&self.pool).await,
            },
        };
        self.log_outcome(trigger, night, run_id, &result, took);
        if result.is_ok() && stopped.is_none() {
            // After the run committed, still under the run lock: no run
            // writes while old history goes.
            prune_history(&self.pool, &self.settings).await;
        }
        run_lock.release().await;
        Ok(match (stopped, result.is_ok()) {
            (Some(stop), _) => RunEnd::Stopped(stop),
            (None, true) => RunEnd::Succeeded,
            (None, false) => RunEnd::Failed,
        })
    }

    fn run_options(&self, trigger: RunTrigger, night: NaiveDate) -> RunOptions {
        let today = self
            .clock
            .now()
            .with_timezone(&self.schedule.timezone())
            .date_naive();
        RunOptions {
            trigger,
            night,
            today,
            fail_point: self.fail_point,
            cancel: None,
            run_lock_backend: None,
            progress: None,
        }
    }

    /// Follows the run's phase until it ends; on a stop, cancels it and
    /// gives it the grace period to roll back.
    async fn follow(
        &self,
        mut run: RunTask,
        progress: &mut Progress,
        stops: &mut Stops,
    ) -> Watched {
        let mut tick = tokio::time::interval(PROGRESS_POLL);
        let stop = loop {
            tokio::select! {
                result = run.finished() => return Watched::Ended { result: Box::new(result), stopped: None },
                _ = tick.tick() => {
                    let before = (progress.run_id, progress.phase());
                    progress.poll(&self.pool).await;
                    self.liveness.observe(progress.phase(), run.pages_fetched());
                    if (progress.run_id, progress.phase()) != before {
                        // /healthz shows the run's new phase without waiting.
                        self.health_refresh.notify_one();
                    }
                }
                stop = stops.next() => break stop,
            }
        };
        let grace = cancel_budget(self.settings.daemon.grace_period);
        if progress.run_id.is_none() {
            progress.poll(&self.pool).await;
        }
        let id = progress.run_text();
        let run_id = progress.run_id;
        match &stop {
            Stop::Requested => tracing::info!(
                run_id,
                "stopping: cancelling {id} (it rolls back and is marked interrupted)"
            ),
            Stop::LockLost(why) => {
                tracing::error!(run_id, "lost the district lock ({why}): cancelling {id}")
            }
        }
        self.notifier.stopping();
        self.notifier.status(&format!("stopping: cancelling {id}"));
        match run.cancel(grace).await {
            Some(result) => Watched::Ended {
                result: Box::new(result),
                stopped: Some(stop),
            },
            None => {
                tracing::error!(run_id, "{id} did not stop within {} s; leaving it (the next start marks it interrupted and resumes it)", grace.as_secs());
                Watched::Abandoned(stop)
            }
        }
    }

    /// The run's line in the log and its count in `/metrics`.
    fn log_outcome(
        &self,
        trigger: RunTrigger,
        night: NaiveDate,
        run_id: Option<i64>,
        result: &Result<RunOutcome, SyncError>,
        took: Duration,
    ) {
        let what = format!(
            "run {} ({}, night {night})",
            run_id.map(|i| i.to_string()).unwrap_or_else(|| "?".into()),
            trigger.as_str()
        );
        let next = match self.schedule.next_scheduled(self.clock.now()) {
            Ok(n) => local_text(n.fire),
            Err(e) => format!("unknown ({e})"),
        };
        let seconds = took.as_secs_f64();
        match result {
            Ok(outcome) => {
                telemetry::run_finished(trigger.as_str(), RunStatus::Succeeded.as_str(), took);
                telemetry::run_succeeded(&outcome.report, Utc::now());
                tracing::info!(
                    run_id = outcome.run_id,
                    seconds,
                    "{what} succeeded in {seconds:.1} s: {}; next run {next}",
                    report::one_line(&outcome.report.counts)
                );
            }
            Err(e @ SyncError::Held { .. }) => {
                // Nothing applied; a person decides. Repeating the run
                // tonight would only hold it again.
                telemetry::run_finished(trigger.as_str(), RunStatus::Held.as_str(), took);
                tracing::warn!(
                    run_id,
                    "{what} held after {seconds:.1} s, nothing applied: {e}; next run {next}"
                );
            }
            Err(SyncError::Cancelled(_)) => {
                telemetry::run_finished(trigger.as_str(), RunStatus::Interrupted.as_str(), took);
                tracing::warn!(
                    run_id,
                    "{what} interrupted after {seconds:.1} s: rolled back; the next start resumes it"
                );
            }
            Err(e) => {
                telemetry::run_finished(trigger.as_str(), RunStatus::Failed.as_str(), took);
                tracing::error!(
                    run_id,
                    error = %e,
                    "{what} failed after {seconds:.1} s: {e}; not retrying tonight, next run {next} \
                     (`student-sync run --now` retries sooner)"
                );
            }
        }
    }
}

/// A run on a task of its own, so the loop can watch its phase and stop
/// requests without pausing it.
pub(super) struct RunTask {
    handle: JoinHandle<Result<RunOutcome, SyncError>>,
    cancel: watch::Sender<bool>,
    /// A clone of the run's client, for its page count (progress).
    client: PowerSchoolClient,
}

impl RunTask {
    /// Starts the run; `options.cancel` is set to this task's own switch.
    pub fn spawn(
        pool: PgPool,
        settings: Settings,
        client: PowerSchoolClient,
        mut options: RunOptions,
    ) -> RunTask {
        let (cancel, cancelled) = watch::channel(false);
        options.cancel = Some(cancelled);
        let watched = client.clone();
        let handle = tokio::spawn(async move {
            let run =
                std::panic::AssertUnwindSafe(sync::run_once(&pool, &settings, &client, &options));
            match futures::FutureExt::catch_unwind(run).await {
                Ok(result) => result,
                Err(panic) => Err(record_panic(&pool, panic_text(panic.as_ref())).await),
            }
        });
        RunTask {
            handle,
            cancel,
            client: watched,
        }
    }

    /// PowerQuery pages the run has fetched so far.
    pub fn pages_fetched(&self) -> u64 {
        self.client.stats().pages_fetched
    }

    /// The run's result, once it ends.
    pub async fn finished(&mut self) -> Result<RunOutcome, SyncError> {
        flatten((&mut self.handle).await)
    }

    /// Cancels the run (it rolls back and marks its row `interrupted`) and
    /// waits up to `grace` for it; None when it did not stop in time (its
    /// task is then aborted).
    pub async fn cancel(mut self, grace: Duration) -> Option<Result<RunOutcome, SyncError>> {
        let _ = self.cancel.send(true);
        match tokio::time::timeout(grace, &mut self.handle).await {
            Ok(r) => Some(flatten(r)),
            Err(_) => {
                self.handle.abort();
                None
            }
        }
    }
}

/// A panic's message (`panic!` gives a `&str` or a `String`).
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Records a run that panicked as `failed`, with the panic's message: a
/// panic is a bug, and resuming the run would only panic again. The row
/// still `running` is this run's (the caller holds the run lock).
async fn record_panic(pool: &PgPool, message: String) -> SyncError {
    let error = SyncError::Panicked(message);
    match runs::current_running(pool).await {
        Ok(Some(run)) => {
            tracing::error!(run_id = run.id, error = %error, "run {} failed: {error}", run.id);
            let text = error.to_string();
            let recorded = runs::finish_unsuccessful(pool, run.id, RunStatus::Failed, &text);
            if let Err(e) = recorded.await {
                tracing::error!(run_id = run.id, error = %e, "could not record the run's panic");
            }
        }
        Ok(None) => {
            tracing::error!(error = %error, "a run panicked before its row was written: {error}")
        }
        Err(e) => {
            tracing::error!(error = %e, "a run panicked ({error}) and its row could not be read")
        }
    }
    error
}

fn flatten(
    r: Result<Result<RunOutcome, SyncError>, tokio::task::JoinError>,
) -> Result<RunOutcome, SyncError> {
    r.unwrap_or_else(|e| {
        Err(SyncError::Cancelled(format!(
            "the run's task ended abnormally: {e}"
        )))
    })
}

/// Of the grace period, the part a cancelled run gets to roll back and mark
/// its row; the rest is for closing connections.
pub(super) fn cancel_budget(grace: Duration) -> Duration {
    grace
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(500))
}

/// Marks the runs a dead process left `running` as interrupted. Only under
/// the run lock: then no live process owns any of them.
pub(super) async fn mark_stale_runs(pool: &PgPool) -> Result<(), DaemonError> {
    let stale = runs::mark_all_stale(pool, STALE_RUN_ERROR).await?;
    if !stale.is_empty() {
        tracing::warn!(runs = ?stale, "marked runs left running by a dead process as interrupted: {stale:?}");
    }
    Ok(())
}

/// Removes the run history the `[retention]` settings no longer keep, in
/// batches, and logs what went. A failure is logged; the run stays a success.
pub(super) async fn prune_history(pool: &PgPool, settings: &Settings) {
    match crate::store::prune::prune(pool, &settings.retention).await {
        Ok(pruned) if pruned.is_empty() => {
            tracing::debug!("nothing past the retention to prune")
        }
        Ok(pruned) => tracing::info!(
            runs = pruned.runs,
            problems = pruned.problems,
            audit_rows = pruned.audit_rows,
            "{} (retention: {} days, at least {} runs)",
            pruned.to_text(),
            settings.retention.keep_days,
            settings.retention.keep_runs
        ),
        Err(e) => {
            tracing::warn!(error = %e, "pruning old run history failed: {e}; the next successful run tries again")
        }
    }
}

/// The id of the newest full run, for naming a run that failed before it
/// reported its own id.
pub(super) async fn latest_run_id(pool: &PgPool) -> Option<i64> {
    runs::latest_full_run(pool)
        .await
        .ok()
        .flatten()
        .map(|r| r.id)
}
