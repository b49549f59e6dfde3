#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! One sync run end to end: fake PowerSchool over HTTP → plan → one
//! transaction into a fresh PostgreSQL database per test.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::config::Settings;
use student_sync::harness::fake_powerschool::RunningFake;
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::harness::world::World;
use student_sync::powerschool::PowerSchoolClient;
use student_sync::sync::{self, FailPoint};

fn small_district() -> World {
    World {
        powerschool: fake_powerschool::generate(400, 7),
        ..World::default()
    }
}

#[sqlx::test]
async fn first_sync_creates_everything(pool: PgPool) {
    let world = small_district();
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    let outcome = sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .expect("run succeeds");
    let c = &outcome.report.counts;
    assert!(c.students.created > 300, "{c:?}");
    assert_eq!(c.students.updated + c.students.unchanged, 0);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM students").await as u64,
        c.students.created
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM student_contacts").await as u64,
        c.contacts.created
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM guardian_accounts").await as u64,
        c.guardian_accounts.created
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM users").await as u64,
        c.users.created
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM connections").await as u64,
        c.connections.created
    );
    assert!(
        c.users.created > 100 && c.connections.created > 200,
        "{c:?}"
    );
    // Every created connection has an audit row naming the run.
    let audited = count(
        &pool,
        &format!(
            "SELECT count(*) FROM access_audit WHERE run_id = {}",
            outcome.run_id
        ),
    )
    .await;
    assert_eq!(audited as u64, c.connections.created);
    let status: String = sqlx::query_scalar("SELECT status FROM sync_runs WHERE id = $1")
        .bind(outcome.run_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "succeeded");
}

/// The small district served, and synced once.
async fn synced_once(pool: &PgPool) -> (RunningFake, Settings, PowerSchoolClient) {
    let fake = start_fake(small_district().powerschool, Faults::default()).await;
    let settings = settings_for(&fake);
    let client = client(&settings);
    sync::run_once(pool, &settings, &client, &options(&settings))
        .await
        .unwrap();
    (fake, settings, client)
}

#[sqlx::test]
async fn second_identical_sync_writes_nothing(pool: PgPool) {
    let (_fake, settings, client) = synced_once(&pool).await;
    let before = fingerprint(&pool).await;
    let stamps_before: Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> = stamps(&pool).await;
    let second = sync::run_once(&pool, &settings, &client, &options(&settings))
        .await
        .unwrap();
    let c = &second.report.counts;
    for (kind, k) in kind_counts(c) {
        assert_eq!(
            (k.created, k.updated, k.removed),
            (0, 0, 0),
            "{kind}: {k:?}"
        );
        assert!(k.unchanged > 0, "{kind}");
    }
    assert_eq!(
        (
            c.connections.created,
            c.connections.updated,
            c.connections.removed
        ),
        (0, 0, 0)
    );
    assert!(c.connections.unchanged > 0);
    assert_eq!(
        fingerprint(&pool).await,
        before,
        "a second identical sync changed a live table"
    );
    assert_eq!(stamps(&pool).await, stamps_before, "updated_at moved");
}

/// The stored users, connections and forms are lent to the rules (moved
/// out of the state, not copied) and given back: the rules see every one of
/// them, and the state a plan leaves is the state it was given.
#[sqlx::test]
async fn a_plan_lends_the_stored_users_and_connections_and_gives_them_back(pool: PgPool) {
    use student_sync::store::{CurrentState, RunTrigger};
    let (fake, settings, client) = synced_once(&pool).await;
    let snapshot = client.fetch_district().await.unwrap();
    fake.shutdown().await;
    let stored = CurrentState::load(&pool).await.unwrap();
    assert!(!stored.users.is_empty() && !stored.connections.is_empty());
    let today = sync::RunOptions::now(&settings, RunTrigger::Manual).today;

    let prepared = sync::prepare(&pool, &settings, &snapshot, today)
        .await
        .unwrap();
    assert_eq!(prepared.state.users, stored.users);
    assert_eq!(prepared.state.connections, stored.connections);
    assert_eq!(prepared.state.forms, stored.forms);
    // The rules saw every stored connection: each one is kept unchanged.
    let c = &prepared.plan.counts.connections;
    assert_eq!(c.unchanged, stored.connections.len() as u64);
    assert_eq!((c.created, c.updated, c.removed), (0, 0, 0));

    let mut state = stored.clone();
    let plan = sync::plan(&snapshot, &mut state, &settings.sync, today);
    assert_eq!(
        plan.counts.connections.unchanged,
        stored.connections.len() as u64
    );
    assert_eq!(state.users, stored.users);
    assert_eq!(state.connections, stored.connections);
    assert_eq!(state.forms, stored.forms);
}

/// Applying a plan frees each kind of row once it is written (a first
/// sync does not hold its PowerSchool rows while it writes the rest); the
/// plan's counts stay, and every row is in the database.
#[sqlx::test]
async fn applying_a_plan_frees_its_rows_and_keeps_its_counts(pool: PgPool) {
    use student_sync::store::district::WriteGate;
    use student_sync::store::{runs, CurrentState, RunTrigger};
    let fake = start_fake(small_district().powerschool, Faults::default()).await;
    let settings = settings_for(&fake);
    let snapshot = client(&settings).fetch_district().await.unwrap();
    fake.shutdown().await;
    let today = sync::RunOptions::now(&settings, RunTrigger::Manual).today;
    let mut state = CurrentState::load(&pool).await.unwrap();
    let mut plan = sync::plan(&snapshot, &mut state, &settings.sync, today);
    let counts = serde_json::to_value(&plan.counts).unwrap();
    let created = (
        plan.students.create.len() as i64,
        plan.contacts.create.len() as i64,
        plan.new_users.len() as i64,
        plan.connections.len() as i64,
    );
    assert!(created.0 > 0 && created.3 > 0 && !plan.problems.is_empty());

    let run_id = runs::start_run(&pool, RunTrigger::Manual, today)
        .await
        .unwrap();
    let gate = WriteGate::new(&settings.district, None);
    sync::apply::apply(
        &pool,
        &gate,
        run_id,
        &mut plan,
        &serde_json::json!({}),
        None,
        None,
    )
    .await
    .unwrap();

    assert!(plan.students.create.is_empty() && plan.contacts.create.is_empty());
    assert!(plan.guardian_accounts.create.is_empty() && plan.new_users.is_empty());
    assert!(plan.connections.is_empty() && plan.problems.is_empty());
    assert_eq!(serde_json::to_value(&plan.counts).unwrap(), counts);
    let held: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM students), (SELECT count(*) FROM student_contacts),
                (SELECT count(*) FROM users), (SELECT count(*) FROM connections)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(held, created, "every row was written before it was freed");
}

async fn stamps(pool: &PgPool) -> Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> {
    let mut out = Vec::new();
    for t in [
        "students",
        "student_contacts",
        "guardian_accounts",
        "users",
        "connections",
    ] {
        let v: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar(&format!("SELECT max(updated_at) FROM {t}"))
                .fetch_one(pool)
                .await
                .unwrap();
        out.push((t.to_string(), v));
    }
    out
}

#[sqlx::test]
async fn a_changed_name_updates_only_that_row(pool: PgPool) {
    let mut world = small_district();
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .unwrap();
    fake.shutdown().await;

    let target = world
        .powerschool
        .students
        .iter_mut()
        .find(|s| s.enroll_status == 0)
        .expect("an active student");
    target.first_name = Some("Renamed".into());
    let dcid = target.dcid;
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    let before: Vec<(i64, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT dcid, updated_at FROM students ORDER BY dcid")
            .fetch_all(&pool)
            .await
            .unwrap();
    let outcome = sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .unwrap();
    assert_eq!(outcome.report.counts.students.updated, 1);
    assert_eq!(outcome.report.counts.students.created, 0);
    let after: Vec<(i64, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT dcid, updated_at FROM students ORDER BY dcid")
            .fetch_all(&pool)
            .await
            .unwrap();
    let changed: Vec<i64> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0)
        .collect();
    assert_eq!(changed, vec![dcid]);
    let name: Option<String> =
        sqlx::query_scalar("SELECT first_name FROM students WHERE dcid = $1")
            .bind(dcid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("Renamed"));
}

#[sqlx::test]
async fn schoolengage_owned_columns_survive_a_sync(pool: PgPool) {
    let world = load_world("00-independent-parent-read-only.json");
    student_sync::harness::seed::seed_world(&pool, &world.schoolengage)
        .await
        .unwrap();
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .unwrap();
    // SchoolEngage changes its own columns between nights…
    sqlx::query("UPDATE users SET email_verified = false, email = 'mei.new@example.com' WHERE email = 'mei.lee@example.com'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO forms (student_dcid, created_by_user_id, title) SELECT 5001, id, 'Field trip' FROM users LIMIT 1")
        .execute(&pool)
        .await
        .unwrap();
    let before = fingerprint(&pool).await;
    sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .unwrap();
    // …and the sync leaves them alone.
    let (verified, email, origin): (bool, String, String) = sqlx::query_as(
        "SELECT u.email_verified, u.email, c.origin FROM users u JOIN connections c ON c.user_id = u.id WHERE c.student_dcid = 5001",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!verified);
    assert_eq!(email, "mei.new@example.com");
    assert_eq!(origin, "admin");
    assert_eq!(count(&pool, "SELECT count(*) FROM forms").await, 2);
    let forms_before = before.iter().find(|(t, _)| t == "forms").unwrap();
    let after = fingerprint(&pool).await;
    assert_eq!(
        after.iter().find(|(t, _)| t == "forms").unwrap(),
        forms_before
    );
}

#[sqlx::test]
async fn a_failure_before_commit_leaves_every_live_table_as_it_was(pool: PgPool) {
    let world = small_district();
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    // A first night, so the tables are not empty.
    let mut first = world.clone();
    first.powerschool.students.truncate(200);
    let fake_first = start_fake(first.powerschool.clone(), Faults::default()).await;
    let s1 = settings_for(&fake_first);
    sync::run_once(&pool, &s1, &client(&s1), &options(&s1))
        .await
        .unwrap();
    let before = fingerprint(&pool).await;

    let mut opts = options(&settings);
    opts.fail_point = Some(FailPoint::BeforeCommit);
    let err = sync::run_once(&pool, &settings, &client(&settings), &opts)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(fingerprint(&pool).await, before);
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("injected"));
    assert_eq!(count(&pool, "SELECT count(*) FROM run_problems r JOIN sync_runs s ON s.id = r.run_id WHERE s.status = 'failed'").await, 0);
}

#[sqlx::test]
async fn a_powerschool_failure_mid_fetch_leaves_every_live_table_as_it_was(pool: PgPool) {
    let world = small_district();
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .unwrap();
    let before = fingerprint(&pool).await;

    let faults = Faults {
        always_fail_queries: vec!["org.studentsync.sync.students.contacts".into()],
        ..Faults::default()
    };
    let failing = start_fake(world.powerschool.clone(), faults).await;
    let settings = settings_for(&failing);
    let err = sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("org.studentsync.sync.students.contacts"),
        "{err}"
    );
    assert_eq!(fingerprint(&pool).await, before);
    let (status, phase): (String, String) =
        sqlx::query_as("SELECT status, phase FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), phase.as_str()), ("failed", "fetching"));
}

#[sqlx::test]
async fn a_killed_run_leaves_a_running_row(pool: PgPool) {
    let world = small_district();
    // Pages take far longer than the test waits, so the run is mid-fetch when killed.
    let faults = Faults {
        page_latency: std::time::Duration::from_secs(60),
        ..Faults::default()
    };
    let fake = start_fake(world.powerschool.clone(), faults).await;
    let url = database_url(&pool).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"))
        .args(["sync", "--once"])
        .env("DATABASE_URL", &url)
        .env("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url())
        .env("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "student-sync-demo")
        .env("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "demo-secret")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut running = 0;
    for _ in 0..400 {
        running = count(
            &pool,
            "SELECT count(*) FROM sync_runs WHERE status = 'running'",
        )
        .await;
        if running > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(running, 1, "the run row is written before fetching starts");
    child.start_kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().await.unwrap();
    let (status, finished): (String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT status, finished_at FROM sync_runs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "running");
    assert!(finished.is_none());
    assert_eq!(count(&pool, "SELECT count(*) FROM students").await, 0);
}
