//! Shared test harness: a fake PowerSchool on a loopback port, settings that
//! point at it, and a fingerprint of every live table to prove what a run
//! did or did not write.
#![allow(dead_code)]

pub mod client_setup;
pub mod daemon_http;
pub mod daemon_setup;
pub mod fake_setup;
pub mod records;
pub mod rules_gen;

use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::time::Duration;
use student_sync::config::{Settings, Sources};
use student_sync::harness::fake_powerschool::{self, FakeCredentials, Faults, RunningFake};
use student_sync::harness::world::{PowerSchoolSide, World};
use student_sync::powerschool::PowerSchoolClient;

pub const LIVE_TABLES: &[&str] = &[
    "students",
    "student_contacts",
    "guardian_accounts",
    "users",
    "connections",
    "forms",
    "access_audit",
];

pub async fn start_fake(side: PowerSchoolSide, faults: Faults) -> RunningFake {
    fake_powerschool::spawn(
        side,
        FakeCredentials::default(),
        faults,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("fake PowerSchool starts")
}

/// Settings for a run against `fake`, with tiny backoffs so retries never
/// sleep for real seconds.
pub fn settings_for(fake: &RunningFake) -> Settings {
    let creds = FakeCredentials::default();
    let env: HashMap<String, String> = [
        ("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url()),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", creds.client_id),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            creds.client_secret,
        ),
        ("STUDENT_SYNC_POWERSCHOOL_MAX_ATTEMPTS", "3".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut s = Settings::load(&Sources { file: None, env }).expect("test settings are valid");
    s.powerschool.backoff_initial = Duration::from_millis(1);
    s.powerschool.backoff_max = Duration::from_millis(5);
    s.powerschool.page_size = 50;
    s
}

/// A run's counts of the mirrored kinds and users, by the report's names.
pub fn kind_counts(
    c: &student_sync::sync::plan::PlanCounts,
) -> [(&'static str, student_sync::sync::plan::KindCounts); 4] {
    [
        ("students", c.students),
        ("contacts", c.contacts),
        ("guardian accounts", c.guardian_accounts),
        ("users", c.users),
    ]
}

/// Each mirrored kind (students, contacts, guardian accounts) was written
/// `(created, updated, removed)` times by the run, and kept some rows as
/// they were.
pub fn assert_mirrored_counts(c: &student_sync::sync::plan::PlanCounts, written: (u64, u64, u64)) {
    for (kind, k) in kind_counts(c).into_iter().take(3) {
        assert_eq!((k.created, k.updated, k.removed), written, "{kind}: {k:?}");
        assert!(k.unchanged > 0, "{kind}: {k:?}");
    }
}

/// The options of a run started by hand, today in the district's time zone.
pub fn options(settings: &Settings) -> student_sync::sync::RunOptions {
    student_sync::sync::RunOptions::now(settings, student_sync::store::RunTrigger::Manual)
}

pub fn client(settings: &Settings) -> PowerSchoolClient {
    PowerSchoolClient::new(&settings.powerschool).expect("client builds")
}

pub fn load_world(name: &str) -> World {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/worlds")
        .join(name);
    World::load(&path).expect("world loads")
}

/// One md5 per live table over every row, every column: equal fingerprints
/// mean byte-identical tables.
pub async fn fingerprint(pool: &PgPool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in LIVE_TABLES {
        let row = sqlx::query(&format!(
            "SELECT COALESCE(md5(string_agg(t::text, '|' ORDER BY t::text)), 'empty') FROM {t} t"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((t.to_string(), row.get::<String, _>(0)));
    }
    out
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// A URL for the database this pool is connected to (for child processes).
pub async fn database_url(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/x".into());
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Waits until some session of this database waits for an advisory lock
/// (a command blocked on the run lock), by state rather than by a sleep.
pub async fn until_someone_waits_for_a_lock(pool: &sqlx::PgPool) {
    for _ in 0..1200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("nothing ever waited for the run lock");
}

/// Every world file of fixtures/worlds, sorted.
pub fn fixture_world_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/worlds");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures/worlds exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Empties every table a world or a run fills, so one database serves the
/// worlds one after the other.
pub async fn reset_tables(pool: &PgPool) {
    sqlx::query(
        "TRUNCATE access_audit, run_problems, connections, forms, users, students, student_contacts,
                  guardian_accounts, sync_runs RESTART IDENTITY CASCADE",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// A world's PowerSchool side served by a fake, with the settings and the
/// run options (its `today`) the world asks for.
pub async fn world_setup(world: &World) -> (RunningFake, Settings, student_sync::sync::RunOptions) {
    use student_sync::harness::world_settings;
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let mut settings = settings_for(&fake);
    world_settings::apply(&world.settings, &mut settings.sync).expect("world settings are valid");
    let mut options =
        student_sync::sync::RunOptions::now(&settings, student_sync::store::RunTrigger::Manual);
    if let Some(today) = world_settings::today(&world.settings).unwrap() {
        options.today = today;
    }
    (fake, settings, options)
}

/// One run (started by hand) against a fake PowerSchool serving `side`,
/// which must succeed.
pub async fn sync_side(pool: &PgPool, side: &PowerSchoolSide) -> student_sync::sync::RunOutcome {
    let fake = start_fake(side.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    let outcome =
        student_sync::sync::run_once(pool, &settings, &client(&settings), &options(&settings))
            .await
            .expect("run succeeds");
    fake.shutdown().await;
    outcome
}
