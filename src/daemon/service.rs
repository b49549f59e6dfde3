//! The daemon loop.
//!
//! Life of a daemon: serve `/healthz` and `/metrics`; take the district lock
//! (or wait for it as a standby); tell systemd it is ready; decide from the
//! run history whether to resume an interrupted run; then sleep until each
//! fire of the schedule, skip blackout nights, and run. Every run holds the
//! run lock, is cancelled through `RunOptions.cancel` on a stop, and ends in
//! one log line (`run_task`).

use super::clock::{Clock, SystemClock};
use super::decision::{decide, StartupDecision};
use super::locking;
use super::notify::Notifier;
use super::progress::Liveness;
use super::run_task::mark_stale_runs;
use super::schedule::{local_text, next_fire, Schedule};
use super::signals::{Shutdown, Stop, Stops};
use super::{http, telemetry, DaemonError};
use crate::config::Settings;
use crate::store::lock::{self, LockKind};
use crate::store::{runs, RunTrigger};
use crate::sync::FailPoint;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub struct Daemon<C: Clock = SystemClock> {
    pub(super) settings: Settings,
    pub(super) pool: PgPool,
    pub(super) clock: C,
    pub(super) schedule: Schedule,
    pub(super) notifier: Arc<Notifier>,
    /// Whether the run in progress moves, for the watchdog.
    pub(super) liveness: Arc<Liveness>,
    /// Asks the health answer to be refreshed now (a run ended).
    pub(super) health_refresh: Arc<tokio::sync::Notify>,
    /// Where runs fail on purpose (tests only; see `with_fail_point`).
    pub(super) fail_point: Option<FailPoint>,
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
            liveness: Arc::new(Liveness::default()),
            health_refresh: Arc::new(tokio::sync::Notify::new()),
            fail_point: None,
        }
    }

    /// Makes every run of this daemon fail at `fail_point`: for tests that
    /// prove what the daemon does with such a run (never set in service).
    pub fn with_fail_point(mut self, fail_point: FailPoint) -> Self {
        self.fail_point = Some(fail_point);
        self
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
            &self.settings,
            self.pool.clone(),
            metrics,
            self.health_refresh.clone(),
            shutdown.clone(),
        )
        .await?;
        if let Some(every) = self.notifier.watchdog_interval() {
            let notifier = self.notifier.clone();
            let liveness = self.liveness.clone();
            let limit = self.settings.daemon.stall_timeout;
            tokio::spawn(watchdog(notifier, liveness, every, limit));
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
        if let Ok(Some(last)) = runs::last_full_success(&self.pool).await {
            if let Some(finished) = last.finished_at {
                telemetry::set_last_success(finished);
            }
        }
        if let Ok(Some(latest)) = runs::latest_full_run(&self.pool).await {
            telemetry::set_last_run_failed(latest.status == runs::RunStatus::Failed);
        }

        // 1. The district lock: active, or standby until it is free.
        let me = lock::application_name("daemon");
        self.notifier.status("waiting for the district lock");
        let notifier = self.notifier.clone();
        let acquired = locking::take(
            &self.settings,
            &self.pool,
            LockKind::Leader,
            &me,
            &mut stops.shutdown,
            |who| {
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
            Some(l) => l,
            None => {
                tracing::info!("stopped while standby");
                self.notifier.stopping();
                return Ok(());
            }
        };
        telemetry::set_active(true);
        tracing::info!(application_name = %me, "active: holding the district lock for {district:?}");
        self.notifier.ready();
        let (keeper_stop, lost) = locking::keep(leader);
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
        match self.start_up(stops).await? {
            ControlFlow::Continue(failed_night) => self.follow_schedule(failed_night, stops).await,
            ControlFlow::Break(stop) => stop.into_result(),
        }
    }

    /// The start-up decision, under the run lock: a run `running` now has no
    /// live owner, since its owner would hold that lock. Goes on with the
    /// night whose run failed, if one did: it gets no more scheduled runs.
    async fn start_up(
        &self,
        stops: &mut Stops,
    ) -> Result<ControlFlow<Stop, Option<NaiveDate>>, DaemonError> {
        let run_lock = match self
            .run_lock("the start-up decision waits for it", stops)
            .await?
        {
            Some(l) => l,
            None => return Ok(ControlFlow::Break(Stop::Requested)),
        };
        let now = self.clock.now();
        let latest = runs::latest_full_run(&self.pool).await?;
        let decision = decide(latest.as_ref(), now, self.schedule.timezone());
        let upcoming = self.schedule.next_scheduled(now)?;
        tracing::info!("{}", decision.log_line(upcoming.fire));
        mark_stale_runs(&self.pool).await?;
        Ok(match decision {
            StartupDecision::Resume { night, .. } => self
                .execute(RunTrigger::Resume, night, Some(run_lock), stops)
                .await?
                .next(night, None),
            StartupDecision::WaitNextNight { night, .. } => {
                run_lock.release().await;
                ControlFlow::Continue(Some(night))
            }
            StartupDecision::WaitSchedule { .. } => {
                run_lock.release().await;
                ControlFlow::Continue(None)
            }
        })
    }

    /// Sleeps until each fire of the schedule and runs, skipping blackout
    /// nights and a night whose run failed: a failure is for a person to
    /// look at (or `run --now`), not to repeat every time a frequent cron
    /// fires.
    async fn follow_schedule(
        &self,
        mut failed_night: Option<NaiveDate>,
        stops: &mut Stops,
    ) -> Result<(), DaemonError> {
        let mut last_fire: Option<DateTime<Utc>> = None;
        loop {
            let after = match last_fire {
                Some(f) => self.clock.now().max(f),
                None => self.clock.now(),
            };
            let fire = next_fire(after, &self.schedule)?;
            let upcoming = self.schedule.next_scheduled(after)?;
            telemetry::set_next_run(upcoming.fire.with_timezone(&Utc));
            self.notifier
                .status(&format!("idle; next run {}", local_text(upcoming.fire)));
            tokio::select! {
                _ = self.clock.sleep_until(fire.with_timezone(&Utc)) => {}
                stop = stops.next() => return stop.into_result(),
            }
            last_fire = Some(fire.with_timezone(&Utc));
            let night = self.schedule.night_of(fire);
            if self.skips(night, fire, failed_night) {
                continue;
            }
            tracing::info!(%night, "schedule fired for night {night} ({}): starting a run", local_text(fire));
            let end = self
                .execute(RunTrigger::Schedule, night, None, stops)
                .await?;
            match end.next(night, failed_night) {
                ControlFlow::Continue(failed) => failed_night = failed,
                ControlFlow::Break(stop) => return stop.into_result(),
            }
        }
    }

    /// Whether the fire for `night` is skipped (saying why): a blackout
    /// night, or a night whose run already failed.
    fn skips(
        &self,
        night: NaiveDate,
        fire: DateTime<chrono_tz::Tz>,
        failed_night: Option<NaiveDate>,
    ) -> bool {
        if let Some(range) = self.schedule.blackout_for(night) {
            tracing::info!(
                %night,
                "scheduled run for night {night} ({}) skipped: blackout {} to {}",
                local_text(fire),
                range.from,
                range.to
            );
            return true;
        }
        if failed_night == Some(night) {
            tracing::info!(
                %night,
                "scheduled run for night {night} ({}) skipped: tonight's run failed; \
                 waiting for the next night (`student-sync run --now` retries sooner)",
                local_text(fire)
            );
            return true;
        }
        false
    }
}

/// Pings the systemd watchdog every `every` while the daemon is alive: not
/// while a run has made no progress for `limit`, so systemd (WatchdogSec)
/// restarts a daemon whose run hangs. Said once per stall.
async fn watchdog(
    notifier: Arc<Notifier>,
    liveness: Arc<Liveness>,
    every: Duration,
    limit: Duration,
) {
    let mut told = false;
    loop {
        match liveness.stalled(limit) {
            Some(quiet) => {
                if !told {
                    let text = format!(
                        "the run has made no progress for {:.1} s (daemon.stall_timeout_secs is \
                         {:.1} s): watchdog pings stopped, so systemd restarts the daemon if it \
                         stays stuck",
                        quiet.as_secs_f64(),
                        limit.as_secs_f64()
                    );
                    tracing::error!("{text}");
                    notifier.status(&format!("stalled: {text}"));
                    told = true;
                }
            }
            None => {
                told = false;
                notifier.watchdog();
            }
        }
        tokio::time::sleep(every).await;
    }
}

fn joined(r: Result<Result<(), DaemonError>, tokio::task::JoinError>) -> Result<(), DaemonError> {
    r.unwrap_or_else(|e| Err(DaemonError::Internal(e.to_string())))
}
