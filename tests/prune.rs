#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Retention: pruning removes exactly the runs (and their problems) past
//! both limits, never the last successful full run nor a held or running
//! one, and the access audit only when a setting says so.

use chrono::{Duration, Utc};
use sqlx::PgPool;
use student_sync::config::RetentionSettings;
use student_sync::store::prune::{insert_finished_run, prune};
use student_sync::store::write::{self, ProblemRow};
use student_sync::store::{RunStatus, RunTrigger};

async fn past_run(pool: &PgPool, trigger: RunTrigger, status: RunStatus, days_ago: i64) -> i64 {
    insert_finished_run(pool, trigger, status, Utc::now() - Duration::days(days_ago))
        .await
        .unwrap()
}

async fn add_problems(pool: &PgPool, run_id: i64, n: usize) {
    let rows: Vec<ProblemRow> = (0..n)
        .map(|i| ProblemRow {
            kind: "record".into(),
            query: Some("students".into()),
            record_id: Some(format!("dcid {i}")),
            field: Some("grade_level".into()),
            value: Some("x".into()),
            message: "not a whole number".into(),
            about: None,
        })
        .collect();
    let mut tx = pool.begin().await.unwrap();
    write::insert_problems(&mut tx, &rows, run_id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn run_ids(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM sync_runs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn problems_of(pool: &PgPool) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT run_id, count(*) FROM run_problems GROUP BY run_id ORDER BY run_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn retention(keep_days: u32, keep_runs: u32, audit_keep_days: Option<u32>) -> RetentionSettings {
    RetentionSettings {
        keep_days,
        keep_runs,
        audit_keep_days,
    }
}

#[sqlx::test]
async fn pruning_removes_exactly_the_runs_past_both_limits(pool: PgPool) {
    use RunStatus::*;
    use RunTrigger::*;
    let r1 = past_run(&pool, Schedule, Succeeded, 200).await;
    let r2 = past_run(&pool, Schedule, Failed, 200).await;
    add_problems(&pool, r2, 2).await;
    let r3 = past_run(&pool, Schedule, Held, 150).await;
    let r4 = past_run(&pool, Manual, Discarded, 120).await;
    // The newest successful FULL run: a spot sync after it does not count.
    let r5 = past_run(&pool, Schedule, Succeeded, 100).await;
    add_problems(&pool, r5, 1).await;
    let r6 = past_run(&pool, Spot, Succeeded, 100).await;
    // Old, but among the newest four runs.
    let r7 = past_run(&pool, Schedule, Failed, 95).await;
    let r8 = past_run(&pool, Schedule, Failed, 10).await;
    add_problems(&pool, r8, 3).await;
    let r9 = past_run(&pool, Schedule, Failed, 5).await;
    let r10 = past_run(&pool, Resume, Interrupted, 1).await;

    let pruned = prune(&pool, &retention(90, 4, None)).await.unwrap();

    assert_eq!(pruned.runs, 4, "{pruned:?}");
    assert_eq!(pruned.problems, 2, "only run {r2}'s problems: {pruned:?}");
    assert_eq!((pruned.oldest_run, pruned.newest_run), (Some(r1), Some(r6)));
    assert_eq!(
        run_ids(&pool).await,
        vec![r3, r5, r7, r8, r9, r10],
        "kept: the held run, the last successful full run, the newest four"
    );
    assert_eq!(problems_of(&pool).await, vec![(r5, 1), (r8, 3)]);
    assert!(
        pruned.to_text().contains("pruned 4 runs"),
        "{}",
        pruned.to_text()
    );
    let _ = r4;

    // Nothing more past the limits: a second prune removes nothing.
    let again = prune(&pool, &retention(90, 4, None)).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(run_ids(&pool).await.len(), 6);
}

#[sqlx::test]
async fn a_run_within_either_limit_is_kept(pool: PgPool) {
    // Thirty-five runs a day apart, the newest yesterday: with the defaults
    // (90 days, at least 30 runs) nothing is old enough to go.
    for days in (1..=35).rev() {
        past_run(&pool, RunTrigger::Schedule, RunStatus::Failed, days).await;
    }
    let pruned = prune(&pool, &RetentionSettings::default()).await.unwrap();
    assert!(pruned.is_empty(), "{pruned:?}");
    assert_eq!(run_ids(&pool).await.len(), 35);

    // Keep 10 days: the runs older than that go, down to the newest 30.
    let pruned = prune(&pool, &retention(10, 30, None)).await.unwrap();
    assert_eq!(pruned.runs, 5, "{pruned:?}");
    assert_eq!(run_ids(&pool).await.len(), 30);
}

#[sqlx::test]
async fn a_running_run_is_never_pruned(pool: PgPool) {
    let old = past_run(&pool, RunTrigger::Schedule, RunStatus::Running, 400).await;
    for days in [300, 200] {
        past_run(&pool, RunTrigger::Schedule, RunStatus::Failed, days).await;
    }
    let pruned = prune(&pool, &retention(1, 1, None)).await.unwrap();
    assert_eq!(
        pruned.runs, 1,
        "the failed run beyond the newest one: {pruned:?}"
    );
    assert!(run_ids(&pool).await.contains(&old));
}

async fn audit_row(pool: &PgPool, days_ago: i64) {
    sqlx::query(
        "INSERT INTO access_audit (student_dcid, user_id, tier_after, reasons, recorded_at)
         VALUES (5001, 1, 'full', '{}'::jsonb, now() - make_interval(days => $1))",
    )
    .bind(days_ago as i32)
    .execute(pool)
    .await
    .unwrap();
}

async fn audit_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM access_audit")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn the_audit_is_kept_forever_unless_a_setting_says_otherwise(pool: PgPool) {
    for days in [3000, 1000, 400, 10, 0] {
        audit_row(&pool, days).await;
    }
    let kept = prune(&pool, &retention(1, 1, None)).await.unwrap();
    assert_eq!(kept.audit_rows, 0);
    assert_eq!(audit_count(&pool).await, 5, "forever by default");

    let pruned = prune(&pool, &retention(1, 1, Some(365))).await.unwrap();
    assert_eq!(pruned.audit_rows, 3, "{pruned:?}");
    assert_eq!(audit_count(&pool).await, 2);

    // Outside the prune the audit stays append-only.
    let refused = sqlx::query("DELETE FROM access_audit").execute(&pool).await;
    assert!(
        refused.unwrap_err().to_string().contains("append-only"),
        "a plain DELETE is still refused"
    );
    assert_eq!(audit_count(&pool).await, 2);
}

#[sqlx::test]
async fn a_successful_run_prunes_old_history_and_logs_what_went(pool: PgPool) {
    use student_sync::harness::fake_powerschool::{self, FakeCredentials, Faults};
    for days in [400, 300, 200] {
        let id = past_run(&pool, RunTrigger::Schedule, RunStatus::Failed, days).await;
        add_problems(&pool, id, 1).await;
    }
    let fake = fake_powerschool::spawn(
        fake_powerschool::generate(50, 2),
        FakeCredentials::default(),
        Faults::default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let creds = FakeCredentials::default();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"))
        .args(["run", "--now"])
        .env_remove("STUDENT_SYNC_CONFIG")
        .env("RUST_LOG", "info")
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{name}"),
        )
        .env("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url())
        .env("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", creds.client_id)
        .env(
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            creds.client_secret,
        )
        .env("STUDENT_SYNC_RETENTION_KEEP_DAYS", "100")
        .env("STUDENT_SYNC_RETENTION_KEEP_RUNS", "2")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The two oldest go; the third is among the newest two with the new run.
    let ids = run_ids(&pool).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    let problems = problems_of(&pool).await;
    assert_eq!(
        problems[0],
        (ids[0], 1),
        "the kept failed run's problem: {problems:?}"
    );
    assert!(
        problems.iter().all(|(run, _)| ids.contains(run)),
        "{problems:?}"
    );
    assert!(
        stderr.contains("pruned 2 runs") && stderr.contains("2 record problems"),
        "the prune is logged with what it removed: {stderr}"
    );
}

/// Problems belong to a run. The rule is checked once per statement (not
/// by a foreign key row by row, which took most of a large run's COPY of
/// its problems), and it holds on both sides.
#[sqlx::test]
async fn a_problem_belongs_to_a_run_that_is_there(pool: PgPool) {
    let run = past_run(&pool, RunTrigger::Schedule, RunStatus::Failed, 200).await;
    add_problems(&pool, run, 3).await;

    // Written for a run that is not there: the whole COPY fails.
    let mut tx = pool.begin().await.unwrap();
    let rows = vec![ProblemRow {
        kind: "record".into(),
        query: None,
        record_id: Some("dcid 1".into()),
        field: None,
        value: None,
        message: "x".into(),
        about: None,
    }];
    let err = write::insert_problems(&mut tx, &rows, run + 1000)
        .await
        .expect_err("no such run");
    let text = err.to_string();
    assert!(
        text.contains(&format!("run {}, which is not in sync_runs", run + 1000)),
        "{text}"
    );
    drop(tx);

    // A problem is not moved to a run that is not there; a run that has
    // problems is neither deleted nor given another id.
    for (statement, refusal) in [
        (
            "UPDATE run_problems SET run_id = run_id + 1000 WHERE run_id = $1",
            format!("run {}, which is not in sync_runs", run + 1000),
        ),
        (
            "DELETE FROM sync_runs WHERE id = $1",
            format!("run {run} still has problems in run_problems: delete its problems first"),
        ),
        (
            "UPDATE sync_runs SET id = id + 1000 WHERE id = $1",
            format!("never changes (run {run})"),
        ),
    ] {
        let refused = sqlx::query(statement).bind(run).execute(&pool).await;
        let text = refused.expect_err(statement).to_string();
        assert!(text.contains(&refusal), "{statement}: {text}");
    }
    assert_eq!(problems_of(&pool).await, vec![(run, 3)]);

    // Pruning deletes the problems first, and then the run.
    let newer = past_run(&pool, RunTrigger::Schedule, RunStatus::Failed, 0).await;
    let pruned = prune(&pool, &retention(1, 1, None)).await.unwrap();
    assert_eq!((pruned.runs, pruned.problems), (1, 3), "{pruned:?}");
    assert_eq!(run_ids(&pool).await, vec![newer]);
    assert!(problems_of(&pool).await.is_empty());
}
