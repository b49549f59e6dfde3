#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! `student-sync sync --once` as a real process, stopped by a real signal
//! (on-call pressing Ctrl-C on a run started by hand, or a unit stopping
//! it): the run is cancelled like a daemon's, its row says `interrupted`
//! and why, nothing it did is kept, and the process exits with 1.

mod common;

use common::daemon_setup::*;
use common::*;
use sqlx::PgPool;
use std::time::Duration;
use student_sync::harness::fake_powerschool::Faults;

async fn stopped_by(pool: PgPool, signal: i32) {
    // Slow pages: the run is still fetching when the signal comes.
    let faults = Faults {
        page_latency: Duration::from_millis(300),
        ..Faults::default()
    };
    let fake = start_fake(small_district(), faults).await;
    let db_url = database_url(&pool).await;
    let before = fingerprint(&pool).await;
    let mut sync = spawn(&["sync", "--once"], &binary_env(&fake, &db_url), &[]);
    eventually(
        "the run to start fetching",
        Duration::from_secs(30),
        &|| sync.logs(),
        || {
            let pool = pool.clone();
            async move {
                count(
                    &pool,
                    "SELECT count(*) FROM sync_runs WHERE status = 'running'",
                )
                .await
                    == 1
            }
        },
    )
    .await;

    sync.signal(signal);
    // A bound against a hang, not a measurement.
    let exit = sync
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("sync --once exits after the signal");
    assert_eq!(exit.code(), Some(1), "{exit:?}\n{}", sync.logs());
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM sync_runs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "interrupted", "{}", sync.logs());
    let error = error.unwrap_or_default();
    assert!(error.contains("stop requested"), "{error}");
    let (run_id,): (i64,) = sqlx::query_as("SELECT id FROM sync_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    let said = format!(
        "error: run {run_id} was interrupted (stop requested); the daemon resumes it at its next start"
    );
    assert!(sync.logs().contains(&said), "{}", sync.logs());
    // The live tables are as they were: nothing of the run is kept.
    assert_eq!(fingerprint(&pool).await, before);
}

#[sqlx::test]
async fn sigint_interrupts_a_sync_started_by_hand(pool: PgPool) {
    stopped_by(pool, libc::SIGINT).await;
}

#[sqlx::test]
async fn sigterm_interrupts_a_sync_started_by_hand(pool: PgPool) {
    stopped_by(pool, libc::SIGTERM).await;
}
