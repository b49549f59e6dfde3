#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Progress where people look: the run's counts (records fetched of the
//! `/count` totals, rows written), on the run's row for `status` while it
//! runs, and as bars on a terminal only.

mod common;

use common::*;
use sqlx::PgPool;
use std::process::Output;
use std::time::Duration;
use student_sync::config::Settings;
use student_sync::harness::fake_powerschool::{self, FakeCredentials, Faults, RunningFake};
use student_sync::store::{self, RunTrigger};
use student_sync::sync::{self, RunOptions, RunProgress};

async fn settings_on(fake: &RunningFake, pool: &PgPool) -> Settings {
    let mut settings = settings_for(fake);
    settings.database.url = database_url(pool).await.parse().unwrap();
    settings
}

#[sqlx::test]
async fn a_runs_counts_match_what_it_fetched_and_wrote(pool: PgPool) {
    let fake = start_fake(fake_powerschool::generate(400, 3), Faults::default()).await;
    let settings = settings_on(&fake, &pool).await;
    let client = client(&settings);
    let progress = RunProgress::new();
    let options = RunOptions {
        progress: Some(progress.clone()),
        ..RunOptions::now(&settings, RunTrigger::Manual)
    };
    let outcome = sync::run_once(&pool, &settings, &client, &options)
        .await
        .unwrap();

    let counts = progress.counts();
    let f = &outcome.report.counts.fetched;
    let fetched_total = f.guardians + f.students + f.independent_students + f.contacts;
    assert_eq!(counts.phase, "done");
    assert_eq!(counts.pages, client.stats().pages_fetched, "{counts:?}");
    // Every record of every page, before parsing drops a bad one.
    assert!(
        counts.fetched >= fetched_total && fetched_total > 0,
        "{counts:?}"
    );
    assert_eq!(
        counts.expected, counts.fetched,
        "the /counts announced what came"
    );
    assert!(counts.to_write > 0, "{counts:?}");
    assert_eq!(counts.written, counts.to_write, "every planned row written");
}

#[sqlx::test]
async fn status_shows_the_counts_of_a_run_in_progress(pool: PgPool) {
    // Slow pages, so the fetch is still going while `status` looks.
    let faults = Faults {
        page_latency: Duration::from_millis(40),
        ..Faults::default()
    };
    let fake = start_fake(fake_powerschool::generate(1500, 5), faults).await;
    let settings = settings_on(&fake, &pool).await;
    let lock = store::lock::wait_for_lock(&pool, &sync::run_lock_key(&settings), || {})
        .await
        .unwrap();
    let run = {
        let (pool, settings) = (pool.clone(), settings.clone());
        tokio::spawn(async move {
            let options = RunOptions::now(&settings, RunTrigger::Manual);
            sync::run_once(&pool, &settings, &client(&settings), &options).await
        })
    };

    // Look until the run's row shows records fetched (bounded, not timed).
    let mut seen = None;
    for _ in 0..2000 {
        let report = student_sync::daemon::status(&settings).await.unwrap();
        if let Some(current) = &report.current {
            if current.progress["fetched"].as_u64().unwrap_or(0) > 0 {
                seen = Some(report);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = seen.expect("status showed the run's records fetched while it ran");
    let current = report.current.as_ref().unwrap();
    let expected = current.progress["expected"].as_u64().unwrap();
    let fetched = current.progress["fetched"].as_u64().unwrap();
    assert!(expected >= fetched && fetched > 0, "{:?}", current.progress);
    let text = report.to_text();
    assert!(
        text.contains(&format!("so far: {fetched} of {expected} records fetched")),
        "{text}"
    );
    assert!(text.contains("Database:"), "{text}");
    assert!(
        text.contains(&format!("oldest run kept {}", current.id)),
        "{text}"
    );

    let outcome = run.await.unwrap().unwrap();
    lock.release().await;
    assert_eq!(outcome.run_id, current.id);
    let after = student_sync::daemon::status(&settings).await.unwrap();
    assert!(after.current.is_none(), "the run is over");
}

fn sync_env(fake: &RunningFake, url: &str) -> Vec<(&'static str, String)> {
    let creds = FakeCredentials::default();
    vec![
        ("DATABASE_URL", url.to_string()),
        ("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url()),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", creds.client_id),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            creds.client_secret,
        ),
        ("STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE", "50".to_string()),
    ]
}

async fn output_of(mut cmd: tokio::process::Command, env: &[(&str, String)]) -> Output {
    cmd.env_remove("RUST_LOG")
        .env_remove("STUDENT_SYNC_CONFIG")
        .env_remove("JOURNAL_STREAM");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("command runs")
}

fn script_available() -> bool {
    std::process::Command::new("script")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[sqlx::test]
async fn bars_are_drawn_on_a_terminal_and_log_lines_on_a_pipe(pool: PgPool) {
    let fake = start_fake(fake_powerschool::generate(300, 9), Faults::default()).await;
    let env = sync_env(&fake, &database_url(&pool).await);
    let bin = env!("CARGO_BIN_EXE_student-sync");

    // First, while the run has rows to write (the second run has none).
    if script_available() {
        // A pseudo-terminal (script -q: no banner, -e: its exit code, -c: the command).
        let mut on_pty = tokio::process::Command::new("script");
        on_pty.args(["-qfec", &format!("{bin} sync --once"), "/dev/null"]);
        let out = output_of(on_pty, &env).await;
        let screen = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{screen}");
        assert!(
            screen.contains("records fetched of"),
            "the fetch bar: {screen}"
        );
        assert!(
            screen.contains("rows written of"),
            "the apply bar: {screen}"
        );
        assert!(screen.contains("[===="), "bar characters: {screen}");
        assert!(
            screen.contains('\u{1b}'),
            "drawn with terminal codes: {screen:?}"
        );
        assert!(
            !screen.contains("fetch finished"),
            "bars instead of info lines: {screen}"
        );
    } else {
        eprintln!(
            "SKIPPED: `script` (util-linux) is not installed; the terminal half is not tested"
        );
    }

    // A pipe: today's log lines, no bar and no terminal codes.
    let mut piped = tokio::process::Command::new(bin);
    piped.args(["sync", "--once"]);
    let out = output_of(piped, &env).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("fetch finished"),
        "log lines on a pipe: {stderr}"
    );
    assert!(
        !stderr.contains("records fetched of"),
        "no bar on a pipe: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal codes on a pipe: {stderr:?}"
    );
}
