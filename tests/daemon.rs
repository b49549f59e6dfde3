#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The daemon (issue 5) through the binary: `run --now` during blackout
//! nights and after a failure tonight, waiting for the run lock another
//! process holds, and `status` (text and JSON) before and after. The test
//! gets a fresh database (`#[sqlx::test]`); every process it starts is
//! killed and waited for before the test ends. The schedule, the start-up
//! decision and the real processes are in `tests/daemon_schedule.rs`,
//! `tests/daemon_startup.rs` and `tests/daemon_processes.rs`.

mod common;

use chrono::Duration as ChronoDuration;
use common::daemon_setup::*;
use common::*;
use sqlx::{Connection, PgPool};
use std::time::Duration;
use student_sync::harness::fake_powerschool::Faults;

// ------------------------------------- 5, 9. run --now, status, blackout

/// `run --now` during a blackout and after a failure tonight, while another
/// process holds the run lock: it says who it waits for, runs when the lock
/// is free, and prints JSON. `status` before and after.
#[sqlx::test]
async fn run_now_waits_for_the_lock_and_status_reports_everything(pool: PgPool) {
    let fake = start_fake(small_district(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let today = tonight();
    let config = write_config(
        dir.path(),
        "0 0 0 * * *",
        5,
        &[(
            today - ChronoDuration::days(1),
            today + ChronoDuration::days(2),
        )],
    );
    let config = config.to_str().unwrap().to_string();
    let db_url = database_url(&pool).await;
    let env = binary_env(&fake, &db_url);

    let failed = insert_run(
        &pool,
        "failed",
        "fetching",
        today,
        Some("fetching from PowerSchool failed: 503"),
        1,
    )
    .await;
    // Another process's run in progress, holding the run lock.
    let options: sqlx::postgres::PgConnectOptions = db_url.parse().unwrap();
    let mut holder = sqlx::PgConnection::connect_with(
        &options.application_name("student-sync daemon other-host 4242"),
    )
    .await
    .unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('student-sync-run:test-district'))")
        .execute(&mut holder)
        .await
        .unwrap();
    let in_progress = insert_run(&pool, "running", "applying", today, None, 4242).await;

    let out = run_binary(&["--config", &config, "status", "--json"], &env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["current"]["id"], in_progress);
    assert_eq!(report["current"]["phase"], "applying");
    assert_eq!(report["current"]["alive"], true);
    let run_holder = &report["lock_holders"][0];
    assert_eq!(run_holder["lock"], "run");
    assert_eq!(
        run_holder["application_name"],
        "student-sync daemon other-host 4242"
    );
    assert_eq!(report["runs"][1]["id"], failed);
    assert_eq!(report["runs"][1]["status"], "failed");
    assert_eq!(
        report["runs"][1]["error"],
        "fetching from PowerSchool failed: 503"
    );
    assert!(report["runs"][1]["duration_seconds"].is_number());
    assert_eq!(report["next_run"]["cron"], "0 0 0 * * *");
    assert_eq!(
        report["next_run"]["night"],
        (today + ChronoDuration::days(3)).to_string()
    );
    assert_eq!(
        report["next_run"]["skipped_blackout_nights"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        report["next_run"]["local"]
            .as_str()
            .unwrap()
            .ends_with(" 00:00 MST")
            || report["next_run"]["local"]
                .as_str()
                .unwrap()
                .ends_with(" 00:00 MDT")
    );

    let mut now = spawn(
        &["--config", &config, "run", "--now", "--json"],
        &env,
        &[("RUST_LOG", "info,sqlx=warn".into())],
    );
    now.wait_log(
        "run --now: waiting for the run lock, held by \"student-sync daemon other-host 4242\"",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        now.logs()
            .contains(&format!("tonight's run {failed} failed")),
        "{}",
        now.logs()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM sync_runs").await,
        2,
        "no run while the lock is held"
    );
    sqlx::query("UPDATE sync_runs SET status = 'succeeded', phase = 'done', finished_at = now() WHERE id = $1")
        .bind(in_progress)
        .execute(&pool)
        .await
        .unwrap();
    holder.close().await.unwrap();

    let exit = now
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("run --now finishes");
    let stdout = now.stdout_text().await;
    assert!(exit.success(), "{}\n{stdout}", now.logs());
    let outcome: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outcome["status"], "succeeded");
    assert_eq!(outcome["trigger"], "manual");
    assert_eq!(outcome["night"], today.to_string());
    assert!(
        outcome["waited_seconds"].as_f64().unwrap() >= 0.3,
        "{outcome}"
    );
    assert!(
        outcome["report"]["counts"]["students"]["created"]
            .as_u64()
            .unwrap()
            > 300
    );

    let out = run_binary(&["--config", &config, "status"], &env).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Active daemon:  none"), "{text}");
    assert!(text.contains("Current run:    none"), "{text}");
    assert!(
        text.contains("manual") && text.contains("succeeded"),
        "{text}"
    );
    assert!(
        text.contains("error: fetching from PowerSchool failed: 503"),
        "{text}"
    );
    assert!(text.contains("students +"), "{text}");
    assert!(text.contains("skipping blackout nights"), "{text}");

    let out = run_binary(&["--config", &config, "run"], &env).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "`run` without --now is a usage error"
    );
    now.kill().await;
}
