#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Safe changes: a night whose plan crosses a safety threshold is held and
//! applies nothing; `approve` applies exactly the stored plan, and refuses
//! when the database changed underneath it; `discard` drops it; `plan`
//! writes nothing at all.

mod common;

use common::*;
use sqlx::{PgPool, Row};
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::harness::world::PowerSchoolSide;
use student_sync::store::{self, StoreError};
use student_sync::sync::{self, plan::Plan, SyncError};

fn district() -> PowerSchoolSide {
    fake_powerschool::generate(300, 11)
}

/// One md5 per table of the schema (live tables, run history, held plans,
/// problems, audit, migrations): equal means nothing at all was written.
async fn every_table(pool: &PgPool) -> Vec<(String, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "{tables:?}");
    let mut out = Vec::new();
    for t in tables {
        let h: String = sqlx::query_scalar(&format!(
            "SELECT COALESCE(md5(string_agg(t::text, '|' ORDER BY t::text)), 'empty') FROM {t} t"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((t, h));
    }
    out
}

/// Night 1 applies the district; night 2's PowerSchool returns no students.
async fn held_second_night(pool: &PgPool) -> (i64, String) {
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(pool, &settings, &client(&settings), &options(&settings))
        .await
        .expect("night 1 succeeds");
    fake.shutdown().await;

    let mut empty = district();
    empty.students.clear();
    let fake = start_fake(empty, Faults::default()).await;
    let settings = settings_for(&fake);
    let before = every_table(pool).await;
    let live_before = fingerprint(pool).await;
    let err = sync::run_once(pool, &settings, &client(&settings), &options(&settings))
        .await
        .expect_err("night 2 must be held");
    fake.shutdown().await;
    let (run_id, reason) = match err {
        SyncError::Held { run_id, reason } => (run_id, reason),
        other => panic!("expected a hold, got {other}"),
    };
    assert!(reason.contains("safety.students_leaving"), "{reason}");
    assert!(reason.contains("100.0%"), "{reason}");
    // Nothing live changed; only the run row and its stored plan were written.
    assert_eq!(fingerprint(pool).await, live_before);
    let after = every_table(pool).await;
    for ((t, a), (_, b)) in before.iter().zip(&after) {
        if t != "sync_runs" && t != "held_plans" {
            assert_eq!(a, b, "table {t} changed during a held run");
        }
    }
    (run_id, reason)
}

async fn status(pool: &PgPool, run_id: i64) -> (String, Option<String>) {
    let row = sqlx::query("SELECT status, decided_by FROM sync_runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(pool)
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[sqlx::test]
async fn a_second_night_with_no_students_is_held_and_applies_nothing(pool: PgPool) {
    let (run_id, reason) = held_second_night(&pool).await;
    let (st, decided) = status(&pool, run_id).await;
    assert_eq!(st, "held");
    assert_eq!(decided, None);
    let hold_reason: String = sqlx::query_scalar("SELECT hold_reason FROM sync_runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hold_reason, reason);
    assert_eq!(count(&pool, "SELECT count(*) FROM held_plans").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM students WHERE NOT in_sync_set").await,
        0
    );
    // What the daemon reports on /healthz and /metrics.
    let held = store::latest_held(&pool)
        .await
        .unwrap()
        .expect("a held run");
    assert_eq!(held.run_id, run_id);
    assert_eq!(held.reason, reason);
    // The error says what to do.
    let msg = SyncError::Held {
        run_id,
        reason: reason.clone(),
    }
    .to_string();
    assert!(
        msg.contains(&format!("student-sync approve {run_id}")),
        "{msg}"
    );
}

#[sqlx::test]
async fn approve_applies_exactly_the_stored_plan(pool: PgPool) {
    let (run_id, _) = held_second_night(&pool).await;
    // The fake is gone: approval cannot fetch again, it can only apply what is stored.
    let stored = store::held::load(&pool, run_id).await.unwrap();
    let plan: Plan = serde_json::from_slice(&stored.plan).unwrap();
    assert!(plan.students.update.len() > 200, "{:?}", plan.counts);

    let fake = start_fake(district(), Faults::default()).await; // only for valid settings
    let settings = settings_for(&fake);
    let report = sync::hold::approve(&pool, &settings, run_id, "approver-test")
        .await
        .expect("approval applies");
    fake.shutdown().await;
    assert_eq!(report.run_id, run_id);

    let (st, decided) = status(&pool, run_id).await;
    assert_eq!(st, "succeeded");
    assert_eq!(decided.as_deref(), Some("approver-test"));
    let decided_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT decided_at FROM sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(decided_at.is_some());
    assert_eq!(count(&pool, "SELECT count(*) FROM held_plans").await, 0);
    assert!(store::latest_held(&pool).await.unwrap().is_none());

    // Every student row is exactly the plan's row, written by this run.
    let stamped = count(
        &pool,
        &format!("SELECT count(*) FROM students WHERE last_changed_run = {run_id}"),
    )
    .await;
    assert_eq!(
        stamped as usize,
        plan.students.update.len() + plan.students.create.len()
    );
    for s in &plan.students.update {
        let in_set: bool = sqlx::query_scalar("SELECT in_sync_set FROM students WHERE dcid = $1")
            .bind(s.student.dcid)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(in_set, s.in_sync_set, "student {}", s.student.dcid);
    }
    let state = store::CurrentState::load(&pool).await.unwrap();
    for s in &plan.students.update {
        assert_eq!(state.students.get(&s.student.dcid), Some(s));
    }
    // Contacts and guardian links the plan removes are gone; connections
    // carry the plan's decision.
    for (dcid, person) in &plan.contacts.remove {
        assert!(!state.contacts.contains_key(&(*dcid, *person)));
    }
    assert_eq!(state.contacts.len(), 0);
    for c in &plan.connections {
        let id = c.before.as_ref().map(|b| b.id).unwrap();
        let now = state.connections.iter().find(|x| x.id == id);
        match c.kind {
            sync::plan::ConnectionChangeKind::Remove => assert!(now.is_none()),
            _ => assert_eq!(now.unwrap().tier, c.decision.tier),
        }
    }
    assert_eq!(
        count(
            &pool,
            &format!("SELECT count(*) FROM run_problems WHERE run_id = {run_id}")
        )
        .await as usize,
        plan.problems.len()
    );

    // A second approval is refused: the run is no longer held.
    let again = sync::hold::approve(&pool, &settings, run_id, "approver-test").await;
    assert!(
        matches!(again, Err(SyncError::Store(StoreError::NotHeld { .. }))),
        "{again:?}"
    );
}

#[sqlx::test]
async fn approve_after_the_database_changed_refuses_and_discard_drops(pool: PgPool) {
    let (run_id, _) = held_second_night(&pool).await;
    // SchoolEngage edits a user after the plan was made.
    sqlx::query("UPDATE users SET first_name = 'Renamed' WHERE id = (SELECT min(id) FROM users)")
        .execute(&pool)
        .await
        .unwrap();
    let before = every_table(&pool).await;
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    let err = sync::hold::approve(&pool, &settings, run_id, "approver-test")
        .await
        .expect_err("approval must be refused");
    fake.shutdown().await;
    assert!(
        matches!(err, SyncError::StateChanged { run_id: r } if r == run_id),
        "{err}"
    );
    assert!(err.to_string().contains("new run"), "{err}");
    assert_eq!(
        every_table(&pool).await,
        before,
        "a refused approval writes nothing"
    );
    assert_eq!(status(&pool, run_id).await.0, "held");

    sync::hold::discard(&pool, run_id, "discarder-test")
        .await
        .unwrap();
    let (st, decided) = status(&pool, run_id).await;
    assert_eq!(st, "discarded");
    assert_eq!(decided.as_deref(), Some("discarder-test"));
    assert_eq!(count(&pool, "SELECT count(*) FROM held_plans").await, 0);
    assert!(store::latest_held(&pool).await.unwrap().is_none());
    let again = sync::hold::discard(&pool, run_id, "x").await;
    assert!(matches!(
        again,
        Err(SyncError::Store(StoreError::NotHeld { .. }))
    ));
}

#[sqlx::test]
async fn a_held_run_whose_plan_is_gone_says_so_and_can_be_discarded(pool: PgPool) {
    let (run_id, _) = held_second_night(&pool).await;
    sqlx::query("DELETE FROM held_plans WHERE run_id = $1")
        .bind(run_id)
        .execute(&pool)
        .await
        .unwrap();
    let err = sync::hold::show(&pool, run_id).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Store(StoreError::HeldPlanMissing(r)) if r == run_id),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("`student-sync discard {run_id}`")),
        "the message says what to do: {err}"
    );
    sync::hold::discard(&pool, run_id, "on-call").await.unwrap();
    assert_eq!(status(&pool, run_id).await.0, "discarded");
}

#[sqlx::test]
async fn a_newer_successful_run_supersedes_a_held_one(pool: PgPool) {
    let (run_id, _) = held_second_night(&pool).await;
    // The next night PowerSchool is whole again and the run goes through.
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .expect("night 3 succeeds");
    assert!(store::latest_held(&pool).await.unwrap().is_none());
    let err = sync::hold::approve(&pool, &settings, run_id, "x")
        .await
        .unwrap_err();
    fake.shutdown().await;
    assert!(matches!(err, SyncError::Superseded { .. }), "{err}");
}

#[sqlx::test]
async fn plan_writes_nothing(pool: PgPool) {
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(&pool, &settings, &client(&settings), &options(&settings))
        .await
        .unwrap();
    fake.shutdown().await;

    // Night 2 would change names, drop a student and hold on an empty answer.
    let mut side = district();
    side.students[0].first_name = Some("Changed".into());
    side.students.remove(1);
    let fake = start_fake(side, Faults::default()).await;
    let settings = settings_for(&fake);
    let before = every_table(&pool).await;
    let preview = sync::preview(
        &pool,
        &settings,
        &client(&settings),
        options(&settings).today,
    )
    .await
    .unwrap();
    assert_eq!(every_table(&pool).await, before, "plan wrote something");
    assert!(preview.counts.students.updated >= 2, "{:?}", preview.counts);
    assert!(preview
        .changes
        .iter()
        .any(|c| c.kind == "student" && c.action == "leave"));
    assert!(preview
        .changes
        .iter()
        .any(|c| c.kind == "student" && c.action == "update" && c.reason.contains("Changed")));
    assert!(!preview.safety.holds());
    let text = preview.to_text(true);
    assert!(text.contains("nothing was written"), "{text}");
    assert!(text.contains("tier down"), "{text}");
    fake.shutdown().await;

    // An empty answer: the preview says a run would be held, and still writes nothing.
    let mut empty = district();
    empty.students.clear();
    let fake = start_fake(empty, Faults::default()).await;
    let settings = settings_for(&fake);
    let preview = sync::preview(
        &pool,
        &settings,
        &client(&settings),
        options(&settings).today,
    )
    .await
    .unwrap();
    fake.shutdown().await;
    assert!(preview.safety.holds());
    assert!(preview.to_text(false).contains("HOLD"));
    assert_eq!(every_table(&pool).await, before, "plan wrote something");
}

#[sqlx::test]
async fn the_binary_exits_3_on_a_held_run_and_plan_prints_a_summary(pool: PgPool) {
    let (run_id, _) = held_second_night(&pool).await;
    let mut empty = district();
    empty.students.clear();
    let fake = start_fake(empty, Faults::default()).await;
    let creds = student_sync::harness::fake_powerschool::FakeCredentials::default();
    let env = [
        ("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url()),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_ID",
            creds.client_id.clone(),
        ),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            creds.client_secret.clone(),
        ),
        ("DATABASE_URL", database_url(&pool).await),
        ("USER", "cli-tester".to_string()),
    ];
    let run = |args: &'static [&'static str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
        cmd.args(args).env_remove("STUDENT_SYNC_CONFIG");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd
    };
    let out = tokio::task::spawn_blocking({
        let mut c = run(&["sync", "--once"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("HELD"), "{stderr}");
    assert!(stderr.contains("safety.students_leaving"), "{stderr}");

    let out = tokio::task::spawn_blocking({
        let mut c = run(&["plan"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("HOLD"), "{stdout}");

    // Discard through the binary records the OS user.
    let newest: i64 = sqlx::query_scalar("SELECT max(id) FROM sync_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(newest > run_id);
    let out = tokio::task::spawn_blocking({
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
        c.args(["discard", &newest.to_string()])
            .env_remove("STUDENT_SYNC_CONFIG");
        for (k, v) in &env {
            c.env(k, v);
        }
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status(&pool, newest).await,
        ("discarded".into(), Some("cli-tester".into()))
    );
    fake.shutdown().await;
}
