//! A run's progress as it goes: its phase, the records PowerSchool's counts
//! announced and those fetched so far, and the rows to write and written.
//! The sync tells a `RunProgress` (the fetch through
//! `powerschool::FetchObserver`); whoever shows it listens: the progress
//! bars of the command line, and the run's row (`store::progress`) that
//! `status` reads while the run is going.

use crate::powerschool::FetchObserver;
use crate::store::runs::RunPhase;
use serde::Serialize;
use sqlx::PgPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProgressCounts {
    /// `fetching`, `planning`, `applying` or `done`; empty before the run starts.
    pub phase: String,
    /// Records the `/count`s announced so far (grows as schools are fetched).
    pub expected: u64,
    pub fetched: u64,
    /// PowerQuery pages received.
    pub pages: u64,
    /// Rows the plan writes (known once applying starts).
    pub to_write: u64,
    pub written: u64,
}

/// Shared by the run and its listeners; every update is a few atomics and a
/// wake-up of the listeners, never a wait.
#[derive(Debug)]
pub struct RunProgress {
    phase: Mutex<Option<RunPhase>>,
    /// Each phase the run entered and when: the phases' durations for the
    /// metrics, measured by the run itself (a poll may miss a short phase).
    entered: Mutex<Vec<(RunPhase, std::time::Instant)>>,
    expected: AtomicU64,
    fetched: AtomicU64,
    pages: AtomicU64,
    to_write: AtomicU64,
    written: AtomicU64,
    changed: watch::Sender<u64>,
}

impl Default for RunProgress {
    fn default() -> Self {
        RunProgress {
            phase: Mutex::new(None),
            entered: Mutex::new(Vec::new()),
            expected: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            to_write: AtomicU64::new(0),
            written: AtomicU64::new(0),
            changed: watch::channel(0).0,
        }
    }
}

impl RunProgress {
    pub fn new() -> Arc<Self> {
        Arc::new(RunProgress::default())
    }

    /// Wakes on every change (several changes may wake it once).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn counts(&self) -> ProgressCounts {
        let phase = self
            .phase
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        ProgressCounts {
            phase,
            expected: self.expected.load(Ordering::Relaxed),
            fetched: self.fetched.load(Ordering::Relaxed),
            pages: self.pages.load(Ordering::Relaxed),
            to_write: self.to_write.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
        }
    }

    pub fn phase(&self) -> Option<RunPhase> {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_phase(&self, phase: RunPhase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some(phase);
        let mut entered = self.entered.lock().unwrap_or_else(|e| e.into_inner());
        if entered.last().map(|(p, _)| *p) != Some(phase) {
            entered.push((phase, std::time::Instant::now()));
        }
        drop(entered);
        self.bump();
    }

    /// How long each phase the run left took, in order (a phase the run
    /// entered again, on a retry, counts each time). The phase the run is in
    /// has not finished and is not listed; `done` never is.
    pub fn finished_phases(&self) -> Vec<(RunPhase, std::time::Duration)> {
        let entered = self.entered.lock().unwrap_or_else(|e| e.into_inner());
        entered
            .windows(2)
            .filter_map(|w| match w {
                [(phase, from), (_, to)] => Some((*phase, to.duration_since(*from))),
                _ => None,
            })
            .collect()
    }

    /// Applying starts: this many rows will be written.
    pub fn will_write(&self, rows: u64) {
        self.to_write.store(rows, Ordering::Relaxed);
        self.written.store(0, Ordering::Relaxed);
        self.bump();
    }

    pub fn wrote(&self, rows: u64) {
        self.written.fetch_add(rows, Ordering::Relaxed);
        self.bump();
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl FetchObserver for RunProgress {
    fn counted(&self, _query: &str, total: u64) {
        self.expected.fetch_add(total, Ordering::Relaxed);
        self.bump();
    }

    fn fetched(&self, _query: &str, records: u64) {
        self.fetched.fetch_add(records, Ordering::Relaxed);
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.bump();
    }
}

/// The run's row gets the counts at every phase change and every this many pages.
pub const PAGES_PER_ROW_UPDATE: u64 = 10;

/// Copies the counts onto the run's row while the run goes, outside the
/// run's transaction, on its own connection of the pool: at every phase
/// change, every `PAGES_PER_ROW_UPDATE` pages and whenever rows were
/// written. Runs until aborted; a failed write is only logged.
pub fn spawn_row_updates(
    pool: PgPool,
    run_id: i64,
    progress: Arc<RunProgress>,
) -> tokio::task::JoinHandle<()> {
    let mut changes = progress.subscribe();
    tokio::spawn(async move {
        let mut stored = ProgressCounts::default();
        loop {
            let now = progress.counts();
            let due = now.phase != stored.phase
                || now.pages >= stored.pages + PAGES_PER_ROW_UPDATE
                || now.written != stored.written
                || now.to_write != stored.to_write;
            if due {
                let json = serde_json::to_value(&now).unwrap_or_default();
                if let Err(e) = crate::store::progress::record(&pool, run_id, &json).await {
                    tracing::debug!(run_id, error = %e, "could not record the run's progress");
                }
                stored = now;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phases_a_run_left_are_listed_in_order_and_the_current_one_is_not() {
        let p = RunProgress::new();
        p.set_phase(RunPhase::Fetching);
        p.set_phase(RunPhase::Fetching);
        p.set_phase(RunPhase::Planning);
        assert_eq!(
            p.finished_phases()
                .iter()
                .map(|(ph, _)| *ph)
                .collect::<Vec<_>>(),
            [RunPhase::Fetching],
            "planning goes on; fetching was entered once"
        );
        p.set_phase(RunPhase::Applying);
        p.set_phase(RunPhase::Done);
        assert_eq!(
            p.finished_phases()
                .iter()
                .map(|(ph, _)| *ph)
                .collect::<Vec<_>>(),
            [RunPhase::Fetching, RunPhase::Planning, RunPhase::Applying]
        );
    }
}
