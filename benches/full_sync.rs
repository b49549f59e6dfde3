#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Benchmark of one full sync (issue 3, point 7): a first sync and a
//! no-change re-sync of the generated district into a fresh PostgreSQL
//! database, with wall time, rows per second and peak RSS for each.
//!
//! Run with `cargo bench --bench full_sync`. The fake PowerSchool runs as a
//! child process (`student-sync fake-powerschool --generate ...`) so that
//! its memory is not counted in this process's peak RSS. Settings:
//!
//! - `STUDENT_SYNC_BENCH_STUDENTS`: district size (default 150000);
//! - `DATABASE_URL`: the PostgreSQL server to use (default
//!   `postgres://postgres@127.0.0.1:5432`); the bench always works in its own
//!   database `student_sync_bench`, dropped and recreated at the start and
//!   dropped at the end;
//! - `RUST_LOG=info` shows the sync's own per-phase timings;
//! - `STUDENT_SYNC_BENCH_TRACE=1` (with `RUST_LOG=info`) also logs RSS and
//!   the CPU seconds of the sync and of the fake every half second.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::migrate::MigrateDatabase;
use student_sync::config::{Settings, Sources};
use student_sync::powerschool::PowerSchoolClient;
use student_sync::store::{self, RunTrigger};
use student_sync::sync::{self, RunOptions, RunReport};

const DEFAULT_STUDENTS: usize = 150_000;
const BENCH_DATABASE: &str = "student_sync_bench";
const TARGET_FIRST_SECS: f64 = 30.0;
const TARGET_RESYNC_SECS: f64 = 10.0;
const TARGET_RSS_MB: f64 = 300.0;

/// The fake PowerSchool child; killed when dropped, whatever happens.
struct FakeChild {
    child: Child,
    url: String,
}

impl Drop for FakeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fake(students: usize) -> FakeChild {
    let mut child = Command::new(env!("CARGO_BIN_EXE_student-sync"))
        .args([
            "fake-powerschool",
            "--generate",
            &format!("students={students},seed=1"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the student-sync binary starts");
    // It prints "Fake PowerSchool serving N students at http://ADDR (client id …)"
    // once it listens; generating a big district takes a few seconds first.
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut fake = FakeChild {
        child,
        url: String::new(),
    };
    for line in lines.by_ref() {
        let line = line.expect("fake PowerSchool stdout is readable");
        if let Some(rest) = line.split(" at ").nth(1) {
            if let Some(url) = rest.split_whitespace().next() {
                fake.url = url.to_string();
                break;
            }
        }
    }
    if fake.url.is_empty() {
        panic!("the fake PowerSchool exited without saying where it listens");
    }
    // Keep draining its stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    fake
}

/// The server part of DATABASE_URL (or the default), with the bench database.
fn bench_database_url() -> url::Url {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{BENCH_DATABASE}"));
    url
}

fn settings(fake_url: &str, db_url: &url::Url) -> Settings {
    let env = [
        ("STUDENT_SYNC_POWERSCHOOL_URL", fake_url.to_string()),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_ID",
            "student-sync-demo".to_string(),
        ),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            "demo-secret".to_string(),
        ),
        ("DATABASE_URL", db_url.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Settings::load(&Sources { file: None, env }).expect("bench settings are valid")
}

/// VmHWM (peak resident set) of this process, in kB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0). False when not allowed.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Current RSS of this process, in kB.
fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user + system) used so far by process `pid`.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// With `STUDENT_SYNC_BENCH_TRACE=1`: every 0.5 s, log this process's RSS
/// and the CPU seconds of this process and of the fake, so that the sync's
/// own phase logs (RUST_LOG=info) show where memory and time go.
fn start_trace(fake_pid: u32) {
    if std::env::var("STUDENT_SYNC_BENCH_TRACE").as_deref() != Ok("1") {
        return;
    }
    std::thread::spawn(move || loop {
        tracing::info!(
            rss_mb = rss_kb().unwrap_or(0) / 1024,
            sync_cpu_s = cpu_secs("self").unwrap_or(0.0),
            fake_cpu_s = cpu_secs(&fake_pid.to_string()).unwrap_or(0.0),
            "bench trace"
        );
        std::thread::sleep(Duration::from_millis(500));
    });
}

struct Measured {
    name: &'static str,
    wall: Duration,
    fetched: u64,
    written: u64,
    peak_rss_kb: Option<u64>,
    /// RSS when the run started: memory the allocator kept from before.
    start_rss_kb: Option<u64>,
    peak_was_reset: bool,
    report: RunReport,
}

fn fetched(r: &RunReport) -> u64 {
    let f = &r.counts.fetched;
    f.guardians + f.students + f.independent_students + f.contacts
}

/// Rows created, updated or removed in the live tables (not run history or audit).
fn written(r: &RunReport) -> u64 {
    let c = &r.counts;
    let kinds = [&c.students, &c.contacts, &c.guardian_accounts, &c.users];
    kinds
        .iter()
        .map(|k| k.created + k.updated + k.removed)
        .sum::<u64>()
        + c.connections.created
        + c.connections.updated
        + c.connections.removed
}

async fn measure(name: &'static str, pool: &sqlx::PgPool, settings: &Settings) -> Measured {
    let peak_was_reset = reset_peak_rss();
    let start_rss_kb = rss_kb();
    let client = PowerSchoolClient::new(&settings.powerschool).expect("client builds");
    let options = RunOptions::now(settings, RunTrigger::Manual);
    let started = Instant::now();
    let outcome = sync::run_once(pool, settings, &client, &options)
        .await
        .unwrap_or_else(|e| panic!("{name} failed: {e}"));
    let wall = started.elapsed();
    Measured {
        name,
        wall,
        fetched: fetched(&outcome.report),
        written: written(&outcome.report),
        peak_rss_kb: peak_rss_kb(),
        start_rss_kb,
        peak_was_reset,
        report: outcome.report,
    }
}

fn per_second(n: u64, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64().max(1e-9))
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();

    let students: usize = match std::env::var("STUDENT_SYNC_BENCH_STUDENTS") {
        Ok(v) => v
            .trim()
            .parse()
            .expect("STUDENT_SYNC_BENCH_STUDENTS is a whole number"),
        Err(_) => DEFAULT_STUDENTS,
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("full_sync bench: {students} generated students (seed 1), {cores} cores");

    let spawn_started = Instant::now();
    let fake = start_fake(students);
    println!(
        "fake PowerSchool (child process) at {} ready in {:.1} s",
        fake.url,
        spawn_started.elapsed().as_secs_f64()
    );

    start_trace(fake.child.id());

    let db_url = bench_database_url();
    let settings = settings(&fake.url, &db_url);
    let connect_url = settings.database.connect_url();
    let display_url = settings.database.display_url();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (first, resync) = runtime.block_on(async {
        if sqlx::Postgres::database_exists(connect_url.expose())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {display_url} is unreachable: {e}"))
        {
            sqlx::Postgres::force_drop_database(connect_url.expose())
                .await
                .expect("drop the old bench database");
        }
        let mut pool = store::connect(
            connect_url.expose(),
            &display_url,
            settings.database.max_connections,
        )
        .await
        .expect("bench database is created and migrated");
        if std::env::var("STUDENT_SYNC_BENCH_TRACE").as_deref() == Ok("1") {
            // PostgreSQL's own log then shows every statement over 250 ms.
            let _ = sqlx::query(&format!(
                "ALTER DATABASE {BENCH_DATABASE} SET log_min_duration_statement = 250"
            ))
            .execute(&pool)
            .await;
            pool.close().await;
            pool = store::connect(
                connect_url.expose(),
                &display_url,
                settings.database.max_connections,
            )
            .await
            .expect("bench database reconnects");
        }
        let first = measure("first sync", &pool, &settings).await;
        let resync = measure("no-change re-sync", &pool, &settings).await;
        pool.close().await;
        sqlx::Postgres::force_drop_database(connect_url.expose())
            .await
            .expect("drop the bench database");
        (first, resync)
    });
    drop(fake);

    println!();
    for m in [&first, &resync] {
        let c = &m.report.counts;
        println!(
            "{}: students +{} ~{} ={}, contacts +{} ~{} ={}, guardian accounts +{} ~{} ={}, users +{} ~{}, connections +{} ~{} -{} ={}, problems {}",
            m.name,
            c.students.created,
            c.students.updated,
            c.students.unchanged,
            c.contacts.created,
            c.contacts.updated,
            c.contacts.unchanged,
            c.guardian_accounts.created,
            c.guardian_accounts.updated,
            c.guardian_accounts.unchanged,
            c.users.created,
            c.users.updated,
            c.connections.created,
            c.connections.updated,
            c.connections.removed,
            c.connections.unchanged,
            c.problems,
        );
    }
    println!();
    println!(
        "{:<18} {:>8} {:>9} {:>11} {:>9} {:>11} {:>13} {:>14} {:>8}",
        "run",
        "wall s",
        "fetched",
        "fetched/s",
        "written",
        "written/s",
        "peak RSS MB",
        "RSS at start",
        "target"
    );
    for (m, target_secs) in [(&first, TARGET_FIRST_SECS), (&resync, TARGET_RESYNC_SECS)] {
        let rss = m
            .peak_rss_kb
            .map(|kb| format!("{:.0}", kb as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into());
        let rss_ok = m
            .peak_rss_kb
            .is_none_or(|kb| kb as f64 / 1024.0 <= TARGET_RSS_MB);
        let ok = m.wall.as_secs_f64() <= target_secs && rss_ok;
        let start = m
            .start_rss_kb
            .map(|kb| format!("{:.0}", kb as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "{:<18} {:>8.1} {:>9} {:>11} {:>9} {:>11} {:>13} {:>14} {:>8}",
            m.name,
            m.wall.as_secs_f64(),
            m.fetched,
            per_second(m.fetched, m.wall),
            m.written,
            per_second(m.written, m.wall),
            rss,
            start,
            if ok { "met" } else { "MISSED" },
        );
    }
    if !first.peak_was_reset || !resync.peak_was_reset {
        println!(
            "note: /proc/self/clear_refs could not be written, so the re-sync's peak RSS is the peak of the whole process"
        );
    }
    println!(
        "note: peak RSS is VmHWM of this process only (the fake PowerSchool is a child process); it is reset before each run, but memory the allocator kept from the first run stays resident, see 'RSS at start'"
    );
    println!(
        "targets: first sync <= {TARGET_FIRST_SECS:.0} s, re-sync <= {TARGET_RESYNC_SECS:.0} s, peak RSS <= {TARGET_RSS_MB:.0} MB, on 2 cores (this machine: {cores})"
    );
}
