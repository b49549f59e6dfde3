#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The daemon's HTTP listener over real HTTP: `/healthz` answers 503 with
//! the reason after a failed run, 200 while a run is in progress and after it
//! succeeded, 503 again when the database does not answer; `/metrics` is Prometheus text with the run's numbers. A test
//! binary of its own: the metrics recorder is global to the process, so no
//! other test's runs may add to the counters checked here.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::America::Edmonton;
use common::daemon_http::*;
use common::*;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use student_sync::daemon::{Daemon, Notifier};
use student_sync::harness::fake_powerschool::{self, Faults};
use tokio::sync::watch;

#[sqlx::test]
async fn healthz_and_metrics_over_http(pool: PgPool) {
    let failed: i64 = sqlx::query_scalar(
        "INSERT INTO sync_runs (trigger, night, status, phase, error, finished_at)
         VALUES ('schedule', '2026-03-05', 'failed', 'fetching', 'PowerSchool said 500', now())
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    // Slow pages, so the run is seen in progress and its phases are timed.
    let fake = start_fake(
        fake_powerschool::generate(400, 7),
        Faults {
            page_latency: Duration::from_millis(40),
            ..Faults::default()
        },
    )
    .await;
    let mut settings = daemon_settings(&fake, &pool).await;
    settings.safety.enabled = false;
    // /healthz answers from a state refreshed in the background: often, here.
    settings.daemon.health_refresh = Duration::from_millis(100);
    let clock = GateClock::at_noon_on_a_school_day();
    let (stop, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings, pool.clone(), clock.clone())
        .unwrap()
        .with_notifier(Notifier::disabled());
    let running = daemon.start(stopped).await.unwrap();
    let base = format!("http://{}", running.http_addr);

    // Tonight's run failed: unhealthy, and the body says why.
    let (code, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(
        body,
        format!("unhealthy: last run {failed} (night 2026-03-05, schedule) failed: PowerSchool said 500\n")
    );
    let (code, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# TYPE student_sync_runs_total counter"),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "student_sync_runs_total",
            &[("status", "succeeded"), ("trigger", "schedule")]
        ),
        Some(0.0),
        "{metrics}"
    );

    // Let the schedule fire once (midnight, 6 March) and watch the run.
    clock.permits.add_permits(1);
    let start = Instant::now();
    let mut seen_in_progress = false;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not finish"
        );
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM sync_runs WHERE id > $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(failed)
        .fetch_optional(&pool)
        .await
        .unwrap();
        match status.as_deref() {
            Some("running") if !seen_in_progress => {
                let (code, body) = get(&format!("{base}/healthz")).await;
                if body.contains("in progress") {
                    assert_eq!(code, 200, "{body}");
                    assert!(body.starts_with("ok: run "), "{body}");
                    seen_in_progress = true;
                }
            }
            Some("succeeded") => break,
            Some(other @ ("failed" | "interrupted" | "held")) => panic!("the run ended {other}"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen_in_progress,
        "/healthz never reported the run in progress"
    );
    // The loop records the run's metrics and refreshes the health answer
    // right after the row commits: wait for both, by state.
    for _ in 0..400 {
        let (_, body) = get(&format!("{base}/healthz")).await;
        let (_, metrics) = get(&format!("{base}/metrics")).await;
        let counted = sample(
            &metrics,
            "student_sync_runs_total",
            &[("status", "succeeded"), ("trigger", "schedule")],
        );
        if body.starts_with("ok: last run") && counted == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let (code, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with(&format!(
            "ok: last run {} (night 2026-03-06, schedule) succeeded at ",
            failed + 1
        )),
        "{body}"
    );

    let (code, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    let (counts, finished): (serde_json::Value, DateTime<Utc>) =
        sqlx::query_as("SELECT counts, finished_at FROM sync_runs WHERE id = $1")
            .bind(failed + 1)
            .fetch_one(&pool)
            .await
            .unwrap();
    let m = |name: &str, labels: &[(&str, &str)]| {
        sample(&metrics, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{metrics}"))
    };
    assert_eq!(
        m(
            "student_sync_runs_total",
            &[("status", "succeeded"), ("trigger", "schedule")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "student_sync_runs_total",
            &[("status", "failed"), ("trigger", "schedule")]
        ),
        0.0
    );
    assert_eq!(
        m(
            "student_sync_run_duration_seconds_count",
            &[("status", "succeeded")]
        ),
        1.0
    );
    assert!(
        m(
            "student_sync_run_duration_seconds_sum",
            &[("status", "succeeded")]
        ) > 0.0
    );
    assert!(
        m(
            "student_sync_phase_duration_seconds_count",
            &[("phase", "fetching")]
        ) >= 1.0
    );
    let students = count(&pool, "SELECT count(*) FROM students").await as f64;
    assert!(students > 300.0);
    assert_eq!(
        m(
            "student_sync_records_total",
            &[("kind", "students"), ("action", "created")]
        ),
        students
    );
    assert_eq!(
        m(
            "student_sync_records_total",
            &[("kind", "connections"), ("action", "created")]
        ),
        count(&pool, "SELECT count(*) FROM connections").await as f64
    );
    assert_eq!(
        m("student_sync_problems_total", &[]),
        counts["problems"].as_u64().expect("counts.problems") as f64
    );
    assert_eq!(
        m("student_sync_tier_changes_total", &[("direction", "up")]),
        0.0
    );
    assert_eq!(
        m("student_sync_tier_changes_total", &[("direction", "down")]),
        0.0
    );
    let last_success = m("student_sync_last_success_timestamp_seconds", &[]);
    assert!(
        (last_success - finished.timestamp_millis() as f64 / 1000.0).abs() < 5.0,
        "{last_success} vs {finished}"
    );
    assert_eq!(m("student_sync_active", &[]), 1.0);
    assert_eq!(m("student_sync_run_in_progress", &[]), 0.0);
    // The next fire, 7 March 00:00 MST.
    assert_eq!(
        m("student_sync_next_run_timestamp_seconds", &[]),
        Edmonton
            .with_ymd_and_hms(2026, 3, 7, 0, 0, 0)
            .unwrap()
            .timestamp() as f64
    );

    // The database stops answering (here: the daemon's pool is closed): the
    // next refresh of the health state says so.
    pool.close().await;
    let mut answer = get(&format!("{base}/healthz")).await;
    for _ in 0..200 {
        if answer.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = get(&format!("{base}/healthz")).await;
    }
    let (code, body) = answer;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("unhealthy: the database does not answer: "),
        "{body}"
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("the daemon stops")
        .expect("cleanly");
}
