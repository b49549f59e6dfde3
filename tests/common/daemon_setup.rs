//! For the daemon's end-to-end tests (`tests/daemon.rs`,
//! `tests/daemon_schedule.rs`, `tests/daemon_startup.rs`,
//! `tests/daemon_processes.rs`): local times in Edmonton, a clock the test
//! drives, captured logs, in-process daemon settings, the `sync_runs` rows,
//! and the real `student-sync` binary run as a child process whose logs are
//! collected.
#![allow(dead_code)]

use super::{database_url, settings_for};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Edmonton;
use chrono_tz::Tz;
use sqlx::PgPool;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use student_sync::daemon::Clock;
use student_sync::harness::fake_powerschool::{self, FakeCredentials, RunningFake};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

pub fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Tz> {
    Edmonton
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .expect("a local time that exists")
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Log lines written while a guard is alive, on this (current-thread) runtime.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info,sqlx=warn,tokio_cron_scheduler=warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

/// A clock the test drives: `sleep_until` jumps to the asked time at once,
/// remembers it, and once a time past `stop_after` is asked for it asks the
/// daemon to stop instead.
#[derive(Clone)]
pub struct FakeClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    asked: Arc<Mutex<Vec<DateTime<Utc>>>>,
    stop_after: DateTime<Utc>,
    stop: Arc<watch::Sender<bool>>,
}

impl FakeClock {
    pub fn new(
        start: DateTime<Tz>,
        stop_after: DateTime<Tz>,
    ) -> (FakeClock, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            FakeClock {
                now: Arc::new(Mutex::new(start.with_timezone(&Utc))),
                asked: Arc::default(),
                stop_after: stop_after.with_timezone(&Utc),
                stop: Arc::new(tx),
            },
            rx,
        )
    }

    pub fn asked(&self) -> Vec<DateTime<Tz>> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.with_timezone(&Edmonton))
            .collect()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }

    fn sleep_until(&self, when: DateTime<Utc>) -> impl std::future::Future<Output = ()> + Send {
        let this = self.clone();
        async move {
            this.asked.lock().unwrap().push(when);
            if when > this.stop_after {
                let _ = this.stop.send(true);
                std::future::pending::<()>().await;
            }
            *this.now.lock().unwrap() = when;
            tokio::task::yield_now().await;
        }
    }
}

/// Settings for an in-process daemon against `fake` and the test's database.
pub async fn daemon_settings(fake: &RunningFake, pool: &PgPool) -> student_sync::config::Settings {
    let mut s = settings_for(fake);
    s.database.url = url::Url::parse(&database_url(pool).await).unwrap();
    s.daemon.listen = "127.0.0.1:0".parse().unwrap();
    s.daemon.grace_period = Duration::from_secs(5);
    s.safety.enabled = false;
    s
}

pub async fn runs(
    pool: &PgPool,
) -> Vec<(i64, String, NaiveDate, String, Option<String>, Option<i32>)> {
    sqlx::query_as("SELECT id, trigger, night, status, error, pid FROM sync_runs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

pub async fn insert_run(
    pool: &PgPool,
    status: &str,
    phase: &str,
    night: NaiveDate,
    error: Option<&str>,
    pid: i32,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO sync_runs (trigger, night, status, phase, error, host, pid, finished_at)
         VALUES ('schedule', $1, $2, $3, $4, 'old-host', $5,
                 CASE WHEN $2 IN ('failed', 'succeeded') THEN now() END)
         RETURNING id",
    )
    .bind(night)
    .bind(status)
    .bind(phase)
    .bind(error)
    .bind(pid)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub fn tonight() -> NaiveDate {
    Utc::now().with_timezone(&Edmonton).date_naive()
}

/// Waits (polling, at most `limit`) until `check` says yes; on a timeout
/// the panic shows `context` (a process's logs).
pub async fn eventually<F, Fut>(
    what: &str,
    limit: Duration,
    context: &dyn Fn() -> String,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out after {limit:?} waiting for {what}; context:\n{}",
        context()
    );
}

// ------------------------------------------------------- the real binary

/// A config file for the binary (the grace period and blackout ranges are
/// only settable in the file). PowerSchool and the database come from the
/// environment, as under systemd.
pub fn write_config(
    dir: &Path,
    cron: &str,
    grace_secs: u64,
    blackout: &[(NaiveDate, NaiveDate)],
) -> PathBuf {
    let mut text = format!(
        "district = \"test-district\"\n\
         [powerschool]\npage_size = 50\nmax_attempts = 3\nbackoff_initial_ms = 1\nbackoff_max_ms = 5\n\
         [schedule]\ncron = \"{cron}\"\ntimezone = \"America/Edmonton\"\n"
    );
    for (from, to) in blackout {
        text.push_str(&format!(
            "[[schedule.blackout]]\nfrom = \"{from}\"\nto = \"{to}\"\n"
        ));
    }
    // Safety holds are another issue's feature; these runs must apply.
    text.push_str("[safety]\nenabled = false\n");
    text.push_str(&format!(
        "[daemon]\ngrace_period_secs = {grace_secs}\nlisten = \"127.0.0.1:0\"\n"
    ));
    let path = dir.join("student-sync.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

pub fn binary_env(fake: &RunningFake, db_url: &str) -> Vec<(String, String)> {
    let creds = FakeCredentials::default();
    vec![
        ("STUDENT_SYNC_POWERSCHOOL_URL".into(), fake.base_url()),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID".into(), creds.client_id),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET".into(),
            creds.client_secret,
        ),
        ("DATABASE_URL".into(), db_url.to_string()),
    ]
}

/// A running `student-sync` process whose stderr (the logs) is collected.
pub struct Proc {
    child: tokio::process::Child,
    pub pid: i32,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Reads stderr into `lines` until the process closes it.
    reader: Option<tokio::task::JoinHandle<()>>,
    stdout: Option<tokio::process::ChildStdout>,
}

pub fn spawn(args: &[&str], env: &[(String, String)], extra: &[(&str, String)]) -> Proc {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("STUDENT_SYNC_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the binary starts");
    let pid = child.id().expect("a pid") as i32;
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    let reader = tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take();
    Proc {
        child,
        pid,
        lines,
        reader: Some(reader),
        stdout,
    }
}

impl Proc {
    pub fn logs(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub async fn wait_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no log line containing {needle:?} within {limit:?}; logs:\n{}",
            self.logs()
        );
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        let r = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(r, 0, "kill({}, {sig}) failed", self.pid);
    }

    /// Waits for the exit; None if it did not exit within `limit`.
    /// The exit status, once every line the process logged has been read.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|r| r.expect("wait for the child"))?;
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(limit, reader).await;
        }
        Some(status)
    }

    pub async fn stdout_text(&mut self) -> String {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        if let Some(mut s) = self.stdout.take() {
            s.read_to_string(&mut out).await.unwrap();
        }
        out
    }

    /// SIGKILL and reap, for the end of a test (idempotent).
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

pub async fn run_binary(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("STUDENT_SYNC_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "info,sqlx=warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("the binary runs")
}

pub fn small_district() -> student_sync::harness::world::PowerSchoolSide {
    fake_powerschool::generate(400, 7)
}
