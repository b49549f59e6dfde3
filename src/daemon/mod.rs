//! The nightly service: `student-sync daemon` fires a run on the configured
//! schedule, decides at start-up whether an interrupted run must be resumed,
//! stops cleanly on SIGTERM/SIGINT, lets only one instance per district run
//! (the others wait as standbys), talks to systemd, and serves `/healthz` and
//! `/metrics`. Also the two on-call commands built on the same pieces:
//! `student-sync run --now` and `student-sync status`.
//!
//! Two PostgreSQL session advisory locks, each on its own connection:
//! - the *leader* lock (`hashtext('student-sync:' || district)`), held by the
//!   active daemon for its whole life: a second daemon waits as a standby and
//!   takes over when the active one's connection goes away;
//! - the *run* lock (`hashtext('student-sync-run:' || district)`), held around
//!   every run (scheduled, resumed or `run --now`). It is what makes runs
//!   exclusive, and what lets `run --now` work while a daemon is active: the
//!   daemon holds the leader lock all its life, so `run --now` could never get
//!   that one.
//!
//! Whoever holds the run lock knows that a run row still `running` belongs to
//! a process that is gone. The locks, like every query, are `store`'s; the
//! daemon only decides when to take them.
//!
//! - `service`: the loop (district lock, start-up decision, schedule);
//! - `run_task`: one run under the run lock, followed, cancelled, logged;
//! - `run_now`: `run --now` on the same run task;
//! - `locking`: taking the locks as this process, keeping the district lock;
//! - `decision`, `schedule`, `clock`: when to run; `signals`: when to stop;
//! - `status`, `http`, `telemetry`, `progress`, `notify`: what it tells people.

mod clock;
pub mod decision;
mod http;
mod locking;
mod notify;
mod progress;
mod run_now;
mod run_task;
pub mod schedule;
mod service;
mod signals;
mod status;
mod telemetry;

pub use crate::store::lock::{LockHolder, LockKind};
pub use clock::{Clock, SchedulerClock, SystemClock};
pub use decision::{decide, StartupDecision};
pub use notify::Notifier;
pub use run_now::RunNowOutcome;
pub use schedule::{next_fire, NextRun, Schedule};
pub use service::{Daemon, RunningDaemon};
pub use signals::on_stop_signal;
pub use status::{CurrentRun, NextRunInfo, RunSummary, StatusReport};

use crate::config::Settings;
use crate::powerschool::PowerSchoolError;
use crate::store::{self, StoreError};
use crate::sync::SyncError;

/// Everything that can stop the daemon or an on-call command.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("schedule.cron {expression:?} cannot be used: {message}")]
    Schedule { expression: String, message: String },
    /// Every database error, said once by the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "cannot listen on daemon.listen {addr} for /healthz and /metrics: {source} \
         (is another student-sync daemon on this host using it? give each its own daemon.listen)"
    )]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "daemon.listen {addr} is not a loopback address: /healthz and /metrics would be open \
         to the network. Use 127.0.0.1:PORT (a local proxy or agent can reach it), or set \
         daemon.allow_remote_listen = true (STUDENT_SYNC_DAEMON_ALLOW_REMOTE_LISTEN) to allow it"
    )]
    RemoteListen { addr: std::net::SocketAddr },
    #[error("{0}")]
    PowerSchool(#[from] PowerSchoolError),
    #[error("run {run_id} failed: {source}")]
    RunFailed { run_id: i64, source: SyncError },
    /// A safety threshold held the run: nothing applied, an admin decides.
    #[error("{0}")]
    RunHeld(SyncError),
    #[error(
        "run {run_id} was interrupted (stop requested); the daemon resumes it at its next start"
    )]
    RunInterrupted { run_id: i64 },
    /// `RunInterrupted` when the run's number could not be read back (the
    /// database went away as the run was stopped).
    #[error(
        "the run was interrupted (stop requested); the daemon resumes it at its next start \
         (`student-sync status` shows its number once the database answers)"
    )]
    RunInterruptedUnnumbered,
    #[error("stopped before a run could start (stop requested while waiting for the run lock)")]
    StoppedBeforeRun,
    #[error("the daemon's main task failed: {0}")]
    Internal(String),
    #[error("cannot listen for stop signals: {0}")]
    Signal(std::io::Error),
    #[error(
        "lost the connection that holds the district lock: {0}; stopping so that \
         a restart becomes active or standby cleanly"
    )]
    LockLost(String),
}

impl DaemonError {
    /// 2 for a configuration mistake, 1 for anything that failed at run time
    /// (the same convention as the CLI's own errors).
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Schedule { .. } | DaemonError::RemoteListen { .. } => 2,
            // The same code `sync --once` gives a held run.
            DaemonError::RunHeld(_) => 3,
            _ => 1,
        }
    }
}

/// `student-sync daemon`: runs until SIGTERM or SIGINT, then stops within
/// `daemon.grace_period` (an in-flight run is cancelled and marked
/// `interrupted`) and returns Ok, so the process exits 0.
pub async fn run_daemon(settings: Settings) -> Result<(), DaemonError> {
    // Signals first: a stop during the connect or as a standby must work too.
    let shutdown = signals::on_stop_signal()?;
    let schedule = Schedule::new(&settings.schedule)?;
    // A database that does not answer yet (starting, failing over) is
    // waited for, not a reason to exit.
    let mut stop = shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let Some(pool) = store::connect_waiting(&settings.database, stopped).await? else {
        tracing::info!("stopped while waiting for the database");
        return Ok(());
    };
    store::district::check(&pool, &settings.district).await?;
    let clock = SchedulerClock::start().await?;
    let daemon = Daemon::with_schedule(settings, pool, clock, schedule);
    let running = daemon.start(shutdown).await?;
    running.wait().await
}

/// `student-sync run --now`: waits for the run lock (saying who holds it),
/// then runs with trigger `manual`, even after a failure tonight.
pub async fn run_now(settings: Settings) -> Result<RunNowOutcome, DaemonError> {
    run_now_observed(settings, None).await
}

/// `run_now`, the run telling `progress` how it goes (the command line's bars).
pub async fn run_now_observed(
    settings: Settings,
    progress: Option<std::sync::Arc<crate::sync::RunProgress>>,
) -> Result<RunNowOutcome, DaemonError> {
    let shutdown = signals::on_stop_signal()?;
    let pool = store::connect_to(&settings.database).await?;
    store::district::check(&pool, &settings.district).await?;
    run_now::run_now(&settings, &pool, shutdown, progress).await
}

/// What a manual run stopped by a signal reports, `run --now`'s words: the
/// run (the latest, which the caller's run lock made its own) and that the
/// daemon resumes it.
pub(crate) async fn interrupted(pool: &sqlx::PgPool) -> DaemonError {
    match run_task::latest_run_id(pool).await {
        Some(run_id) => DaemonError::RunInterrupted { run_id },
        None => DaemonError::RunInterruptedUnnumbered,
    }
}

/// `student-sync status`: the last runs, the current run's phase, the next
/// fire time and who holds the locks.
pub async fn status(settings: &Settings) -> Result<StatusReport, DaemonError> {
    let pool = store::connect_to(&settings.database).await?;
    store::district::check(&pool, &settings.district).await?;
    let report = status::gather(settings, &pool, chrono::Utc::now()).await;
    pool.close().await;
    report
}
