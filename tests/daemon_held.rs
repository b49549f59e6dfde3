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

use chrono::{TimeZone, Utc};
use chrono_tz::America::Edmonton;
use common::daemon_http::*;
use common::*;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use student_sync::daemon::{Daemon, Notifier};
use student_sync::harness::fake_powerschool::{self, Faults};
use tokio::sync::{watch, Semaphore};

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
    let mut settings = settings_for(&fake);
    settings.database.url = url::Url::parse(&database_url(&pool).await).unwrap();
    settings.daemon.listen = "127.0.0.1:0".parse().unwrap();
    // No permits: the schedule never fires, the hold stays the latest news.
    let clock = GateClock {
        now: Arc::new(Mutex::new(
            Edmonton
                .with_ymd_and_hms(2026, 3, 5, 12, 0, 0)
                .unwrap()
                .with_timezone(&Utc),
        )),
        permits: Arc::new(Semaphore::new(0)),
    };
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
