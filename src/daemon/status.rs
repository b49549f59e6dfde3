//! `student-sync status`: what an on-call engineer asks first. The last runs
//! (status, duration, counts, error), the run in progress and its phase, the
//! next scheduled run in district time, and who holds the locks.

use super::schedule::{local_text, Schedule};
use super::DaemonError;
use crate::config::Settings;
use crate::store::lock::{self, LockHolder, LockKind};
use crate::store::prune::{self, Footprint};
use crate::store::runs::{self, RunPhase, RunStatus, RunTrigger};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::fmt::Write;

/// How many past runs `status` lists.
const RUNS_SHOWN: i64 = 10;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub district: String,
    pub generated_at: DateTime<Utc>,
    pub timezone: String,
    /// Newest first.
    pub runs: Vec<RunSummary>,
    pub current: Option<CurrentRun>,
    pub next_run: NextRunInfo,
    /// Sessions holding the district lock (the active daemon) and the run lock.
    pub lock_holders: Vec<LockHolder>,
    /// The database's size and the oldest run it keeps (see `[retention]`).
    pub database: Footprint,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub trigger: RunTrigger,
    pub night: NaiveDate,
    pub status: RunStatus,
    pub phase: RunPhase,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Finished runs: start to finish. A run in progress: so far.
    pub duration_seconds: Option<f64>,
    pub counts: serde_json::Value,
    pub error: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentRun {
    pub id: i64,
    /// None when the row could not be read back.
    pub trigger: Option<RunTrigger>,
    pub night: NaiveDate,
    pub phase: RunPhase,
    pub started_at: DateTime<Utc>,
    pub elapsed_seconds: f64,
    /// False when the row says `running` but nobody holds the run lock: its
    /// process is gone and the daemon resumes it when it becomes active.
    pub alive: bool,
    /// Its counts so far, as the run last stored them on its row
    /// (`ProgressCounts`: expected, fetched, pages, to_write, written).
    pub progress: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextRunInfo {
    pub cron: String,
    /// `2026-11-24 00:00 MST`.
    pub local: String,
    pub at: DateTime<Utc>,
    pub night: NaiveDate,
    /// Scheduled nights before it that fall in a blackout range.
    pub skipped_blackout_nights: Vec<NaiveDate>,
}

pub async fn gather(
    settings: &Settings,
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<StatusReport, DaemonError> {
    let schedule = Schedule::new(&settings.schedule)?;
    let recent = runs::recent_runs(pool, RUNS_SHOWN).await?;
    let lock_holders = lock::holders(pool, &settings.district).await?;
    let run_lock_held = lock_holders.iter().any(|h| h.lock == LockKind::Run);

    let runs: Vec<RunSummary> = recent
        .iter()
        .map(|r| RunSummary {
            id: r.id,
            trigger: r.trigger,
            night: r.night,
            status: r.status,
            phase: r.phase,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_seconds: match (r.finished_at, r.status) {
                (Some(end), _) => Some(seconds(end - r.started_at)),
                (None, RunStatus::Running) => Some(seconds(now - r.started_at)),
                _ => None,
            },
            counts: r.counts.clone(),
            error: r.error.clone(),
            host: r.host.clone(),
            pid: r.pid,
        })
        .collect();
    let current = match runs::current_running(pool).await? {
        None => None,
        Some(running) => {
            let record = recent.iter().find(|r| r.id == running.id);
            let progress = crate::store::progress::read(pool, running.id)
                .await
                .unwrap_or_default();
            Some(CurrentRun {
                id: running.id,
                trigger: record.map(|r| r.trigger),
                night: record.map(|r| r.night).unwrap_or_else(|| now.date_naive()),
                phase: running.phase,
                started_at: running.started_at,
                elapsed_seconds: seconds(now - running.started_at),
                alive: run_lock_held,
                progress,
            })
        }
    };
    let next = schedule.next_scheduled(now)?;
    let database = prune::footprint(pool).await?;
    Ok(StatusReport {
        district: settings.district.clone(),
        generated_at: now,
        timezone: schedule.timezone().name().to_string(),
        runs,
        current,
        next_run: NextRunInfo {
            cron: schedule.expression().to_string(),
            local: local_text(next.fire),
            at: next.fire.with_timezone(&Utc),
            night: schedule.night_of(next.fire),
            skipped_blackout_nights: next.skipped.iter().map(|f| schedule.night_of(*f)).collect(),
        },
        lock_holders,
        database,
    })
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

fn duration_text(seconds: f64) -> String {
    let s = seconds.round() as i64;
    if s < 60 {
        format!("{seconds:.1} s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// `students +3 ~1 -0; users +2 …` from a run's counts JSON.
fn counts_text(counts: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for kind in [
        "students",
        "contacts",
        "guardian_accounts",
        "users",
        "connections",
    ] {
        let Some(k) = counts.get(kind) else { continue };
        let n = |f: &str| k.get(f).and_then(|v| v.as_u64()).unwrap_or(0);
        parts.push(format!(
            "{} +{} ~{} -{}",
            kind.replace('_', " "),
            n("created"),
            n("updated"),
            n("removed")
        ));
    }
    if let Some(p) = counts.get("problems").and_then(|v| v.as_u64()) {
        parts.push(format!("{p} problems"));
    }
    parts.join("; ")
}

impl StatusReport {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "student-sync status for district {:?}", self.district);
        let _ = writeln!(out);
        self.write_locks(&mut out);
        self.write_next_run(&mut out);
        self.write_current(&mut out);
        self.write_database(&mut out);
        let _ = writeln!(out);
        self.write_runs(&mut out);
        out
    }

    /// Who is the active daemon, and who holds the run lock.
    fn write_locks(&self, out: &mut String) {
        let active = self
            .lock_holders
            .iter()
            .find(|h| h.lock == LockKind::Leader);
        match active {
            Some(h) => {
                let _ = writeln!(out, "Active daemon:  {h}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "Active daemon:  none (no process holds the district lock)"
                );
            }
        }
        if let Some(h) = self.lock_holders.iter().find(|h| h.lock == LockKind::Run) {
            let _ = writeln!(out, "Run lock:       {h}");
        }
    }

    /// The next run, and the blackout nights skipped before it.
    fn write_next_run(&self, out: &mut String) {
        let n = &self.next_run;
        let _ = writeln!(
            out,
            "Next run:       {} (night {}; cron {:?} in {})",
            n.local, n.night, n.cron, self.timezone
        );
        if n.skipped_blackout_nights.is_empty() {
            return;
        }
        let nights: Vec<String> = n
            .skipped_blackout_nights
            .iter()
            .map(|d| d.to_string())
            .collect();
        let shown = match nights.as_slice() {
            [first, .., last] if nights.len() > 5 => {
                format!("{first} … {last} ({} nights)", nights.len())
            }
            _ => nights.join(", "),
        };
        let _ = writeln!(out, "                skipping blackout nights {shown}");
    }

    /// The run in progress, or a row left `running` by a process that is gone.
    fn write_current(&self, out: &mut String) {
        match &self.current {
            Some(c) if c.alive => {
                let _ = writeln!(
                    out,
                    "Current run:    {} ({}, night {}) in phase {}, running for {}",
                    c.id,
                    trigger_text(c.trigger),
                    c.night,
                    c.phase,
                    duration_text(c.elapsed_seconds)
                );
                let so_far = progress_text(&c.progress);
                if !so_far.is_empty() {
                    let _ = writeln!(out, "                so far: {so_far}");
                }
            }
            Some(c) => {
                let _ = writeln!(
                    out,
                    "Current run:    {} ({}, night {}) says phase {} but its process is gone; \
                     the daemon resumes it when it becomes active",
                    c.id,
                    trigger_text(c.trigger),
                    c.night,
                    c.phase
                );
            }
            None => {
                let _ = writeln!(out, "Current run:    none");
            }
        }
    }

    /// The last runs, newest first, with their counts and errors.
    fn write_runs(&self, out: &mut String) {
        if self.runs.is_empty() {
            let _ = writeln!(out, "No runs yet.");
            return;
        }
        let _ = writeln!(out, "Last runs (newest first):");
        let _ = writeln!(
            out,
            "  {:>6}  {:<8}  {:<10}  {:<11}  {:<9}  {:>9}  started (UTC)",
            "run", "trigger", "night", "status", "phase", "duration"
        );
        for r in &self.runs {
            let _ = writeln!(
                out,
                "  {:>6}  {:<8}  {:<10}  {:<11}  {:<9}  {:>9}  {}",
                r.id,
                r.trigger,
                r.night,
                r.status,
                r.phase,
                r.duration_seconds.map(duration_text).unwrap_or_default(),
                r.started_at.format("%Y-%m-%d %H:%M:%S")
            );
            let counts = counts_text(&r.counts);
            if !counts.is_empty() {
                let _ = writeln!(out, "          {counts}");
            }
            if let Some(e) = &r.error {
                let _ = writeln!(out, "          error: {e}");
            }
        }
    }
}

impl StatusReport {
    /// The database's size and the oldest run kept.
    fn write_database(&self, out: &mut String) {
        let d = &self.database;
        let oldest = match (d.oldest_run, d.oldest_run_started_at) {
            (Some(id), Some(at)) => format!("oldest run kept {id} ({})", at.format("%Y-%m-%d")),
            _ => "no runs kept".to_string(),
        };
        let _ = writeln!(
            out,
            "Database:       {:.1} MB; {} runs kept, {oldest}",
            d.database_bytes as f64 / 1_048_576.0,
            d.runs_kept
        );
    }
}

/// `12000 of 15000 records fetched (40 pages); 0 of 0 rows written`.
fn progress_text(progress: &serde_json::Value) -> String {
    let n = |f: &str| progress.get(f).and_then(|v| v.as_u64());
    let mut parts = Vec::new();
    if let (Some(fetched), Some(expected)) = (n("fetched"), n("expected")) {
        parts.push(format!(
            "{fetched} of {expected} records fetched ({} pages)",
            n("pages").unwrap_or(0)
        ));
    }
    if let (Some(written), Some(to_write)) = (n("written"), n("to_write")) {
        if to_write > 0 {
            parts.push(format!("{written} of {to_write} rows written"));
        }
    }
    parts.join("; ")
}

fn trigger_text(trigger: Option<RunTrigger>) -> &'static str {
    trigger.map(RunTrigger::as_str).unwrap_or_default()
}
