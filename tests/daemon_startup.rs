#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The daemon's start-up decision (issue 5) from the run history: after a
//! failure tonight it waits for the next night; a run left `running` by a
//! dead process is marked interrupted and resumed by the real binary (its
//! secrets read from systemd's credentials directory); a database that does
//! not answer at start is waited for. Every database test gets a fresh
//! database (`#[sqlx::test]`); every process it starts is killed and waited
//! for before the test ends.

mod common;

use chrono::{NaiveDate, Utc};
use chrono_tz::America::Edmonton;
use common::daemon_setup::*;
use common::*;
use sqlx::PgPool;
use std::time::Duration;
use student_sync::daemon::{decide, Daemon, Notifier, StartupDecision};
use student_sync::harness::fake_powerschool::{FakeCredentials, Faults};
use student_sync::store::runs::{RunPhase, RunRecord, RunTrigger};

// ------------------------------------------------- 2. start-up decision

fn record(id: i64, status: &str, night: NaiveDate, error: Option<&str>) -> RunRecord {
    RunRecord {
        id,
        trigger: RunTrigger::Schedule,
        night,
        started_at: Utc::now(),
        finished_at: None,
        phase: RunPhase::Applying,
        status: status.parse().unwrap(),
        counts: serde_json::json!({}),
        error: error.map(String::from),
        host: Some("old-host".into()),
        pid: Some(4242),
    }
}

#[test]
fn startup_decision_from_the_run_history() {
    // 2026-03-06 08:00 in Edmonton.
    let now = local(2026, 3, 6, 8, 0).with_timezone(&Utc);
    let tonight = date(2026, 3, 6);
    let next = local(2026, 3, 7, 0, 0);

    let d = decide(None, now, Edmonton);
    assert_eq!(d, StartupDecision::WaitSchedule { last: None });
    assert_eq!(
        d.log_line(next),
        "start-up: no run yet; first run 2026-03-07 00:00 MST"
    );

    let d = decide(Some(&record(7, "running", tonight, None)), now, Edmonton);
    assert!(
        matches!(
            d,
            StartupDecision::Resume {
                run_id: 7,
                stale: true,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(
        d.log_line(next),
        "start-up: run 7 (night 2026-03-06) was left running in phase applying by pid 4242 on \
         old-host that is gone; marking it interrupted and resuming now"
    );

    // An interrupted run from an earlier night is resumed too, for its night.
    let d = decide(
        Some(&record(8, "interrupted", date(2026, 3, 5), None)),
        now,
        Edmonton,
    );
    assert!(
        matches!(d, StartupDecision::Resume { run_id: 8, stale: false, night, .. } if night == date(2026, 3, 5)),
        "{d:?}"
    );
    assert!(d
        .log_line(next)
        .contains("was interrupted in phase applying; resuming now"));

    let d = decide(
        Some(&record(
            9,
            "failed",
            tonight,
            Some("fetching from PowerSchool failed:\n  500"),
        )),
        now,
        Edmonton,
    );
    assert!(
        matches!(d, StartupDecision::WaitNextNight { run_id: 9, .. }),
        "{d:?}"
    );
    let line = d.log_line(next);
    assert_eq!(
        line,
        "start-up: tonight's run 9 (night 2026-03-06) failed: fetching from PowerSchool failed: 500; \
         not retrying tonight, next run 2026-03-07 00:00 MST (`student-sync run --now` retries sooner)"
    );
    assert!(!line.contains('\n'));

    // Last night's failure is history: wait for the schedule.
    let d = decide(
        Some(&record(10, "failed", date(2026, 3, 5), Some("boom"))),
        now,
        Edmonton,
    );
    assert!(
        matches!(d, StartupDecision::WaitSchedule { last: Some(_) }),
        "{d:?}"
    );
    assert!(d
        .log_line(next)
        .contains("last run 10 (night 2026-03-05) failed: boom; waiting for the schedule"));

    let d = decide(Some(&record(11, "succeeded", tonight, None)), now, Edmonton);
    assert!(
        matches!(d, StartupDecision::WaitSchedule { last: Some(_) }),
        "{d:?}"
    );
}

/// Tonight's run failed: the daemon says so at start and runs no scheduled
/// run for tonight (an hourly cron here), only from the next night on.
#[sqlx::test]
async fn after_a_failure_tonight_the_daemon_waits_for_the_next_night(pool: PgPool) {
    let (logs, _guard) = capture_logs();
    let failed = insert_run(
        &pool,
        "failed",
        "fetching",
        date(2026, 3, 6),
        Some("PowerSchool said 500"),
        1,
    )
    .await;
    let fake = start_fake(small_district(), Faults::default()).await;
    let mut settings = daemon_settings(&fake, &pool).await;
    settings.schedule.cron = "0 0 * * * *".into();
    let (clock, stop) = FakeClock::new(local(2026, 3, 6, 8, 10), local(2026, 3, 7, 2, 30));
    let daemon = Daemon::with_clock(settings, pool.clone(), clock)
        .unwrap()
        .with_notifier(Notifier::disabled());
    let running = daemon.start(stop).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), running.wait())
        .await
        .unwrap()
        .unwrap();

    let rows = runs(&pool).await;
    let later: Vec<(NaiveDate, &str)> = rows
        .iter()
        .filter(|r| r.0 != failed)
        .map(|r| (r.2, r.1.as_str()))
        .collect();
    assert_eq!(
        later,
        vec![(date(2026, 3, 7), "schedule"); 3],
        "no run for the failed night; 00:00, 01:00, 02:00 the next night: {rows:?}"
    );
    let text = logs.text();
    assert!(
        text.contains(&format!(
            "start-up: tonight's run {failed} (night 2026-03-06) failed: PowerSchool said 500; not retrying tonight"
        )),
        "{text}"
    );
    assert!(text.contains("scheduled run for night 2026-03-06 (2026-03-06 09:00 MST) skipped: tonight's run failed"), "{text}");
}

/// A run left `running` by a process that died: the daemon binary marks it
/// interrupted, says so in one line, and resumes at once.
#[sqlx::test]
async fn daemon_start_resumes_a_run_left_running_by_a_dead_process(pool: PgPool) {
    let stale = insert_run(&pool, "running", "applying", tonight(), None, 999_999).await;
    let fake = start_fake(small_district(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "0 0 0 * * *", 5, &[]);
    // The secrets as systemd's LoadCredential hands them over: files in
    // $CREDENTIALS_DIRECTORY named by the config, nothing in the environment.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[powerschool]\n",
        "[database]\npassword_file = \"database_password\"\n\
         [powerschool]\nclient_secret_file = \"powerschool_client_secret\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(
        credentials.join("powerschool_client_secret"),
        FakeCredentials::default().client_secret + "\n",
    )
    .unwrap();
    // Trust authentication ignores it; reading it is what is tested.
    std::fs::write(credentials.join("database_password"), "unused\n").unwrap();
    let env: Vec<(String, String)> = binary_env(&fake, &database_url(&pool).await)
        .into_iter()
        .filter(|(k, _)| k != "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET")
        .collect();
    let mut daemon = spawn(
        &["--config", config.to_str().unwrap(), "daemon"],
        &env,
        &[("CREDENTIALS_DIRECTORY", credentials.display().to_string())],
    );

    daemon
        .wait_log(
            &format!("start-up: run {stale} (night {}) was left running in phase applying by pid 999999 on old-host that is gone; marking it interrupted and resuming now", tonight()),
            Duration::from_secs(20),
        )
        .await;
    eventually(
        "the resumed run to succeed",
        Duration::from_secs(60),
        &|| daemon.logs(),
        || {
            let pool = pool.clone();
            async move {
                runs(&pool)
                    .await
                    .iter()
                    .any(|r| r.1 == "resume" && r.3 == "succeeded")
            }
        },
    )
    .await;
    let rows = runs(&pool).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].3, "interrupted");
    assert_eq!(
        rows[0].4.as_deref(),
        Some("process died (found running at start-up)")
    );
    assert_eq!(
        (rows[1].1.as_str(), rows[1].2, rows[1].5),
        ("resume", tonight(), Some(daemon.pid))
    );
    assert!(count(&pool, "SELECT count(*) FROM students").await > 300);

    daemon.signal(libc::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits after SIGTERM");
    assert!(exit.success(), "{exit:?}\n{}", daemon.logs());
}

/// A database that does not answer at start is waited for (one log line per
/// attempt), not a reason to exit; a stop while waiting exits cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_waits_for_the_database_at_start() {
    let fake = start_fake(small_district(), Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "0 0 0 * * *", 5, &[]);
    // Nothing listens on port 1.
    let env = binary_env(&fake, "postgres://postgres@127.0.0.1:1/student_sync");
    let mut daemon = spawn(&["--config", config.to_str().unwrap(), "daemon"], &env, &[]);
    daemon
        .wait_log(
            "waiting for the database (attempt 2 failed",
            Duration::from_secs(60),
        )
        .await;
    let logs = daemon.logs();
    assert!(
        logs.contains("waiting for the database (attempt 1 failed, next in 1 s)"),
        "{logs}"
    );
    assert!(logs.contains("127.0.0.1:1"), "names the server: {logs}");
    daemon.signal(libc::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the daemon exits after SIGTERM");
    assert!(exit.success(), "{exit:?}\n{}", daemon.logs());
    assert!(daemon
        .logs()
        .contains("stopped while waiting for the database"));
    fake.shutdown().await;
}
