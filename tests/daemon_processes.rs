#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The daemon as real processes (issue 5): a real SIGTERM during a run
//! (rolled back, `interrupted`, within the grace period), sd_notify to a
//! socket the test opens, JSON logs carrying the run id; and two real
//! processes sharing the district lock, the standby taking over when the
//! active one is killed. Every test gets a fresh database (`#[sqlx::test]`);
//! every process it starts is killed and waited for before the test ends.

mod common;

use common::daemon_setup::*;
use common::*;
use sqlx::{Connection, PgPool};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use student_sync::harness::fake_powerschool::Faults;

// ---------------------------------------------------------------- helpers

fn slow(ms: u64) -> Faults {
    Faults {
        page_latency: Duration::from_millis(ms),
        ..Faults::default()
    }
}

async fn status_of(pool: &PgPool, id: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, error FROM sync_runs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

// ------------------------- 3, 6, 8. SIGTERM, sd_notify, JSON logs with run id

/// The daemon as systemd runs it: NOTIFY_SOCKET (a socket this test opened),
/// a watchdog, JSON logs. A run is in flight against a slow PowerSchool when
/// SIGTERM arrives: the process exits within the grace period, the run rolls
/// back and its row says `interrupted`.
#[sqlx::test]
async fn sigterm_interrupts_the_run_within_the_grace_period_and_systemd_is_told(pool: PgPool) {
    let fake = start_fake(small_district(), slow(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let grace = 3;
    let config = write_config(dir.path(), "* * * * * *", grace, &[]);
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Read the socket as systemd would, all the time, on a thread of its own.
    let reader = {
        let messages = messages.clone();
        let reading = reading.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    messages
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        })
    };
    let before = fingerprint(&pool).await;
    // Another session holds `connections` in SHARE mode: the run can read
    // it, but its transaction stops at its first write there, after it has
    // written students, contacts, guardian accounts and users. So SIGTERM
    // finds a transaction that has really written something.
    let db_url = database_url(&pool).await;
    let mut blocker = sqlx::PgConnection::connect(&db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE connections IN SHARE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let env = binary_env(&fake, &db_url);
    let mut daemon = spawn(
        &[
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
            "daemon",
        ],
        &env,
        &[
            ("NOTIFY_SOCKET", socket_path.display().to_string()),
            ("WATCHDOG_USEC", "200000".to_string()),
        ],
    );

    eventually(
        "the run to write inside its transaction and wait at `connections`",
        Duration::from_secs(30),
        &|| daemon.logs(),
        || {
            let pool = pool.clone();
            async move {
                let blocked: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'
                       AND backend_xid IS NOT NULL AND query ILIKE '%connections%'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                blocked == 1
            }
        },
    )
    .await;
    let (run_id, phase): (i64, String) =
        sqlx::query_as("SELECT id, phase FROM sync_runs WHERE status = 'running'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(phase, "applying");
    eventually(
        "a STATUS line naming the run's phase",
        Duration::from_secs(10),
        &|| format!("{:?}", messages.lock().unwrap()),
        || {
            let found = messages
                .lock()
                .unwrap()
                .iter()
                .any(|m| m.starts_with(&format!("STATUS=run {run_id} applying")));
            async move { found }
        },
    )
    .await;

    daemon.signal(libc::SIGTERM);
    // A bound against a hang, not a measurement: whether the run stopped
    // within the grace period is the daemon's own verdict, in its log.
    let exit = daemon
        .wait_exit(Duration::from_secs(grace + 60))
        .await
        .expect("the daemon exits after SIGTERM");
    assert!(exit.success(), "{exit:?}\n{}", daemon.logs());
    assert!(
        !daemon.logs().contains("did not stop within"),
        "the run was cancelled and rolled back, not abandoned:\n{}",
        daemon.logs()
    );

    let (status, error) = status_of(&pool, run_id).await;
    assert_eq!(status, "interrupted", "{}", daemon.logs());
    assert!(error.unwrap_or_default().contains("cancelled"));
    assert_eq!(count(&pool, "SELECT count(*) FROM sync_runs").await, 1);
    // Let the dead run's session go on: it finds its client gone and rolls
    // back; nothing it wrote may ever become visible.
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    eventually(
        "the cancelled run's session to end",
        Duration::from_secs(10),
        &String::new,
        || {
            let pool = pool.clone();
            async move {
                let open: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND backend_xid IS NOT NULL
                       AND pid <> pg_backend_pid()",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                open == 0
            }
        },
    )
    .await;
    blocker.close().await.unwrap();
    assert_eq!(
        fingerprint(&pool).await,
        before,
        "the interrupted run changed a live table"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM students").await, 0);

    // sd_notify: ready, watchdog pings, phase status, stopping (the last
    // one sent: wait until the reader has it).
    for _ in 0..200 {
        if messages.lock().unwrap().iter().any(|m| m == "STOPPING=1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let got = messages.lock().unwrap().clone();
    for wanted in ["READY=1", "WATCHDOG=1", "STOPPING=1"] {
        assert!(got.iter().any(|m| m == wanted), "no {wanted} in {got:?}");
    }
    assert!(
        got.iter().any(|m| m.starts_with("STATUS=idle; next run ")),
        "{got:?}"
    );
    assert!(
        got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2,
        "{got:?}"
    );

    // JSON logs: every line parses; every line the run logged carries its id.
    let lines = daemon.lines.lock().unwrap().clone();
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let carries_run_id = |v: &serde_json::Value| {
        v.get("run_id").and_then(|x| x.as_i64()) == Some(run_id)
            || v["span"]["run_id"].as_i64() == Some(run_id)
            || v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["run_id"].as_i64() == Some(run_id)))
    };
    let of_the_run: Vec<&serde_json::Value> = json
        .iter()
        .filter(|v| {
            let target = v["target"].as_str().unwrap_or("");
            target.starts_with("student_sync::sync")
                || target.starts_with("student_sync::powerschool")
                || target.starts_with("student_sync::store")
                || v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("run {run_id} ")))
        })
        .collect();
    assert!(of_the_run.len() >= 3, "{} lines: {lines:#?}", lines.len());
    for v in &of_the_run {
        assert!(
            carries_run_id(v),
            "a line of run {run_id} without its id: {v}"
        );
    }
    assert!(
        json.iter()
            .any(|v| v["message"] == "PowerSchool fetch started" && carries_run_id(v)),
        "{lines:#?}"
    );
}

// ------------------------------------------- 4. one runner at a time

/// Two real daemons on one district: the second waits as a standby; when the
/// active one is killed (SIGKILL, no clean-up at all) the standby takes
/// over and resumes the run the dead one left `running`.
#[sqlx::test]
async fn standby_takes_over_and_resumes_when_the_active_daemon_is_killed(pool: PgPool) {
    let fake = start_fake(small_district(), slow(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "* * * * * *", 5, &[]);
    let config = config.to_str().unwrap().to_string();
    let db_url = database_url(&pool).await;
    let env = binary_env(&fake, &db_url);
    let mut a = spawn(&["--config", &config, "daemon"], &env, &[]);
    a.wait_log("active: holding the district lock", Duration::from_secs(20))
        .await;
    let mut b = spawn(&["--config", &config, "daemon"], &env, &[]);
    b.wait_log(
        "standby: the district lock for \"test-district\" is held by \"student-sync daemon ",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        b.logs().contains(&format!(" {}\"", a.pid)),
        "the standby names the active pid:\n{}",
        b.logs()
    );

    let a_pid = a.pid;
    eventually(
        "a run by the active daemon",
        Duration::from_secs(20),
        &|| a.logs(),
        || {
            let pool = pool.clone();
            async move {
                runs(&pool)
                    .await
                    .iter()
                    .any(|r| r.3 == "running" && r.5 == Some(a_pid))
            }
        },
    )
    .await;
    let orphan: i64 = sqlx::query_scalar("SELECT max(id) FROM sync_runs WHERE status = 'running'")
        .fetch_one(&pool)
        .await
        .unwrap();
    a.signal(libc::SIGKILL);
    a.wait_exit(Duration::from_secs(5))
        .await
        .expect("SIGKILL ends it");

    b.wait_log("active: holding the district lock", Duration::from_secs(20))
        .await;
    b.wait_log(&format!("start-up: run {orphan} "), Duration::from_secs(20))
        .await;
    let b_pid = b.pid;
    eventually(
        "the standby's resumed run to succeed",
        Duration::from_secs(60),
        &|| b.logs(),
        || {
            let pool = pool.clone();
            async move {
                runs(&pool)
                    .await
                    .iter()
                    .any(|r| r.1 == "resume" && r.3 == "succeeded" && r.5 == Some(b_pid))
            }
        },
    )
    .await;
    let (status, error) = status_of(&pool, orphan).await;
    assert_eq!(status, "interrupted");
    assert_eq!(
        error.as_deref(),
        Some("process died (found running at start-up)")
    );
    // Never two runs at once: no run of B's overlaps another.
    let overlapping = count(
        &pool,
        "SELECT count(*) FROM sync_runs a JOIN sync_runs b ON a.id < b.id
         WHERE a.status = 'succeeded' AND b.started_at < a.finished_at",
    )
    .await;
    assert_eq!(overlapping, 0);

    // `status` names the new active daemon.
    let out = run_binary(&["--config", &config, "status", "--json"], &env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let leader = report["lock_holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["lock"] == "leader")
        .expect("a leader lock holder");
    assert!(
        leader["application_name"]
            .as_str()
            .unwrap()
            .ends_with(&format!(" {b_pid}")),
        "{leader}"
    );

    b.signal(libc::SIGTERM);
    let exit = b.wait_exit(Duration::from_secs(10)).await.expect("B stops");
    assert!(exit.success(), "{}", b.logs());
    a.kill().await;
}

// ------------------------------------------- SIGTERM while the plan is made

/// SIGTERM while a run's plan is being made (seconds of processor time at a
/// large district, on a blocking thread): the run is rolled back and marked
/// interrupted, and the process exits at once instead of waiting for the
/// plan nobody will read; the plan's own step lines show it never finished.
#[sqlx::test]
async fn sigterm_during_the_plan_does_not_wait_for_the_plan(pool: PgPool) {
    // Large enough that this (debug) build plans for a second or more.
    let district = student_sync::harness::fake_powerschool::generate(20_000, 3);
    let fake = start_fake(district, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "* * * * * *", 30, &[]);
    let db_url = database_url(&pool).await;
    let env = binary_env(&fake, &db_url);
    let mut daemon = spawn(
        &["--config", config.to_str().unwrap(), "daemon"],
        &env,
        &[(
            "RUST_LOG",
            "info,student_sync::sync::plan=debug".to_string(),
        )],
    );
    daemon
        .wait_log(
            "planning: reading the current state",
            Duration::from_secs(120),
        )
        .await;
    daemon.signal(libc::SIGTERM);
    let exit = daemon
        .wait_exit(Duration::from_secs(120))
        .await
        .expect("the daemon exits after SIGTERM");
    assert!(exit.success(), "{exit:?}\n{}", daemon.logs());
    let logs = daemon.logs();
    assert!(
        !logs.contains("plan: users and connections done"),
        "the process waited for the abandoned plan to finish:\n{logs}"
    );
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "interrupted", "{logs}");
    assert!(
        error.unwrap_or_default().contains("stop requested"),
        "{logs}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM students").await,
        0,
        "nothing of the run is kept"
    );
}
