//! Prometheus metrics through the `metrics` facade. The recorder is
//! installed once per process (the facade has one global recorder); `/metrics`
//! renders it through its handle.

use crate::sync::RunReport;
use chrono::{DateTime, Utc};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Seconds: a small district's run takes seconds, the biggest an hour or more.
const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".to_string()),
                DURATION_BUCKETS,
            );
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(e) => {
                    tracing::warn!("durations are exported as summaries, not histograms: {e}");
                    PrometheusBuilder::new().build_recorder()
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "student_sync_runs_total",
        "Runs finished, by status (succeeded, failed, interrupted, held for approval) and trigger."
    );
    describe_histogram!(
        "student_sync_run_duration_seconds",
        Unit::Seconds,
        "Wall time of each finished run, by status."
    );
    describe_histogram!(
        "student_sync_phase_duration_seconds",
        Unit::Seconds,
        "Wall time of each run phase (fetching, planning, applying), as the daemon saw it."
    );
    describe_counter!(
        "student_sync_records_total",
        "Records the runs wrote, by kind (students, contacts, guardian_accounts, users, connections) and action."
    );
    describe_gauge!(
        "student_sync_last_run_records",
        "Records the last successful run wrote, by kind and action."
    );
    describe_counter!(
        "student_sync_problems_total",
        "Record problems found by successful runs."
    );
    describe_gauge!(
        "student_sync_last_run_problems",
        "Record problems found by the last successful run."
    );
    describe_counter!(
        "student_sync_tier_changes_total",
        "Connections whose access tier changed, by direction (up, down)."
    );
    describe_gauge!(
        "student_sync_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time the last successful run finished."
    );
    describe_gauge!(
        "student_sync_next_run_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the next scheduled run (after blackout nights)."
    );
    describe_gauge!(
        "student_sync_active",
        "1 when this daemon holds the district lock, 0 as a standby."
    );
    describe_gauge!(
        "student_sync_run_in_progress",
        "1 while this daemon runs a sync."
    );
    describe_gauge!(
        "student_sync_run_started_timestamp_seconds",
        Unit::Seconds,
        "Unix time the run in progress started, 0 when none runs (alerts on a run taking too long)."
    );
    describe_gauge!(
        "student_sync_last_run_failed",
        "1 when the latest full run failed, 0 once one succeeds or is held."
    );
    describe_gauge!(
        "student_sync_held_run",
        "Id of the run a safety threshold holds for approval, 0 when none is waiting."
    );
}

/// Read from the database at every scrape, like /healthz: a hold is decided
/// by an admin with `approve` or `discard`, outside this process.
pub fn set_held_run(run_id: Option<i64>) {
    gauge!("student_sync_held_run").set(run_id.unwrap_or(0) as f64);
}

/// Zero series for every status, so dashboards see them before the first run.
pub fn init_series() {
    use crate::store::runs::{RunStatus, RunTrigger};
    for status in [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Interrupted,
        RunStatus::Held,
    ]
    .map(RunStatus::as_str)
    {
        for trigger in
            [RunTrigger::Schedule, RunTrigger::Manual, RunTrigger::Resume].map(RunTrigger::as_str)
        {
            counter!("student_sync_runs_total", "status" => status, "trigger" => trigger)
                .absolute(0);
        }
    }
    gauge!("student_sync_run_in_progress").set(0.0);
    gauge!("student_sync_run_started_timestamp_seconds").set(0.0);
    gauge!("student_sync_last_run_failed").set(0.0);
}

/// Whether the latest full run failed: from the run history at start, then
/// from each run this daemon finishes.
pub fn set_last_run_failed(failed: bool) {
    gauge!("student_sync_last_run_failed").set(if failed { 1.0 } else { 0.0 });
}

pub fn set_active(active: bool) {
    gauge!("student_sync_active").set(if active { 1.0 } else { 0.0 });
}

pub fn set_in_progress(running: bool) {
    gauge!("student_sync_run_in_progress").set(if running { 1.0 } else { 0.0 });
    let started = if running {
        Utc::now().timestamp_millis() as f64 / 1000.0
    } else {
        0.0
    };
    gauge!("student_sync_run_started_timestamp_seconds").set(started);
}

pub fn set_next_run(at: DateTime<Utc>) {
    gauge!("student_sync_next_run_timestamp_seconds").set(at.timestamp() as f64);
}

pub fn set_last_success(at: DateTime<Utc>) {
    gauge!("student_sync_last_success_timestamp_seconds")
        .set(at.timestamp_millis() as f64 / 1000.0);
}

pub fn phase_finished(phase: &str, took: Duration) {
    histogram!("student_sync_phase_duration_seconds", "phase" => phase.to_string())
        .record(took.as_secs_f64());
}

/// A run ended, whatever its status.
pub fn run_finished(trigger: &str, status: &str, took: Duration) {
    counter!("student_sync_runs_total", "status" => status.to_string(), "trigger" => trigger.to_string())
        .increment(1);
    histogram!("student_sync_run_duration_seconds", "status" => status.to_string())
        .record(took.as_secs_f64());
    // An interrupted run is resumed, not failed; it leaves the flag as it was.
    match status {
        "failed" => set_last_run_failed(true),
        "succeeded" | "held" => set_last_run_failed(false),
        _ => {}
    }
}

/// A successful run's counts.
pub fn run_succeeded(report: &RunReport, finished: DateTime<Utc>) {
    let c = &report.counts;
    let kinds = [
        ("students", &c.students),
        ("contacts", &c.contacts),
        ("guardian_accounts", &c.guardian_accounts),
        ("users", &c.users),
    ];
    let mut rows: Vec<(&'static str, &'static str, u64)> = Vec::new();
    for (kind, k) in kinds {
        rows.push((kind, "created", k.created));
        rows.push((kind, "updated", k.updated));
        rows.push((kind, "removed", k.removed));
        rows.push((kind, "unchanged", k.unchanged));
    }
    let cc = &c.connections;
    rows.extend([
        ("connections", "created", cc.created),
        ("connections", "updated", cc.updated),
        ("connections", "removed", cc.removed),
        ("connections", "unchanged", cc.unchanged),
        ("connections", "tier_up", cc.tier_up),
        ("connections", "tier_down", cc.tier_down),
        ("connections", "orphaned", cc.orphaned),
    ]);
    for (kind, action, n) in rows {
        counter!("student_sync_records_total", "kind" => kind, "action" => action).increment(n);
        gauge!("student_sync_last_run_records", "kind" => kind, "action" => action).set(n as f64);
    }
    counter!("student_sync_problems_total").increment(c.problems);
    gauge!("student_sync_last_run_problems").set(c.problems as f64);
    counter!("student_sync_tier_changes_total", "direction" => "up").increment(cc.tier_up);
    counter!("student_sync_tier_changes_total", "direction" => "down").increment(cc.tier_down);
    set_last_success(finished);
}
