#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The daemon (issue 5) end to end: fire times on the days the clocks
//! change, the start-up decision, a real SIGTERM, two real processes sharing
//! the district lock, `run --now` and `status` through the binary, sd_notify
//! to a socket the test opens, JSON logs carrying the run id, and blackout
//! nights. Every test gets a fresh database (`#[sqlx::test]`); every process
//! it starts is killed and waited for before the test ends.

mod common;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Edmonton;
use chrono_tz::Tz;
use common::*;
use sqlx::{Connection, PgPool};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use student_sync::config::BlackoutRange;
use student_sync::daemon::{decide, next_fire, Clock, Daemon, Notifier, Schedule, StartupDecision};
use student_sync::harness::fake_powerschool::{self, FakeCredentials, Faults, RunningFake};
use student_sync::store::runs::{RunPhase, RunRecord, RunTrigger};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

// ---------------------------------------------------------------- helpers

fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Tz> {
    Edmonton
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .expect("a local time that exists")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn midnight_schedule(blackout: Vec<BlackoutRange>) -> Schedule {
    Schedule::from_parts("0 0 0 * * *", Edmonton, blackout).expect("the default cron parses")
}

/// Every fire of `schedule` from `from` up to `until`.
fn fires_between(
    schedule: &Schedule,
    from: DateTime<Tz>,
    until: DateTime<Tz>,
) -> Vec<DateTime<Tz>> {
    let mut out = Vec::new();
    let mut after = from.with_timezone(&Utc);
    loop {
        let f = next_fire(after, schedule).unwrap();
        if f > until {
            return out;
        }
        out.push(f);
        after = f.with_timezone(&Utc);
    }
}

/// Log lines written while a guard is alive, on this (current-thread) runtime.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
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

fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
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
struct FakeClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    asked: Arc<Mutex<Vec<DateTime<Utc>>>>,
    stop_after: DateTime<Utc>,
    stop: Arc<watch::Sender<bool>>,
}

impl FakeClock {
    fn new(start: DateTime<Tz>, stop_after: DateTime<Tz>) -> (FakeClock, watch::Receiver<bool>) {
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

    fn asked(&self) -> Vec<DateTime<Tz>> {
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
async fn daemon_settings(fake: &RunningFake, pool: &PgPool) -> student_sync::config::Settings {
    let mut s = settings_for(fake);
    s.database.url = url::Url::parse(&database_url(pool).await).unwrap();
    s.daemon.listen = "127.0.0.1:0".parse().unwrap();
    s.daemon.grace_period = Duration::from_secs(5);
    s.safety.enabled = false;
    s
}

async fn runs(pool: &PgPool) -> Vec<(i64, String, NaiveDate, String, Option<String>, Option<i32>)> {
    sqlx::query_as("SELECT id, trigger, night, status, error, pid FROM sync_runs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn insert_run(
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

fn tonight() -> NaiveDate {
    Utc::now().with_timezone(&Edmonton).date_naive()
}

/// Waits (polling, at most `limit`) until `check` says yes; on a timeout
/// the panic shows `context` (a process's logs).
async fn eventually<F, Fut>(what: &str, limit: Duration, context: &dyn Fn() -> String, mut check: F)
where
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
fn write_config(
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

fn binary_env(fake: &RunningFake, db_url: &str) -> Vec<(String, String)> {
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
struct Proc {
    child: tokio::process::Child,
    pid: i32,
    lines: Arc<Mutex<Vec<String>>>,
    /// Reads stderr into `lines` until the process closes it.
    reader: Option<tokio::task::JoinHandle<()>>,
    stdout: Option<tokio::process::ChildStdout>,
}

fn spawn(args: &[&str], env: &[(String, String)], extra: &[(&str, String)]) -> Proc {
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
    fn logs(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    async fn wait_log(&self, needle: &str, limit: Duration) {
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

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        let r = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(r, 0, "kill({}, {sig}) failed", self.pid);
    }

    /// Waits for the exit; None if it did not exit within `limit`.
    /// The exit status, once every line the process logged has been read.
    async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|r| r.expect("wait for the child"))?;
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(limit, reader).await;
        }
        Some(status)
    }

    async fn stdout_text(&mut self) -> String {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        if let Some(mut s) = self.stdout.take() {
            s.read_to_string(&mut out).await.unwrap();
        }
        out
    }

    /// SIGKILL and reap, for the end of a test (idempotent).
    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn run_binary(args: &[&str], env: &[(String, String)]) -> std::process::Output {
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

fn small_district() -> student_sync::harness::world::PowerSchoolSide {
    fake_powerschool::generate(400, 7)
}

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

// ---------------------------------------------------- 1. schedule and DST

/// Spring forward (8 March 2026, 02:00 → 03:00) and fall back (1 November
/// 2026, 02:00 → 01:00) in Edmonton: one fire per night, at local midnight,
/// 23 and 25 hours apart around the change.
#[test]
fn default_schedule_fires_once_per_night_at_local_midnight_across_dst() {
    let schedule = midnight_schedule(vec![]);
    for (from, until, short_or_long) in [
        (local(2026, 3, 5, 12, 0), local(2026, 3, 11, 12, 0), 23),
        (local(2026, 10, 29, 12, 0), local(2026, 11, 4, 12, 0), 25),
    ] {
        let fires = fires_between(&schedule, from, until);
        let nights: Vec<NaiveDate> = fires.iter().map(|f| f.date_naive()).collect();
        let expected: Vec<NaiveDate> = (1..=6)
            .map(|d| from.date_naive() + ChronoDuration::days(d))
            .collect();
        assert_eq!(nights, expected, "one fire per night: {fires:?}");
        for f in &fires {
            assert_eq!(f.format("%H:%M:%S").to_string(), "00:00:00", "{f}");
        }
        let gaps: Vec<i64> = fires
            .windows(2)
            .map(|w| (w[1] - w[0]).num_hours())
            .collect();
        assert_eq!(
            gaps.iter().filter(|h| **h == short_or_long).count(),
            1,
            "{gaps:?}"
        );
        assert_eq!(gaps.iter().filter(|h| **h == 24).count(), 4, "{gaps:?}");
    }
    // Spring: midnight MST is 07:00 UTC, the next midnight (MDT) 06:00 UTC.
    assert_eq!(
        next_fire(local(2026, 3, 8, 12, 0).with_timezone(&Utc), &schedule)
            .unwrap()
            .with_timezone(&Utc),
        Utc.with_ymd_and_hms(2026, 3, 9, 6, 0, 0).unwrap()
    );
}

/// A fire inside the skipped hour happens once, just after the gap; a fire
/// inside the repeated hour happens once, even asked from inside that hour.
#[test]
fn fires_in_the_skipped_and_repeated_hours_happen_once() {
    let spring = Schedule::from_parts("0 30 2 * * *", Edmonton, vec![]).unwrap();
    let fires = fires_between(&spring, local(2026, 3, 7, 12, 0), local(2026, 3, 9, 12, 0));
    let nights: Vec<NaiveDate> = fires.iter().map(|f| f.date_naive()).collect();
    assert_eq!(
        nights,
        vec![date(2026, 3, 8), date(2026, 3, 9)],
        "{fires:?}"
    );

    let autumn = Schedule::from_parts("0 30 1 * * *", Edmonton, vec![]).unwrap();
    let fires = fires_between(
        &autumn,
        local(2026, 10, 31, 12, 0),
        local(2026, 11, 2, 12, 0),
    );
    let nights: Vec<NaiveDate> = fires.iter().map(|f| f.date_naive()).collect();
    assert_eq!(
        nights,
        vec![date(2026, 11, 1), date(2026, 11, 2)],
        "{fires:?}"
    );
    // Asked from inside the repeated hour (01:45 MST, after the first 01:30
    // MDT): the next fire is the next night's, not the second 01:30.
    let first = fires[0];
    let inside = first.with_timezone(&Utc) + ChronoDuration::minutes(75);
    assert_eq!(
        next_fire(inside, &autumn).unwrap().date_naive(),
        date(2026, 11, 2)
    );
}

/// tokio-cron-scheduler, given the same cron and chrono-tz zone, schedules
/// its first tick where `next_fire` says; and the daemon's production clock
/// (a one-shot tokio-cron-scheduler job) wakes at the asked wall time.
#[tokio::test]
async fn tokio_cron_scheduler_agrees_and_wakes_the_daemon() {
    use tokio_cron_scheduler::{Job, JobScheduler};
    // Away from a minute boundary, where "the next fire" would depend on
    // the millisecond each side asks.
    use chrono::Timelike;
    let second = Utc::now().second();
    if !(3..=56).contains(&second) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut scheduler = JobScheduler::new().await.unwrap();
    for expression in ["0 0 0 * * *", "0 30 2 * * *", "0 */5 * * * *"] {
        let job = Job::new_async_tz(expression, Edmonton, |_, _| Box::pin(async {})).unwrap();
        let id = scheduler.add(job).await.unwrap();
        let tick = scheduler
            .next_tick_for_job(id)
            .await
            .unwrap()
            .expect("a next tick");
        let schedule = Schedule::from_parts(expression, Edmonton, vec![]).unwrap();
        let ours = next_fire(Utc::now() - ChronoDuration::seconds(1), &schedule).unwrap();
        assert_eq!(tick, ours.with_timezone(&Utc), "{expression}");
    }

    let clock = student_sync::daemon::SchedulerClock::start().await.unwrap();
    let target = Utc::now() + ChronoDuration::milliseconds(1500);
    clock.sleep_until(target).await;
    assert!(Utc::now() >= target, "woke before the fire time");
}

/// The daemon loop itself, driven by an injected clock across both clock
/// changes of 2026: exactly one scheduled run per night, each fired at local
/// midnight, and a blackout night skipped with a log line.
#[sqlx::test]
async fn daemon_runs_once_per_night_across_dst_and_skips_blackout(pool: PgPool) {
    let (logs, _guard) = capture_logs();
    let fake = start_fake(small_district(), Faults::default()).await;
    let mut settings = daemon_settings(&fake, &pool).await;
    settings.schedule.blackout = vec![BlackoutRange {
        from: date(2026, 3, 10),
        to: date(2026, 3, 10),
    }];

    for (start, stop_after) in [
        (local(2026, 3, 6, 12, 0), local(2026, 3, 11, 12, 0)),
        (local(2026, 10, 30, 12, 0), local(2026, 11, 3, 12, 0)),
    ] {
        let (clock, stop) = FakeClock::new(start, stop_after);
        let daemon = Daemon::with_clock(settings.clone(), pool.clone(), clock.clone())
            .unwrap()
            .with_notifier(Notifier::disabled());
        let running = daemon.start(stop).await.unwrap();
        tokio::time::timeout(Duration::from_secs(120), running.wait())
            .await
            .expect("the daemon stops when the clock says so")
            .expect("the daemon stops cleanly");
        for t in clock.asked() {
            assert_eq!(t.format("%H:%M:%S").to_string(), "00:00:00", "woke at {t}");
        }
    }

    let rows = runs(&pool).await;
    let nights: Vec<NaiveDate> = rows.iter().map(|r| r.2).collect();
    assert_eq!(
        nights,
        vec![
            date(2026, 3, 7),
            date(2026, 3, 8),
            date(2026, 3, 9),
            date(2026, 3, 11),
            date(2026, 10, 31),
            date(2026, 11, 1),
            date(2026, 11, 2),
            date(2026, 11, 3),
        ],
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.1 == "schedule" && r.3 == "succeeded"),
        "{rows:?}"
    );
    let text = logs.text();
    assert!(
        text.contains("scheduled run for night 2026-03-10 (2026-03-10 00:00 MDT) skipped: blackout 2026-03-10 to 2026-03-10"),
        "{text}"
    );
}

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
