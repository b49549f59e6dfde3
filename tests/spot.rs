#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Spot sync: one student (or one guardian's students) fetched with
//! PowerQuery arguments and applied alone; every other row stays
//! byte-identical, no user is created without `--create-users`, and it waits
//! for the run lock while a nightly run holds it.

mod common;

use common::*;
use sqlx::{PgPool, Row};
use std::time::Duration;
use student_sync::config::Settings;
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::harness::world::{PowerSchoolSide, WorldContact, WorldGuardianAccount};
use student_sync::rules::TierMatrix;
use student_sync::store::RunTrigger;
use student_sync::sync::spot::{spot, SpotOptions, SpotOutcome, SpotScope};
use student_sync::sync::{self, RunOptions};

const NEW_EMAIL: &str = "new.parent@example.org";

fn district() -> PowerSchoolSide {
    fake_powerschool::generate(300, 5)
}

/// Night 1 applied; returns three students that have connections.
async fn first_night(pool: &PgPool) -> (i64, i64, i64) {
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(
        pool,
        &settings,
        &client(&settings),
        &RunOptions::now(&settings, RunTrigger::Manual),
    )
    .await
    .unwrap();
    fake.shutdown().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT student_dcid FROM connections GROUP BY student_dcid ORDER BY student_dcid LIMIT 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (ids[0], ids[1], ids[2])
}

/// PowerSchool the next day: A and B renamed, A with a new guardian
/// account (an email no user has), C gone.
fn next_day(a: i64, b: i64, c: i64) -> PowerSchoolSide {
    let mut side = district();
    for s in side.students.iter_mut() {
        if s.dcid == a {
            s.first_name = Some("SpotChanged".into());
        }
        if s.dcid == b {
            s.first_name = Some("NotForSpot".into());
        }
    }
    side.students.retain(|s| s.dcid != c);
    side.contacts.push(WorldContact {
        student_dcid: a,
        person_id: 999_999,
        first_name: Some("New".into()),
        last_name: Some("Parent".into()),
        email: Some(NEW_EMAIL.into()),
        isdecisionmaking: 1,
    });
    side.guardian_accounts.push(WorldGuardianAccount {
        guardianid: 999_999,
        student_dcid: a,
        email: Some(NEW_EMAIL.into()),
        first_name: Some("New".into()),
        last_name: Some("Parent".into()),
        web_access_account: false,
    });
    side
}

/// A hash of every row that is not about student `a`.
async fn others(pool: &PgPool, a: i64) -> Vec<(String, String)> {
    let queries = [
        ("students", format!("SELECT t::text FROM students t WHERE dcid <> {a}")),
        ("contacts", format!("SELECT t::text FROM student_contacts t WHERE student_dcid <> {a}")),
        ("guardian_accounts", format!("SELECT t::text FROM guardian_accounts t WHERE student_dcid <> {a}")),
        ("connections", format!("SELECT t::text FROM connections t WHERE student_dcid <> {a}")),
        (
            "users",
            format!("SELECT t::text FROM users t WHERE id NOT IN (SELECT user_id FROM connections WHERE student_dcid = {a})"),
        ),
        ("forms", "SELECT t::text FROM forms t".to_string()),
        ("access_audit", format!("SELECT t::text FROM access_audit t WHERE student_dcid <> {a}")),
    ];
    let mut out = Vec::new();
    for (name, q) in queries {
        let h: String = sqlx::query_scalar(&format!(
            "SELECT COALESCE(md5(string_agg(x, '|' ORDER BY x)), 'empty') FROM ({q}) AS r(x)"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((name.to_string(), h));
    }
    out
}

fn opts(settings: &Settings, scope: SpotScope, create_users: bool) -> SpotOptions {
    SpotOptions {
        scope,
        create_users,
        today: RunOptions::now(settings, RunTrigger::Manual).today,
    }
}

async fn run_spot(pool: &PgPool, settings: &Settings, o: &SpotOptions) -> SpotOutcome {
    spot(pool, settings, &client(settings), &TierMatrix::default(), o)
        .await
        .expect("spot sync succeeds")
}

#[sqlx::test]
async fn spot_sync_changes_only_its_students_rows(pool: PgPool) {
    let (a, b, c) = first_night(&pool).await;
    let fake = start_fake(next_day(a, b, c), Faults::default()).await;
    let settings = settings_for(&fake);
    let users_before = count(&pool, "SELECT count(*) FROM users").await;
    let in_set_before = count(&pool, "SELECT count(*) FROM students WHERE in_sync_set").await;
    let before = others(&pool, a).await;

    let outcome = run_spot(
        &pool,
        &settings,
        &opts(&settings, SpotScope::Student(a), false),
    )
    .await;

    assert_eq!(
        others(&pool, a).await,
        before,
        "a row outside the spot's student changed"
    );
    // Its own rows did change.
    let name: Option<String> =
        sqlx::query_scalar("SELECT first_name FROM students WHERE dcid = $1")
            .bind(a)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("SpotChanged"));
    assert_eq!(
        count(&pool, &format!("SELECT count(*) FROM guardian_accounts WHERE student_dcid = {a} AND guardian_id = 999999")).await,
        1
    );
    // B's rename and C's absence wait for the nightly run.
    let b_name: Option<String> =
        sqlx::query_scalar("SELECT first_name FROM students WHERE dcid = $1")
            .bind(b)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_ne!(b_name.as_deref(), Some("NotForSpot"));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM students WHERE in_sync_set").await,
        in_set_before
    );
    // No user without --create-users; the report says so.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM users").await,
        users_before
    );
    assert_eq!(outcome.users_not_created, vec![NEW_EMAIL.to_string()]);
    assert!(outcome
        .report
        .problems
        .iter()
        .any(|p| p.kind == "spot_user_not_created" && p.message.contains("--create-users")));
    // The run is recorded as a spot run of that student.
    let row = sqlx::query("SELECT trigger, status, scope FROM sync_runs WHERE id = $1")
        .bind(outcome.run_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "spot");
    assert_eq!(row.get::<String, _>(1), "succeeded");
    assert_eq!(row.get::<String, _>(2), format!("student {a}"));
    // Every connection of the student is explained.
    assert!(!outcome.connections.is_empty());
    assert!(outcome.connections.iter().all(|c| c.student_dcid == a));
    let text = outcome.to_text();
    assert!(text.contains(&format!("student {a}")), "{text}");
    assert!(text.contains("Audit history"), "{text}");

    // With --create-users the new guardian gets a user and a connection, still only for A.
    let before = others(&pool, a).await;
    let outcome = run_spot(
        &pool,
        &settings,
        &opts(&settings, SpotScope::Student(a), true),
    )
    .await;
    assert!(outcome.users_not_created.is_empty());
    assert_eq!(
        count(&pool, "SELECT count(*) FROM users").await,
        users_before + 1
    );
    assert_eq!(
        count(
            &pool,
            &format!("SELECT count(*) FROM connections c JOIN users u ON u.id = c.user_id WHERE u.email = '{NEW_EMAIL}' AND c.student_dcid = {a}")
        )
        .await,
        1
    );
    assert!(outcome
        .connections
        .iter()
        .any(|c| c.email == NEW_EMAIL && c.changed));
    assert_eq!(others(&pool, a).await, before);
    fake.shutdown().await;
}

#[sqlx::test]
async fn spot_sync_of_a_guardian_covers_their_students(pool: PgPool) {
    let (a, b, c) = first_night(&pool).await;
    let email: String = sqlx::query_scalar(
        "SELECT u.email FROM connections c JOIN users u ON u.id = c.user_id
         WHERE c.student_dcid = $1 ORDER BY u.id LIMIT 1",
    )
    .bind(a)
    .fetch_one(&pool)
    .await
    .unwrap();
    let fake = start_fake(next_day(a, b, c), Faults::default()).await;
    let settings = settings_for(&fake);
    let outcome = run_spot(
        &pool,
        &settings,
        &opts(
            &settings,
            SpotScope::Guardian(format!("  {}  ", email.to_uppercase())),
            false,
        ),
    )
    .await;
    fake.shutdown().await;
    assert!(outcome.students.contains(&a), "{:?}", outcome.students);
    assert_eq!(outcome.scope, format!("guardian {email}"));
    assert!(outcome.connections.iter().any(|x| x.email == email));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM students WHERE NOT in_sync_set").await,
        0
    );
}

#[sqlx::test]
async fn spot_sync_waits_for_the_run_lock(pool: PgPool) {
    let (a, b, c) = first_night(&pool).await;
    let fake = start_fake(next_day(a, b, c), Faults::default()).await;
    let settings = settings_for(&fake);
    // A nightly run holds the district's run lock.
    let mut holder = pool.acquire().await.unwrap().detach();
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(sync::run_lock_key(&settings))
        .execute(&mut holder)
        .await
        .unwrap();
    let task = tokio::spawn({
        let pool = pool.clone();
        let settings = settings.clone();
        async move {
            let o = opts(&settings, SpotScope::Student(a), false);
            spot(
                &pool,
                &settings,
                &client(&settings),
                &TierMatrix::default(),
                &o,
            )
            .await
        }
    });
    until_someone_waits_for_a_lock(&pool).await;
    assert!(!task.is_finished(), "spot sync must wait for the run lock");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM sync_runs WHERE trigger = 'spot'"
        )
        .await,
        0
    );
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(sync::run_lock_key(&settings))
        .execute(&mut holder)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("spot finishes once the lock is free")
        .unwrap()
        .expect("spot succeeds");
    assert!(outcome.run_id > 0);
    fake.shutdown().await;
}

#[sqlx::test]
async fn an_unknown_student_is_an_answer_not_a_run(pool: PgPool) {
    first_night(&pool).await;
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    let runs_before = count(&pool, "SELECT count(*) FROM sync_runs").await;
    let err = spot(
        &pool,
        &settings,
        &client(&settings),
        &TierMatrix::default(),
        &opts(&settings, SpotScope::Student(424_242), false),
    )
    .await
    .expect_err("a DCID nobody knows is refused");
    let message = err.to_string();
    assert!(
        message.contains("DCID 424242") && message.contains("students.dcid"),
        "{message}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM sync_runs").await,
        runs_before,
        "no run recorded"
    );
}

#[sqlx::test]
async fn a_spot_sync_is_not_the_districts_latest_run(pool: PgPool) {
    // Health, start-up decisions and last-success read the latest full run:
    // one student's spot sync must not hide how the night went.
    let (a, _, _) = first_night(&pool).await;
    let nightly = student_sync::store::runs::latest_full_run(&pool)
        .await
        .unwrap()
        .expect("the first night is recorded");
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    let outcome = run_spot(
        &pool,
        &settings,
        &opts(&settings, SpotScope::Student(a), false),
    )
    .await;
    assert!(outcome.run_id > nightly.id);
    let latest = student_sync::store::runs::latest_full_run(&pool)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, nightly.id);
    let last = student_sync::store::runs::last_full_success(&pool)
        .await
        .unwrap()
        .expect("the nightly run succeeded");
    assert_eq!(last.id, nightly.id);
}
