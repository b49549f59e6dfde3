#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! A run held by a safety threshold, as the daemon's HTTP listener reports
//! it: `/healthz` names the threshold, `/metrics` the held run. A test binary
//! of its own, because the metrics recorder is global to the process and the
//! daemon started here would change the gauges `tests/daemon_http.rs` checks.

mod common;

use common::daemon_http::*;
use common::*;
use sqlx::PgPool;
use std::time::Duration;
use student_sync::daemon::{Daemon, Notifier};
use student_sync::harness::fake_powerschool::{self, Faults};
use tokio::sync::watch;

#[sqlx::test]
async fn a_held_run_makes_healthz_unhealthy_naming_the_threshold(pool: PgPool) {
    let held: i64 = sqlx::query_scalar(
        "INSERT INTO sync_runs (trigger, night, status, phase, hold_reason, finished_at)
         VALUES ('schedule', '2026-03-05', 'held', 'planning',
                 'students leaving the sync set: 400 of 400 (100.0%), threshold 500 or 10%', now())
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let fake = start_fake(fake_powerschool::generate(10, 1), Faults::default()).await;
    let settings = daemon_settings(&fake, &pool).await;
    // No permits: the schedule never fires, the hold stays the latest news.
    let clock = GateClock::at_noon_on_a_school_day();
    let (stop, stopped) = watch::channel(false);
    let running = Daemon::with_clock(settings, pool.clone(), clock)
        .unwrap()
        .with_notifier(Notifier::disabled())
        .start(stopped)
        .await
        .unwrap();
    let base = format!("http://{}", running.http_addr);

    let (code, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!(
            "run {held} (night 2026-03-05) is held by a safety threshold"
        )),
        "{body}"
    );
    assert!(
        body.contains("students leaving the sync set: 400 of 400"),
        "{body}"
    );
    assert!(
        body.contains(&format!("student-sync approve {held}")),
        "{body}"
    );

    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&metrics, "student_sync_held_run", &[]),
        Some(held as f64),
        "{metrics}"
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("the daemon stops")
        .expect("cleanly");
}
