#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The daemon when things go wrong (issue 12, points 5, 6, 10), in process,
//! against the fake PowerSchool over real HTTP and real PostgreSQL:
//! - a run that panics is recorded `failed` with its message, and a restart
//!   does not resume it;
//! - a run whose PowerSchool pages hang stops the watchdog pings once it
//!   stalls, is stopped at its deadline (`failed`, naming the setting), and
//!   `/healthz` says so;
//! - `/healthz` answers from its cached state, not a query per request;
//! - a non-loopback `daemon.listen` is refused unless allowed.
//!
//! Nothing here measures time: every assertion is on states, messages and
//! the order of systemd notifications.

mod common;

use chrono::{TimeZone, Utc};
use chrono_tz::America::Edmonton;
use common::daemon_http::*;
use common::*;
use sqlx::PgPool;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use student_sync::config::Settings;
use student_sync::daemon::{Daemon, DaemonError, Notifier};
use student_sync::harness::fake_powerschool::{self, Faults, RunningFake};
use student_sync::sync::FailPoint;
use tokio::sync::{watch, Semaphore};

async fn daemon_settings(fake: &RunningFake, pool: &PgPool) -> Settings {
    let mut s = settings_for(fake);
    s.database.url = url::Url::parse(&database_url(pool).await).unwrap();
    s.daemon.listen = "127.0.0.1:0".parse().unwrap();
    s.daemon.grace_period = Duration::from_secs(5);
    s.daemon.health_refresh = Duration::from_millis(100);
    s.safety.enabled = false;
    s
}

/// A clock at 2026-03-05 `hour`:00 in Edmonton, firing only on permits.
fn gate_clock(day: u32, hour: u32) -> GateClock {
    GateClock {
        now: Arc::new(Mutex::new(
            Edmonton
                .with_ymd_and_hms(2026, 3, day, hour, 0, 0)
                .unwrap()
                .with_timezone(&Utc),
        )),
        permits: Arc::new(Semaphore::new(0)),
    }
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`, collecting
/// every message in order.
struct FakeSystemd {
    _dir: tempfile::TempDir,
    path: String,
    messages: Arc<Mutex<Vec<String>>>,
}

impl FakeSystemd {
    fn new() -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify").display().to_string();
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
                if Arc::strong_count(&sink) == 1 {
                    return;
                }
            }
        });
        FakeSystemd {
            _dir: dir,
            path,
            messages,
        }
    }

    fn notifier(&self, watchdog: Option<Duration>) -> Notifier {
        Notifier::to_socket(&self.path, watchdog).unwrap()
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until a message satisfies `check`; its index.
    async fn until(&self, what: &str, check: impl Fn(&str) -> bool) -> usize {
        for _ in 0..1200 {
            if let Some(i) = self.messages().iter().position(|m| check(m)) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("never saw {what}: {:?}", self.messages());
    }
}

async fn run_rows(pool: &PgPool) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as("SELECT id, status, error FROM sync_runs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Waits until the newest run is no longer `running`.
async fn until_run_ends(pool: &PgPool) -> (i64, String, Option<String>) {
    for _ in 0..2400 {
        if let Some(last) = run_rows(pool).await.pop() {
            if last.1 != "running" {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the run never ended: {:?}", run_rows(pool).await);
}

async fn stop(stop: watch::Sender<bool>, running: student_sync::daemon::RunningDaemon) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), running.wait())
        .await
        .expect("the daemon stops")
        .expect("cleanly");
}

#[sqlx::test]
async fn a_panicking_run_is_recorded_failed_and_not_resumed(pool: PgPool) {
    let fake = start_fake(fake_powerschool::generate(60, 3), Faults::default()).await;
    let settings = daemon_settings(&fake, &pool).await;
    let clock = gate_clock(5, 12);
    let (stopper, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings.clone(), pool.clone(), clock.clone())
        .unwrap()
        .with_notifier(Notifier::disabled())
        .with_fail_point(FailPoint::PanicBeforeCommit);
    let running = daemon.start(stopped).await.unwrap();
    clock.permits.add_permits(1);
    let (run_id, status, error) = until_run_ends(&pool).await;
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    assert!(error.contains("the run panicked"), "{error}");
    assert!(error.contains("injected panic before commit"), "{error}");
    assert!(error.contains("not resumed"), "{error}");
    assert_eq!(count(&pool, "SELECT count(*) FROM students").await, 0);
    stop(stopper, running).await;

    // A restart (later that night) decides from the history: no resume.
    let systemd = FakeSystemd::new();
    let (stopper, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings, pool.clone(), gate_clock(6, 1))
        .unwrap()
        .with_notifier(systemd.notifier(None));
    let running = daemon.start(stopped).await.unwrap();
    // Past the start-up decision: waiting for the schedule.
    systemd
        .until("the idle status", |m| {
            m.starts_with("STATUS=idle; next run")
        })
        .await;
    let rows = run_rows(&pool).await;
    assert_eq!(rows.len(), 1, "nothing resumed: {rows:?}");
    assert_eq!((rows[0].0, rows[0].1.as_str()), (run_id, "failed"));
    stop(stopper, running).await;
    fake.shutdown().await;
}

#[sqlx::test]
async fn a_hanging_run_stops_the_watchdog_then_fails_at_its_deadline(pool: PgPool) {
    // Pages that never come (an hour each).
    let faults = Faults {
        page_latency: Duration::from_secs(3600),
        ..Faults::default()
    };
    let fake = start_fake(fake_powerschool::generate(60, 3), faults).await;
    let mut settings = daemon_settings(&fake, &pool).await;
    // Longer than the daemon's look at the run (every 500 ms), shorter
    // than the deadline.
    settings.daemon.stall_timeout = Duration::from_millis(1500);
    settings.sync.run_deadline = Duration::from_secs(6);
    let systemd = FakeSystemd::new();
    let clock = gate_clock(5, 12);
    let (stopper, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings, pool.clone(), clock.clone())
        .unwrap()
        .with_notifier(systemd.notifier(Some(Duration::from_millis(50))));
    let running = daemon.start(stopped).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    clock.permits.add_permits(1);

    systemd
        .until("the stall", |m| m.starts_with("STATUS=stalled: "))
        .await;
    let (run_id, status, error) = until_run_ends(&pool).await;
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    assert!(error.contains("deadline"), "{error}");
    assert!(error.contains("sync.run_deadline_mins"), "{error}");
    assert!(error.contains("phase fetching"), "{error}");
    assert!(error.contains("nothing was applied"), "{error}");
    let ended = systemd
        .until("the run's end", |m| {
            m == format!("STATUS=run {run_id} ended (night 2026-03-06)")
        })
        .await;
    // Pings resume once the daemon is alive again.
    for _ in 0..400 {
        if systemd.messages()[ended..]
            .iter()
            .any(|m| m == "WATCHDOG=1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let messages = systemd.messages();
    let stalled = messages[..ended]
        .iter()
        .rposition(|m| m.starts_with("STATUS=stalled: "))
        .expect("a stall before the run's end");
    assert!(
        messages[..stalled].iter().any(|m| m == "WATCHDOG=1"),
        "pinged while the run moved or had not stalled yet: {messages:?}"
    );
    assert!(stalled < ended, "{messages:?}");
    assert!(
        !messages[stalled..ended].iter().any(|m| m == "WATCHDOG=1"),
        "no ping between the stall and the run's end: {messages:?}"
    );
    assert!(messages[stalled].contains("daemon.stall_timeout_secs"));
    assert!(
        messages[ended..].iter().any(|m| m == "WATCHDOG=1"),
        "pings resume after the run: {messages:?}"
    );

    // /healthz says why, from the refreshed state.
    let mut answer = get(&format!("{base}/healthz")).await;
    for _ in 0..200 {
        if answer.1.contains("deadline") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        answer = get(&format!("{base}/healthz")).await;
    }
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert!(
        answer.1.contains(&format!("last run {run_id}")),
        "{}",
        answer.1
    );
    assert!(answer.1.contains("sync.run_deadline_mins"), "{}", answer.1);
    stop(stopper, running).await;
    fake.shutdown().await;
}

#[sqlx::test]
async fn healthz_answers_from_its_cached_state_without_asking_the_database(pool: PgPool) {
    let fake = start_fake(fake_powerschool::generate(10, 3), Faults::default()).await;
    let mut settings = daemon_settings(&fake, &pool).await;
    settings.daemon.health_refresh = Duration::from_secs(3600);
    let (stopper, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings, pool.clone(), gate_clock(5, 12))
        .unwrap()
        .with_notifier(Notifier::disabled());
    let running = daemon.start(stopped).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    assert_eq!(
        get(&format!("{base}/healthz")).await,
        (200, "ok: no run yet\n".to_string())
    );
    // The run history is locked against every reader: a health check that
    // queried it would wait and answer "timed out" (503).
    let mut locker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE sync_runs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            get(&format!("{base}/healthz")).await,
            (200, "ok: no run yet\n".to_string())
        );
    }
    locker.rollback().await.unwrap();
    stop(stopper, running).await;
    fake.shutdown().await;
}

#[sqlx::test]
async fn a_remote_listen_address_is_refused_unless_allowed(pool: PgPool) {
    let fake = start_fake(fake_powerschool::generate(10, 3), Faults::default()).await;
    let mut settings = daemon_settings(&fake, &pool).await;
    settings.daemon.listen = "0.0.0.0:0".parse().unwrap();
    let (_stopper, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings.clone(), pool.clone(), gate_clock(5, 12))
        .unwrap()
        .with_notifier(Notifier::disabled());
    let err = daemon.start(stopped).await.err().expect("refused");
    assert!(matches!(err, DaemonError::RemoteListen { .. }), "{err}");
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains("daemon.allow_remote_listen"),
        "{err}"
    );

    settings.daemon.allow_remote_listen = true;
    let (stopper, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings, pool.clone(), gate_clock(5, 12))
        .unwrap()
        .with_notifier(Notifier::disabled());
    let running = daemon.start(stopped).await.expect("allowed");
    assert!(running.http_addr.ip().is_unspecified());
    stop(stopper, running).await;
    fake.shutdown().await;
}
