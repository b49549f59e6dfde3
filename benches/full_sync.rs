#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Benchmark of a full sync against the limit set by PostgreSQL and the
//! fetch (issue 13): the fetch-only time and the raw COPY time of the rows a
//! sync writes, their sum (the limit), then a first sync, a no-change
//! re-sync, a 1%-changed re-sync and a re-sync with 100 ms latency on every
//! page, each with wall time, ratio to the limit, peak RSS of its own
//! process, rows written per table and bytes written to the audit and
//! problems tables, and the targets as PASS/MISS (a MISS never fails).
//!
//! Run with `cargo bench --bench full_sync`. The fake PowerSchool runs in
//! this process; each sync runs as a fresh child process
//! (`student-sync sync --once --json`) whose peak RSS is its own `VmHWM`,
//! watched while it runs (`wait4`'s `ru_maxrss` would count the bench's).
//! Settings:
//!
//! - `STUDENT_SYNC_BENCH_STUDENTS`: district size (default 150000);
//! - `DATABASE_URL`: the PostgreSQL server to use (default
//!   `postgres://postgres@127.0.0.1:5432`); the bench works in its own
//!   databases `student_sync_bench` and `student_sync_bench_copy`, dropped
//!   and recreated at the start and dropped at the end;
//! - `RUST_LOG=info` shows the sync's own per-phase timings.

#[path = "full_sync/measure.rs"]
mod measure;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use measure::{AuditWritten, ChildRun, TableStats};
use sqlx::migrate::MigrateDatabase;
use sqlx::PgPool;
use student_sync::config::{Settings, Sources};
use student_sync::harness::change::{change_share, Changed};
use student_sync::harness::fake_powerschool::{self, FakeCredentials, Faults, RunningFake};
use student_sync::harness::world::PowerSchoolSide;
use student_sync::powerschool::PowerSchoolClient;
use student_sync::store;

const DEFAULT_STUDENTS: usize = 150_000;
const SEED: u64 = 1;
const CHANGE_PERCENT: f64 = 1.0;
const PAGE_LATENCY: Duration = Duration::from_millis(100);
const BENCH_DATABASE: &str = "student_sync_bench";
const COPY_DATABASE: &str = "student_sync_bench_copy";

// Targets (issue 13).
const TARGET_RSS_MB: f64 = 250.0;
const TARGET_FIRST_X_LIMIT: f64 = 2.0;
const TARGET_RESYNC_X_FETCH: f64 = 1.5;
const TARGET_CHANGED_X_RESYNC: f64 = 1.2;
const TARGET_LATENCY_X_RESYNC: f64 = 2.0;
const TARGET_AUDIT_BYTES_PER_ROW: f64 = 200.0;

/// One measured sync.
struct Measured {
    name: &'static str,
    run: ChildRun,
    after: TableStats,
    audit: AuditWritten,
}

impl Measured {
    fn secs(&self) -> f64 {
        self.run.wall.as_secs_f64()
    }
    fn rss_mb(&self) -> f64 {
        self.run.peak_rss_kb as f64 / 1024.0
    }
    /// Rows created, updated or removed in the live tables, from the run report.
    fn rows_written(&self) -> [u64; 5] {
        let c = &self.run.counts;
        let k = |k: &student_sync::sync::plan::KindCounts| k.created + k.updated + k.removed;
        let n = &c.connections;
        [
            k(&c.students),
            k(&c.contacts),
            k(&c.guardian_accounts),
            k(&c.users),
            n.created + n.updated + n.removed,
        ]
    }
    fn live_total(&self) -> u64 {
        self.rows_written().iter().sum()
    }
}

fn bench_url(database: &str) -> url::Url {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{database}"));
    url
}

fn settings(fake_url: &str, db_url: &url::Url) -> Settings {
    let env = [
        ("STUDENT_SYNC_POWERSCHOOL_URL", fake_url.to_string()),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_ID",
            "student-sync-demo".into(),
        ),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            "demo-secret".into(),
        ),
        ("DATABASE_URL", db_url.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Settings::load(&Sources { file: None, env }).expect("bench settings are valid")
}

/// A fresh, migrated database (dropped first if it exists).
async fn fresh_database(url: &url::Url) -> PgPool {
    if sqlx::Postgres::database_exists(url.as_str())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is unreachable: {e}",
                url.host_str().unwrap_or("?")
            )
        })
    {
        sqlx::Postgres::force_drop_database(url.as_str())
            .await
            .expect("drop the old bench database");
    }
    store::connect(url.as_str(), url.path(), 4)
        .await
        .expect("bench database is created and migrated")
}

async fn serve(side: &PowerSchoolSide, page_latency: Duration) -> RunningFake {
    let faults = Faults {
        page_latency,
        ..Faults::default()
    };
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    fake_powerschool::spawn(side.clone(), FakeCredentials::default(), faults, listen)
        .await
        .expect("the fake PowerSchool starts")
}

async fn measure(name: &'static str, pool: &PgPool, fake: &RunningFake, db: &url::Url) -> Measured {
    let before = measure::table_stats(pool).await;
    let (fake_url, db_url) = (fake.base_url(), db.to_string());
    let run = tokio::task::spawn_blocking(move || measure::sync_child(&fake_url, &db_url))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let after = measure::table_stats(pool).await;
    let audit = measure::audit_written(pool, &before, &after).await;
    eprintln!("{name}: {:.1} s", run.wall.as_secs_f64());
    Measured {
        name,
        run,
        after,
        audit,
    }
}

/// The rows the 1% change should make the sync write, per live table,
/// counted in the database before the changed run: the changed records the
/// database holds (students in the sync set), and the users of the renamed
/// guardian accounts. Connections: none.
async fn expected_changes(pool: &PgPool, changed: &Changed) -> [i64; 5] {
    let (cs, cp): (Vec<i64>, Vec<i64>) = changed.contacts.iter().copied().unzip();
    let (gg, gs): (Vec<i64>, Vec<i64>) = changed.guardian_links.iter().copied().unzip();
    let any = |sql: &'static str, keys: Vec<i64>| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(keys)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    let pairs = |sql: &'static str, a: Vec<i64>, b: Vec<i64>| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(a)
            .bind(b)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    [
        any(
            "SELECT count(*) FROM students WHERE in_sync_set AND dcid = ANY($1)",
            changed.students.clone(),
        )
        .await,
        pairs(
            "SELECT count(*) FROM student_contacts c JOIN unnest($1::bigint[], $2::bigint[]) k(s, p) \
             ON c.student_dcid = k.s AND c.person_id = k.p",
            cs,
            cp,
        )
        .await,
        pairs(
            "SELECT count(*) FROM guardian_accounts g JOIN unnest($1::bigint[], $2::bigint[]) k(g, s) \
             ON g.guardian_id = k.g AND g.student_dcid = k.s",
            gg,
            gs,
        )
        .await,
        any(
            "SELECT count(*) FROM users WHERE powerschool_guardian_id = ANY($1)",
            changed.guardian_ids.clone(),
        )
        .await,
        0,
    ]
}

/// Figures of the limit.
struct Limit {
    fetch: Duration,
    fetched: u64,
    copy: Duration,
    copied: u64,
}

impl Limit {
    fn secs(&self) -> f64 {
        (self.fetch + self.copy).as_secs_f64()
    }
}

async fn fetch_only(fake: &RunningFake, db: &url::Url) -> (Duration, u64) {
    let settings = settings(&fake.base_url(), db);
    let client = PowerSchoolClient::new(&settings.powerschool).expect("client builds");
    let started = Instant::now();
    let snapshot = client.fetch_district().await.expect("the fetch succeeds");
    let wall = started.elapsed();
    let n = snapshot.guardians.len()
        + snapshot.students.len()
        + snapshot.independent_students.len()
        + snapshot.contacts.len();
    (wall, n as u64)
}

fn main() {
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
    println!("full_sync bench: {students} generated students (seed {SEED}), {cores} cores");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (limit, runs, expected) = runtime.block_on(bench(students));
    print_figures(&limit, &runs, &expected);
}

async fn bench(students: usize) -> (Limit, Vec<Measured>, [i64; 5]) {
    let (db, copy_db) = (bench_url(BENCH_DATABASE), bench_url(COPY_DATABASE));
    let pool = fresh_database(&db).await;
    let mut side = fake_powerschool::generate(students, SEED);

    let fake = serve(&side, Duration::ZERO).await;
    let (fetch, fetched) = fetch_only(&fake, &db).await;
    eprintln!("fetch-only: {:.1} s", fetch.as_secs_f64());
    let first = measure("first sync", &pool, &fake, &db).await;

    let copy_pool = fresh_database(&copy_db).await;
    let (copy, copied) = measure::raw_copy(&pool, &copy_pool).await;
    copy_pool.close().await;
    sqlx::Postgres::force_drop_database(copy_db.as_str())
        .await
        .expect("drop the copy database");
    eprintln!("raw COPY: {:.1} s", copy.as_secs_f64());

    let resync = measure("no-change re-sync", &pool, &fake, &db).await;
    fake.shutdown().await;

    let changed = change_share(&mut side, CHANGE_PERCENT, SEED);
    let expected = expected_changes(&pool, &changed).await;
    let fake = serve(&side, Duration::ZERO).await;
    let one_percent = measure("1%-changed re-sync", &pool, &fake, &db).await;
    fake.shutdown().await;

    let fake = serve(&side, PAGE_LATENCY).await;
    let latency = measure("latency re-sync", &pool, &fake, &db).await;
    fake.shutdown().await;

    pool.close().await;
    sqlx::Postgres::force_drop_database(db.as_str())
        .await
        .expect("drop the bench database");
    let limit = Limit {
        fetch,
        fetched,
        copy,
        copied,
    };
    (limit, vec![first, resync, one_percent, latency], expected)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn print_figures(limit: &Limit, runs: &[Measured], expected: &[i64; 5]) {
    let [first, resync, changed, latency] = runs else {
        unreachable!("four runs")
    };
    println!();
    println!(
        "limit = fetch-only {:.2} s ({} records fetched and parsed) + raw COPY {:.2} s ({} rows into an empty schema) = {:.2} s",
        limit.fetch.as_secs_f64(),
        limit.fetched,
        limit.copy.as_secs_f64(),
        limit.copied,
        limit.secs()
    );
    println!();
    println!(
        "{:<20} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10} {:>13} {:>13} {:>9}",
        "run",
        "wall s",
        "x limit",
        "peak RSS MB",
        "live rows",
        "audit rows",
        "problems",
        "row data B",
        "on disk B",
        "B/row"
    );
    for m in runs {
        let per_row = match m.audit.rows() {
            0 => "n/a".to_string(),
            n => format!("{:.0}", m.audit.row_bytes as f64 / n as f64),
        };
        println!(
            "{:<20} {:>8.2} {:>8.2} {:>12.0} {:>12} {:>10} {:>10} {:>13} {:>13} {:>9}",
            m.name,
            m.secs(),
            m.secs() / limit.secs(),
            m.rss_mb(),
            m.live_total(),
            m.audit.audit_rows,
            m.audit.problem_rows,
            m.audit.row_bytes,
            m.audit.disk_bytes,
            per_row
        );
    }
    println!();
    println!("rows written per table (created + updated + removed, from the run report; live rows counted after)");
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "run", "students", "contacts", "guardian", "users", "connections"
    );
    for m in runs {
        let w = m.rows_written();
        println!(
            "{:<20} {:>10} {:>10} {:>10} {:>10} {:>12}",
            m.name, w[0], w[1], w[2], w[3], w[4]
        );
    }
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "  1% expected", expected[0], expected[1], expected[2], expected[3], expected[4]
    );
    let rows = &changed.after.live_rows;
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "  rows held after", rows[0], rows[1], rows[2], rows[3], rows[4]
    );
    let matches = changed
        .rows_written()
        .iter()
        .zip(expected)
        .all(|(w, e)| *w as i64 == *e);
    println!(
        "  1% re-sync wrote exactly the changed rows: {}",
        verdict(matches)
    );

    println!();
    println!("targets (a MISS never fails the bench):");
    let worst_rss = runs.iter().map(Measured::rss_mb).fold(0.0, f64::max);
    println!(
        "  peak RSS <= {TARGET_RSS_MB:.0} MB (worst run {worst_rss:.0} MB): {}",
        verdict(worst_rss <= TARGET_RSS_MB)
    );
    let x = first.secs() / limit.secs();
    println!(
        "  first sync <= {TARGET_FIRST_X_LIMIT}x limit ({x:.2}x): {}",
        verdict(x <= TARGET_FIRST_X_LIMIT)
    );
    let x = resync.secs() / limit.fetch.as_secs_f64();
    println!(
        "  no-change re-sync <= {TARGET_RESYNC_X_FETCH}x fetch-only ({x:.2}x): {}",
        verdict(x <= TARGET_RESYNC_X_FETCH)
    );
    let x = changed.secs() / resync.secs();
    println!(
        "  1%-changed re-sync <= {TARGET_CHANGED_X_RESYNC}x no-change ({x:.2}x): {}",
        verdict(x <= TARGET_CHANGED_X_RESYNC)
    );
    let x = latency.secs() / resync.secs();
    println!(
        "  re-sync with {} ms page latency <= {TARGET_LATENCY_X_RESYNC}x without ({x:.2}x): {}",
        PAGE_LATENCY.as_millis(),
        verdict(x <= TARGET_LATENCY_X_RESYNC)
    );
    for m in runs {
        let n = m.audit.rows().max(1) as f64;
        let b = m.audit.row_bytes as f64 / n;
        println!(
            "  {}: audit+problems <= {TARGET_AUDIT_BYTES_PER_ROW:.0} bytes a row ({b:.0} row data, {:.0} on disk with indexes, over {} rows): {}",
            m.name,
            m.audit.disk_bytes as f64 / n,
            m.audit.rows(),
            verdict(b <= TARGET_AUDIT_BYTES_PER_ROW)
        );
    }
}
