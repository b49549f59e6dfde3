//! Following a run's phase from its row while it runs: the systemd STATUS
//! line and the per-phase durations in `/metrics`.

use super::notify::Notifier;
use crate::store::runs::{self, RunPhase};
use chrono::NaiveDate;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Follows a run's phase from its row: STATUS lines and phase durations.
pub struct Progress {
    notifier: Arc<Notifier>,
    night: NaiveDate,
    /// The run's id, once its row has been seen.
    pub run_id: Option<i64>,
    phase: Option<(RunPhase, Instant)>,
    started: Instant,
    polls: u64,
}

impl Progress {
    pub fn new(notifier: Arc<Notifier>, night: NaiveDate) -> Self {
        Progress {
            notifier,
            night,
            run_id: None,
            phase: None,
            started: Instant::now(),
            polls: 0,
        }
    }

    /// `run 42`, or `the run` before its row was seen.
    pub fn run_text(&self) -> String {
        match self.run_id {
            Some(id) => format!("run {id}"),
            None => "the run".to_string(),
        }
    }

    /// The current phase, read from the run's row.
    pub fn phase(&self) -> Option<RunPhase> {
        self.phase.as_ref().map(|(p, _)| *p)
    }

    pub async fn poll(&mut self, pool: &PgPool) {
        self.polls += 1;
        let Ok(Some(row)) = runs::current_running(pool).await else {
            return;
        };
        self.run_id = Some(row.id);
        let changed = match &self.phase {
            Some((phase, _)) => *phase != row.phase,
            None => true,
        };
        if changed {
            self.phase = Some((row.phase, Instant::now()));
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
}

/// Whether the run in progress is still moving, for the systemd watchdog:
/// its phase or its count of fetched pages must change within
/// `daemon.stall_timeout_secs`. Without a run the daemon is alive.
#[derive(Debug, Default)]
pub struct Liveness {
    state: Mutex<LiveState>,
}

#[derive(Debug, Default)]
struct LiveState {
    /// The last phase and page count seen, when a run is in progress.
    marker: Option<(Option<RunPhase>, u64)>,
    since: Option<tokio::time::Instant>,
}

impl Liveness {
    fn state(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn run_started(&self) {
        let mut s = self.state();
        s.marker = Some((None, 0));
        s.since = Some(tokio::time::Instant::now());
    }

    pub fn run_ended(&self) {
        *self.state() = LiveState::default();
    }

    /// A look at the run: progress when the phase or the pages moved.
    pub fn observe(&self, phase: Option<RunPhase>, pages: u64) {
        let mut s = self.state();
        if s.marker.is_some() && s.marker != Some((phase, pages)) {
            s.marker = Some((phase, pages));
            s.since = Some(tokio::time::Instant::now());
        }
    }

    /// How long the run has gone without progress, when that is `limit` or more.
    pub fn stalled(&self, limit: Duration) -> Option<Duration> {
        let s = self.state();
        s.marker?;
        let quiet = s.since?.elapsed();
        (quiet >= limit).then_some(quiet)
    }
}
