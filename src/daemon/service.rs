//! The daemon loop and `run --now`.
//!
//! Life of a daemon: serve `/healthz` and `/metrics`; take the district lock
//! (or wait for it as a standby); tell systemd it is ready; decide from the
//! run history whether to resume an interrupted run; then sleep until each
//! fire of the schedule, skip blackout nights, and run. Every run holds the
//! run lock, is cancelled through `RunOptions.cancel` on a stop, and ends in
//! one log line.

use super::clock::{Clock, SystemClock};
use super::decision::{decide, StartupDecision, STALE_RUN_ERROR};
use super::lock::{self, Acquired, HeldLock, LockHolder, LockKind};
use super::notify::Notifier;
use super::schedule::{local_text, next_fire, Schedule};
use super::signals::Shutdown;
use super::{history, http, telemetry, DaemonError};
use crate::config::Settings;
use crate::powerschool::PowerSchoolClient;
use crate::store::RunTrigger;
use crate::sync::{self, report, RunOptions, RunOutcome, RunReport, SyncError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How often a running run's phase is read back for STATUS and metrics.
const PROGRESS_POLL: Duration = Duration::from_millis(500);
/// How often the district lock's connection is checked.
const LOCK_CHECK: Duration = Duration::from_secs(15);

pub struct Daemon<C: Clock = SystemClock> {
    settings: Settings,
    pool: PgPool,
    clock: C,
    schedule: Schedule,
    notifier: Arc<Notifier>,
}

/// A started daemon: its HTTP address, and the loop to wait for.
pub struct RunningDaemon {
    pub http_addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
    shutdown: Shutdown,
    grace: Duration,
}

impl RunningDaemon {
    /// Waits for the daemon to stop. Once a stop is requested this returns
    /// within the grace period, whatever the loop is doing.
    pub async fn wait(self) -> Result<(), DaemonError> {
        let RunningDaemon {
            mut task,
            mut shutdown,
            grace,
            ..
        } = self;
        tokio::select! {
            r = &mut task => return joined(r),
            _ = shutdown.requested() => {}
        }
        match tokio::time::timeout(grace, &mut task).await {
            Ok(r) => joined(r),
            Err(_) => {
                tracing::error!(
                    grace_seconds = grace.as_secs(),
                    "the daemon did not stop within the grace period; exiting anyway (the next start resumes any run left behind)"
                );
                task.abort();
                Ok(())
            }
        }
    }
}

fn joined(r: Result<Result<(), DaemonError>, tokio::task::JoinError>) -> Result<(), DaemonError> {
    r.unwrap_or_else(|e| Err(DaemonError::Internal(e.to_string())))
}

/// Why the loop must stop.
enum Stop {
    Requested,
    LockLost(String),
}

/// The two things that stop the loop: a stop request, and (once active)
/// losing the district lock's connection.
struct Stops {
    shutdown: Shutdown,
    lost: Option<oneshot::Receiver<String>>,
}

impl Stops {
    async fn next(&mut self) -> Stop {
        match &mut self.lost {
            None => {
                self.shutdown.requested().await;
                Stop::Requested
            }
            Some(lost) => tokio::select! {
                _ = self.shutdown.requested() => Stop::Requested,
                why = lost => {
                    self.lost = None;
                    Stop::LockLost(why.unwrap_or_else(|_| "the lock keeper ended".to_string()))
                }
            },
        }
    }
}

/// How a run attempt ended, for the loop.
enum RunEnd {
    Succeeded,
    /// Failed (or could not start): no more scheduled runs for its night.
    Failed,
    Stopped(Stop),
}

impl Daemon<SystemClock> {
    pub fn new(settings: Settings, pool: PgPool) -> Result<Self, DaemonError> {
        Daemon::with_clock(settings, pool, SystemClock)
    }
}

impl<C: Clock> Daemon<C> {
    pub fn with_clock(settings: Settings, pool: PgPool, clock: C) -> Result<Self, DaemonError> {
        let schedule = Schedule::new(&settings.schedule)?;
        Ok(Daemon::with_schedule(settings, pool, clock, schedule))
    }

    pub fn with_schedule(settings: Settings, pool: PgPool, clock: C, schedule: Schedule) -> Self {
        Daemon {
            settings,
            pool,
            clock,
            schedule,
            notifier: Arc::new(Notifier::from_env()),
        }
    }

    /// Replaces the notifier read from `NOTIFY_SOCKET`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Arc::new(notifier);
        self
    }

    /// Binds the HTTP listener (so a bad `daemon.listen` fails here), then
    /// runs the loop in the background until `shutdown` turns true.
    pub async fn start(
        self,
        shutdown: watch::Receiver<bool>,
    ) -> Result<RunningDaemon, DaemonError> {
        let shutdown = Shutdown::new(shutdown);
        let metrics = telemetry::handle();
        telemetry::init_series();
        telemetry::set_active(false);
        let (http_addr, _http) = http::serve(
            self.settings.daemon.listen,
            self.pool.clone(),
            self.settings.district.clone(),
            metrics,
            shutdown.clone(),
        )
        .await?;
        if let Some(every) = self.notifier.watchdog_interval() {
            let notifier = self.notifier.clone();
            tokio::spawn(async move {
                loop {
                    notifier.watchdog();
                    tokio::time::sleep(every).await;
                }
            });
        }
        let grace = self.settings.daemon.grace_period;
        let loop_shutdown = shutdown.clone();
        let task = tokio::spawn(async move { self.main_loop(loop_shutdown).await });
        Ok(RunningDaemon {
            http_addr,
            task,
            shutdown,
            grace,
        })
    }

    async fn main_loop(self, shutdown: Shutdown) -> Result<(), DaemonError> {
        let mut stops = Stops {
            shutdown,
            lost: None,
        };
        let district = self.settings.district.clone();
        if let Ok(Some(t)) = history::last_success(&self.pool).await {
            telemetry::set_last_success(t);
        }

        // 1. The district lock: active, or standby until it is free.
        let me = lock::application_name("daemon");
        self.notifier.status("waiting for the district lock");
        let notifier = self.notifier.clone();
        let acquired = lock::acquire(
            &self.settings,
            &self.pool,
            LockKind::Leader,
            &me,
            &mut stops.shutdown,
            |holder| {
                let who = holder_text(holder.as_ref());
                tracing::info!(
                    holder = %who,
                    "standby: the district lock for {district:?} is held by {who}; waiting to take over"
                );
                notifier.status(&format!("standby: lock held by {who}"));
                notifier.ready();
            },
        )
        .await?;
        let leader = match acquired {
            Acquired::Held(l) => l,
            Acquired::Stopped => {
                tracing::info!("stopped while standby");
                self.notifier.stopping();
                return Ok(());
            }
        };
        telemetry::set_active(true);
        tracing::info!(application_name = %me, "active: holding the district lock for {district:?}");
        self.notifier.ready();
        let (keeper_stop, lost) = keep_lock(leader);
        stops.lost = Some(lost);

        let result = self.active(&mut stops).await;
        self.notifier.stopping();
        self.notifier.status("stopping");
        telemetry::set_active(false);
        // Runs are over (cancelled or finished) before the district lock
        // goes, so a standby taking over finds their rows already final.
        let _ = keeper_stop.send(());
        result
    }

    /// The active daemon: start-up decision, then the schedule.
    async fn active(&self, stops: &mut Stops) -> Result<(), DaemonError> {
        // 2. Start-up decision, under the run lock: a run `running` now has
        // no live owner, since its owner would hold that lock.
        let run_lock = match self
            .run_lock("the start-up decision waits for it", stops)
            .await?
        {
            Some(l) => l,
            None => return stop_result(Stop::Requested),
        };
        let now = self.clock.now();
        let latest = history::latest(&self.pool).await?;
        let decision = decide(latest.as_ref(), now, self.schedule.timezone());
        let upcoming = self.schedule.next_scheduled(now);
        tracing::info!("{}", decision.log_line(upcoming.fire));
        let stale = history::mark_all_stale(&self.pool, STALE_RUN_ERROR).await?;
        if !stale.is_empty() {
            tracing::warn!(runs = ?stale, "marked runs left running by a dead process as interrupted: {stale:?}");
        }
        // A night whose run failed gets no more scheduled runs: a failure
        // is for a person to look at (or `run --now`), not to repeat every
        // time a frequent cron fires.
        let mut failed_night: Option<NaiveDate> = None;
        match decision {
            StartupDecision::Resume { night, .. } => {
                match self
                    .execute(RunTrigger::Resume, night, Some(run_lock), stops)
                    .await?
                {
                    RunEnd::Stopped(stop) => return stop_result(stop),
                    RunEnd::Failed => failed_night = Some(night),
                    RunEnd::Succeeded => {}
                }
            }
            StartupDecision::WaitNextNight { night, .. } => {
                failed_night = Some(night);
                run_lock.release().await
            }
            StartupDecision::WaitSchedule { .. } => run_lock.release().await,
        }

        // 3. The schedule.
        let mut last_fire: Option<DateTime<Utc>> = None;
        loop {
            let after = match last_fire {
                Some(f) => self.clock.now().max(f),
                None => self.clock.now(),
            };
            let fire = next_fire(after, &self.schedule);
            let upcoming = self.schedule.next_scheduled(after);
            telemetry::set_next_run(upcoming.fire.with_timezone(&Utc));
            self.notifier
                .status(&format!("idle; next run {}", local_text(upcoming.fire)));
            tokio::select! {
                _ = self.clock.sleep_until(fire.with_timezone(&Utc)) => {}
                stop = stops.next() => return stop_result(stop),
            }
            last_fire = Some(fire.with_timezone(&Utc));
            let night = self.schedule.night_of(fire);
            if let Some(range) = self.schedule.blackout_for(night) {
                tracing::info!(
                    %night,
                    "scheduled run for night {night} ({}) skipped: blackout {} to {}",
                    local_text(fire),
                    range.from,
                    range.to
                );
                continue;
            }
            if failed_night == Some(night) {
                tracing::info!(
                    %night,
                    "scheduled run for night {night} ({}) skipped: tonight's run failed; \
                     waiting for the next night (`student-sync run --now` retries sooner)",
                    local_text(fire)
                );
                continue;
            }
            tracing::info!(%night, "schedule fired for night {night} ({}): starting a run", local_text(fire));
            match self
                .execute(RunTrigger::Schedule, night, None, stops)
                .await?
            {
                RunEnd::Stopped(stop) => return stop_result(stop),
                RunEnd::Failed => failed_night = Some(night),
                RunEnd::Succeeded => {}
            }
        }
    }

    /// Waits for the run lock, saying who holds it. None when stopped.
    async fn run_lock(
        &self,
        why: &str,
        stops: &mut Stops,
    ) -> Result<Option<HeldLock>, DaemonError> {
        let me = lock::application_name("daemon");
        let notifier = self.notifier.clone();
        let acquired = lock::acquire(
            &self.settings,
            &self.pool,
            LockKind::Run,
            &me,
            &mut stops.shutdown,
            |holder| {
                let who = holder_text(holder.as_ref());
                tracing::info!(holder = %who, "waiting for the run lock, held by {who} ({why})");
                notifier.status(&format!("waiting for the run in progress by {who}"));
            },
        )
        .await?;
        Ok(match acquired {
            Acquired::Held(l) => Some(l),
            Acquired::Stopped => None,
        })
    }

    /// One run, from taking the run lock to its outcome line.
    async fn execute(
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
                telemetry::run_finished(trigger.as_str(), "failed", Duration::ZERO);
                run_lock.release().await;
                return Ok(RunEnd::Failed);
            }
        };
        let today = self
            .clock
            .now()
            .with_timezone(&self.schedule.timezone())
            .date_naive();
        let (cancel, cancelled) = watch::channel(false);
        let options = RunOptions {
            trigger,
            night,
            today,
            fail_point: None,
            cancel: Some(cancelled),
        };
        telemetry::set_in_progress(true);
        let started = Instant::now();
        let mut progress = Progress::new(self.notifier.clone(), night);
        let mut run = spawn_run(self.pool.clone(), self.settings.clone(), client, options);
        let mut tick = tokio::time::interval(PROGRESS_POLL);
        let mut stopped: Option<Stop> = None;
        let result = loop {
            tokio::select! {
                r = &mut run => break flatten_run(r),
                _ = tick.tick() => progress.poll(&self.pool).await,
                stop = stops.next() => {
                    let grace = cancel_budget(self.settings.daemon.grace_period);
                    if progress.run_id.is_none() {
                        progress.poll(&self.pool).await;
                    }
                    let id = progress.run_text();
                    let run_id = progress.run_id;
                    match &stop {
                        Stop::Requested => tracing::info!(run_id, "stopping: cancelling {id} (it rolls back and is marked interrupted)"),
                        Stop::LockLost(why) => tracing::error!(run_id, "lost the district lock ({why}): cancelling {id}"),
                    }
                    self.notifier.stopping();
                    self.notifier.status(&format!("stopping: cancelling {id}"));
                    let _ = cancel.send(true);
                    stopped = Some(stop);
                    match tokio::time::timeout(grace, &mut run).await {
                        Ok(r) => break flatten_run(r),
                        Err(_) => {
                            tracing::error!(run_id, "{id} did not stop within {} s; leaving it (the next start marks it interrupted and resumes it)", grace.as_secs());
                            run.abort();
                            telemetry::set_in_progress(false);
                            return Ok(RunEnd::Stopped(stopped.expect("set above")));
                        }
                    }
                }
            }
        };
        let took = started.elapsed();
        telemetry::set_in_progress(false);
        progress.finish(result.is_ok());
        let run_id = match &result {
            Ok(outcome) => Some(outcome.run_id),
            Err(_) => match progress.run_id {
                Some(id) => Some(id),
                None => history::latest(&self.pool)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.id),
            },
        };
        let what = format!(
            "run {} ({}, night {night})",
            run_id.map(|i| i.to_string()).unwrap_or_else(|| "?".into()),
            trigger.as_str()
        );
        let next = local_text(self.schedule.next_scheduled(self.clock.now()).fire);
        match &result {
            Ok(outcome) => {
                telemetry::run_finished(trigger.as_str(), "succeeded", took);
                telemetry::run_succeeded(&outcome.report, Utc::now());
                tracing::info!(
                    run_id = outcome.run_id,
                    seconds = took.as_secs_f64(),
                    "{what} succeeded in {:.1} s: {}; next run {next}",
                    took.as_secs_f64(),
                    report::one_line(&outcome.report.counts)
                );
            }
            Err(e @ SyncError::Held { .. }) => {
                // Nothing applied; a person decides. Repeating the run
                // tonight would only hold it again.
                telemetry::run_finished(trigger.as_str(), "held", took);
                tracing::warn!(
                    run_id,
                    "{what} held after {:.1} s, nothing applied: {e}; next run {next}",
                    took.as_secs_f64()
                );
            }
            Err(SyncError::Cancelled(_)) => {
                telemetry::run_finished(trigger.as_str(), "interrupted", took);
                tracing::warn!(
                    run_id,
                    "{what} interrupted after {:.1} s: rolled back; the next start resumes it",
                    took.as_secs_f64()
                );
            }
            Err(e) => {
                telemetry::run_finished(trigger.as_str(), "failed", took);
                tracing::error!(
                    run_id,
                    error = %e,
                    "{what} failed after {:.1} s: {e}; not retrying tonight, next run {next} \
                     (`student-sync run --now` retries sooner)",
                    took.as_secs_f64()
                );
            }
        }
        run_lock.release().await;
        Ok(match (stopped, result.is_ok()) {
            (Some(stop), _) => RunEnd::Stopped(stop),
            (None, true) => RunEnd::Succeeded,
            (None, false) => RunEnd::Failed,
        })
    }
}

fn stop_result(stop: Stop) -> Result<(), DaemonError> {
    match stop {
        Stop::Requested => {
            tracing::info!("stopped");
            Ok(())
        }
        Stop::LockLost(why) => Err(DaemonError::LockLost(why)),
    }
}

/// Of the grace period, the part a cancelled run gets to roll back and mark
/// its row; the rest is for closing connections.
fn cancel_budget(grace: Duration) -> Duration {
    grace
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(500))
}

fn holder_text(holder: Option<&LockHolder>) -> String {
    holder
        .map(|h| h.to_string())
        .unwrap_or_else(|| "another session (it could not be identified)".to_string())
}

/// Holds the district lock on its own task, checking its connection; tells
/// the loop if it goes (PostgreSQL restarted, network cut) — another
/// instance may then be active. Sending on the returned sender releases it.
fn keep_lock(mut lock: HeldLock) -> (oneshot::Sender<()>, oneshot::Receiver<String>) {
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (lost_tx, lost_rx) = oneshot::channel::<String>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop_rx => {
                    lock.release().await;
                    return;
                }
                _ = tokio::time::sleep(LOCK_CHECK) => {
                    if let Err(e) = lock.check().await {
                        let _ = lost_tx.send(e.to_string());
                        return;
                    }
                }
            }
        }
    });
    (stop_tx, lost_rx)
}

type RunTask = tokio::task::JoinHandle<Result<RunOutcome, SyncError>>;

/// The run on a task of its own, so the loop can watch its phase and stop
/// requests without pausing it.
fn spawn_run(
    pool: PgPool,
    settings: Settings,
    client: PowerSchoolClient,
    options: RunOptions,
) -> RunTask {
    tokio::spawn(async move { sync::run_once(&pool, &settings, &client, &options).await })
}

fn flatten_run(
    r: Result<Result<RunOutcome, SyncError>, tokio::task::JoinError>,
) -> Result<RunOutcome, SyncError> {
    r.unwrap_or_else(|e| {
        Err(SyncError::Cancelled(format!(
            "the run's task ended abnormally: {e}"
        )))
    })
}

/// Follows a run's phase from its row: STATUS lines and phase durations.
struct Progress {
    notifier: Arc<Notifier>,
    night: NaiveDate,
    run_id: Option<i64>,
    phase: Option<(String, Instant)>,
    started: Instant,
    polls: u64,
}

impl Progress {
    fn new(notifier: Arc<Notifier>, night: NaiveDate) -> Self {
        Progress {
            notifier,
            night,
            run_id: None,
            phase: None,
            started: Instant::now(),
            polls: 0,
        }
    }

    fn run_text(&self) -> String {
        match self.run_id {
            Some(id) => format!("run {id}"),
            None => "the run".to_string(),
        }
    }

    async fn poll(&mut self, pool: &PgPool) {
        self.polls += 1;
        let Ok(Some(row)) = history::current_running(pool).await else {
            return;
        };
        self.run_id = Some(row.id);
        let changed = match &self.phase {
            Some((phase, since)) if *phase != row.phase => {
                telemetry::phase_finished(phase, since.elapsed());
                true
            }
            Some(_) => false,
            None => true,
        };
        if changed {
            self.phase = Some((row.phase.clone(), Instant::now()));
        }
        // The run itself logs progress every 10 s (sync::heartbeat).
        // A fresh elapsed time every ~10 s is plenty for `systemctl status`.
        if changed || self.polls.is_multiple_of(20) {
            self.notifier.status(&format!(
                "run {} {} (night {}, {} s)",
                row.id,
                row.phase,
                self.night,
                self.started.elapsed().as_secs()
            ));
        }
    }

    /// The last phase of a successful run ends with the run.
    fn finish(&mut self, succeeded: bool) {
        if let (true, Some((phase, since))) = (succeeded, self.phase.take()) {
            telemetry::phase_finished(&phase, since.elapsed());
        }
    }
}

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
) -> Result<RunNowOutcome, DaemonError> {
    let mut shutdown = Shutdown::new(shutdown);
    let tz = settings.schedule.timezone;
    let now = Utc::now();
    // The latest finished run (a run in progress is waited for below).
    let finished = crate::store::runs::recent_runs(pool, 20)
        .await?
        .into_iter()
        .find(|r| r.status != "running");
    if let Some(last) = finished {
        if last.status == "failed" && last.night == now.with_timezone(&tz).date_naive() {
            tracing::info!(
                run_id = last.id,
                "run --now: tonight's run {} failed ({}); running anyway, as asked",
                last.id,
                last.error.as_deref().unwrap_or("no error recorded")
            );
        }
    }
    let me = lock::application_name("run --now");
    let waiting = Instant::now();
    let acquired = lock::acquire(settings, pool, LockKind::Run, &me, &mut shutdown, |holder| {
        let who = holder_text(holder.as_ref());
        tracing::info!(holder = %who, "run --now: waiting for the run lock, held by {who}; the manual run starts when it is free");
    })
    .await?;
    let run_lock = match acquired {
        Acquired::Held(l) => l,
        Acquired::Stopped => return Err(DaemonError::StoppedBeforeRun),
    };
    let waited = waiting.elapsed();
    let stale = history::mark_all_stale(pool, STALE_RUN_ERROR).await?;
    if !stale.is_empty() {
        tracing::warn!(runs = ?stale, "marked runs left running by a dead process as interrupted: {stale:?}");
    }
    let client = match PowerSchoolClient::new(&settings.powerschool) {
        Ok(c) => c,
        Err(e) => {
            run_lock.release().await;
            return Err(e.into());
        }
    };
    let (cancel, cancelled) = watch::channel(false);
    let mut options = RunOptions::now(settings, RunTrigger::Manual);
    options.cancel = Some(cancelled);
    let night = options.night;
    tracing::info!(%night, "run --now: starting a manual run for night {night}");
    let started = Instant::now();
    let mut run = spawn_run(pool.clone(), settings.clone(), client, options);
    let result = tokio::select! {
        r = &mut run => flatten_run(r),
        _ = shutdown.requested() => {
            tracing::info!("stopping: cancelling the manual run (it rolls back and is marked interrupted)");
            let _ = cancel.send(true);
            match tokio::time::timeout(cancel_budget(settings.daemon.grace_period), &mut run).await {
                Ok(r) => flatten_run(r),
                Err(_) => {
                    run.abort();
                    Err(SyncError::Cancelled("did not stop within the grace period".into()))
                }
            }
        }
    };
    let took = started.elapsed();
    run_lock.release().await;
    match result {
        Ok(outcome) => Ok(RunNowOutcome {
            run_id: outcome.run_id,
            trigger: RunTrigger::Manual.as_str(),
            night,
            status: "succeeded",
            waited_seconds: waited.as_secs_f64(),
            duration_seconds: took.as_secs_f64(),
            report: outcome.report,
        }),
        Err(e) => {
            let run_id = history::latest(pool)
                .await
                .ok()
                .flatten()
                .map(|r| r.id)
                .unwrap_or(0);
            match e {
                SyncError::Cancelled(_) => Err(DaemonError::RunInterrupted { run_id }),
                held @ SyncError::Held { .. } => Err(DaemonError::RunHeld(held)),
                source => Err(DaemonError::RunFailed { run_id, source }),
            }
        }
    }
}
