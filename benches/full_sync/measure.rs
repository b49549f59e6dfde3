//! What the benchmark measures and how: the sync as a child process with
//! its own peak RSS (`VmHWM`, see `PeakWatch`), the database's row counts and the bytes
//! of the audit and problems tables around a run, and the raw COPY of the
//! rows a sync wrote into an empty copy of the schema.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::PgPool;
use student_sync::sync::plan::PlanCounts;

/// One `student-sync sync --once --json` in a fresh process.
pub struct ChildRun {
    pub wall: Duration,
    /// The child's own peak resident set, in kB (Linux `VmHWM`): nothing
    /// of an earlier run or of this bench process is in it.
    pub peak_rss_kb: i64,
    pub counts: PlanCounts,
}

/// Runs the sync binary against `fake_url` and `database_url`, waits for it
/// while watching its peak RSS, and reads its run report (JSON on stdout).
pub fn sync_child(fake_url: &str, database_url: &str) -> ChildRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_student-sync"));
    cmd.args(["sync", "--once", "--json"]);
    // Only the settings below: none of the caller's STUDENT_SYNC_* leak in.
    for (name, _) in std::env::vars() {
        if name.starts_with("STUDENT_SYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("STUDENT_SYNC_POWERSCHOOL_URL", fake_url)
        .env("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "student-sync-demo")
        .env("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "demo-secret")
        .env("DATABASE_URL", database_url)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    // Reaped by `wait_for`; its peak RSS is watched while it runs.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().expect("the student-sync binary starts");
    let watch = PeakWatch::start(child.id());
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .expect("the sync's report is readable");
    // The watch stops before the child is reaped: until then its pid (a
    // zombie's) cannot be reused by another process or thread.
    let peak_rss_kb = watch.stop();
    let status = wait_for(child.id());
    let wall = started.elapsed();
    assert!(
        status == Some(0),
        "student-sync sync --once exited with {status:?}; it printed:\n{out}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{out}"));
    let counts = serde_json::from_value(report["counts"].clone())
        .unwrap_or_else(|e| panic!("report has no counts ({e}):\n{out}"));
    ChildRun {
        wall,
        peak_rss_kb,
        counts,
    }
}

/// The peak resident set of a running child, from the high-water mark the
/// kernel keeps for its own address space (`VmHWM` in /proc/PID/status),
/// read every 5 ms until its report has been read. wait4's `ru_maxrss` cannot
/// serve: when a child execs, Linux records the high-water mark of the
/// address space it leaves (this bench's own, a copy of it or shared) as the
/// child's, so every child looked at least as big as the bench itself. The
/// mark only grows, so only a peak in the last 5 ms of a run could be missed.
struct PeakWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<i64>,
}

impl PeakWatch {
    fn start(pid: u32) -> PeakWatch {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let mut peak = 0i64;
            while !stopped.load(Ordering::Relaxed) {
                if let Some(kb) = std::fs::read_to_string(&path)
                    .ok()
                    .as_deref()
                    .and_then(high_water_kb)
                {
                    peak = peak.max(kb);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        PeakWatch { stop, thread }
    }

    /// The highest mark read; call once the child has been reaped.
    fn stop(self) -> i64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the RSS watch does not panic")
    }
}

/// `VmHWM:   123456 kB` from a /proc status text.
fn high_water_kb(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reaps child `pid`: its exit code (None if a signal ended it).
fn wait_for(pid: u32) -> Option<i32> {
    let pid = pid as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: the pointer is to a live local; pid is our unreaped child.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid, "waiting for the sync child failed");
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// The live tables, counted around each run, in the order the report names them.
pub const LIVE_TABLES: [&str; 5] = [
    "students",
    "student_contacts",
    "guardian_accounts",
    "users",
    "connections",
];

/// Every table a sync writes, parents before children (foreign keys).
const WRITTEN_TABLES: [&str; 9] = [
    "sync_runs",
    "students",
    "student_contacts",
    "guardian_accounts",
    "users",
    "connections",
    "forms",
    "run_problems",
    "access_audit",
];

/// Row counts and sizes of the audit and problems tables at one moment.
#[derive(Debug, Clone, Default)]
pub struct TableStats {
    pub live_rows: [i64; 5],
    pub audit_rows: i64,
    pub audit_max_id: i64,
    pub audit_bytes_on_disk: i64,
    pub problem_rows: i64,
    pub problems_max_id: i64,
    pub problems_bytes_on_disk: i64,
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn table_stats(pool: &PgPool) -> TableStats {
    let mut live_rows = [0; 5];
    for (n, table) in live_rows.iter_mut().zip(LIVE_TABLES) {
        *n = scalar(pool, &format!("SELECT count(*) FROM {table}")).await;
    }
    let size = |t: &str| format!("SELECT pg_total_relation_size('{t}')");
    TableStats {
        live_rows,
        audit_rows: scalar(pool, "SELECT count(*) FROM access_audit").await,
        audit_max_id: scalar(pool, "SELECT coalesce(max(id), 0) FROM access_audit").await,
        audit_bytes_on_disk: scalar(pool, &size("access_audit")).await,
        problem_rows: scalar(pool, "SELECT count(*) FROM run_problems").await,
        problems_max_id: scalar(pool, "SELECT coalesce(max(id), 0) FROM run_problems").await,
        problems_bytes_on_disk: scalar(pool, &size("run_problems")).await,
    }
}

/// What one run added to the audit and problems tables.
#[derive(Debug, Clone, Default)]
pub struct AuditWritten {
    pub audit_rows: i64,
    pub problem_rows: i64,
    /// `sum(pg_column_size(row))` of the new rows (the row data).
    pub row_bytes: i64,
    /// Growth of `pg_total_relation_size` of both tables (pages, indexes, TOAST).
    pub disk_bytes: i64,
}

impl AuditWritten {
    /// The rows the run appended to the audit and the problems.
    pub fn rows(&self) -> i64 {
        self.audit_rows + self.problem_rows
    }
}

pub async fn audit_written(pool: &PgPool, before: &TableStats, after: &TableStats) -> AuditWritten {
    let bytes = |t: &str, id: i64| {
        format!("SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint FROM {t} t WHERE id > {id}")
    };
    AuditWritten {
        audit_rows: after.audit_rows - before.audit_rows,
        problem_rows: after.problem_rows - before.problem_rows,
        row_bytes: scalar(pool, &bytes("access_audit", before.audit_max_id)).await
            + scalar(pool, &bytes("run_problems", before.problems_max_id)).await,
        disk_bytes: after.audit_bytes_on_disk + after.problems_bytes_on_disk
            - before.audit_bytes_on_disk
            - before.problems_bytes_on_disk,
    }
}

/// COPYs every row of the tables a sync writes from `from` into `into` (an
/// empty, migrated copy of the schema). Only the COPY into `into` is timed;
/// the rows are read out first. Returns the time and the rows copied.
pub async fn raw_copy(from: &PgPool, into: &PgPool) -> (Duration, u64) {
    let mut src = from.acquire().await.expect("source connection");
    let mut dst = into.acquire().await.expect("copy connection");
    let (mut total, mut rows) = (Duration::ZERO, 0u64);
    for table in WRITTEN_TABLES {
        let data: Vec<bytes::Bytes> = src
            .copy_out_raw(&format!("COPY {table} TO STDOUT"))
            .await
            .unwrap_or_else(|e| panic!("COPY {table} TO STDOUT: {e}"))
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("COPY {table} TO STDOUT: {e}"));
        let started = Instant::now();
        let mut copy = dst
            .copy_in_raw(&format!("COPY {table} FROM STDIN"))
            .await
            .unwrap_or_else(|e| panic!("COPY {table} FROM STDIN: {e}"));
        for chunk in data {
            copy.send(chunk)
                .await
                .unwrap_or_else(|e| panic!("COPY {table} FROM STDIN: {e}"));
        }
        rows += copy
            .finish()
            .await
            .unwrap_or_else(|e| panic!("COPY {table} FROM STDIN: {e}"));
        total += started.elapsed();
    }
    (total, rows)
}
