#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! A night whose problems are exactly the last night's stores none of its
//! own: its run points at the run that stores them (migration 0010), and
//! reading its problems, the report's pointer to them and `prune` all
//! follow. A night with other problems stores its own.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::config::RetentionSettings;
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::store::access::{run_problems, run_problems_of_kind};
use student_sync::store::prune::{prune, Pruned};
use student_sync::store::RunTrigger;
use student_sync::sync::{self, RunOptions};

/// Every run but `kept` made a year old, then pruned keeping one run;
/// returns what went and the runs left.
async fn prune_all_but(pool: &PgPool, kept: i64) -> (Pruned, Vec<i64>) {
    sqlx::query("UPDATE sync_runs SET started_at = now() - interval '400 days' WHERE id <> $1")
        .bind(kept)
        .execute(pool)
        .await
        .unwrap();
    let retention = RetentionSettings {
        keep_days: 30,
        keep_runs: 1,
        audit_keep_days: None,
    };
    let pruned = prune(pool, &retention).await.unwrap();
    let left = sqlx::query_scalar("SELECT id FROM sync_runs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    (pruned, left)
}

/// The problem rows stored under the run's own id.
async fn stored_under(pool: &PgPool, run: i64) -> i64 {
    count(
        pool,
        &format!("SELECT count(*) FROM run_problems WHERE run_id = {run}"),
    )
    .await
}

async fn problems_stored_by(pool: &PgPool, run: i64) -> Option<i64> {
    sqlx::query_scalar("SELECT problems_stored_by FROM sync_runs WHERE id = $1")
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn quiet_nights_share_the_problems_of_the_run_that_stored_them(pool: PgPool) {
    let side = fake_powerschool::generate(400, 7);
    let first = sync_side(&pool, &side).await;
    let second = sync_side(&pool, &side).await;
    let third = sync_side(&pool, &side).await;
    let (a, b, c) = (first.run_id, second.run_id, third.run_id);

    let stored = stored_under(&pool, a).await;
    assert!(stored > 0, "the district has problems");
    assert_eq!(
        (stored_under(&pool, b).await, stored_under(&pool, c).await),
        (0, 0)
    );
    // Each points at the run that stores them, never at one that points on.
    assert_eq!(problems_stored_by(&pool, a).await, None);
    assert_eq!(problems_stored_by(&pool, b).await, Some(a));
    assert_eq!(problems_stored_by(&pool, c).await, Some(a));

    // Read back as the first run's, word for word, and counted alike.
    let (of_a, of_c) = (
        run_problems(&pool, a).await.unwrap(),
        run_problems(&pool, c).await.unwrap(),
    );
    assert_eq!(of_c, of_a);
    assert_eq!(of_c.len() as i64, stored);
    assert_eq!(third.report.problem_counts, first.report.problem_counts);
    // The report sends the reader to the command, which follows the pointer.
    let text = third.report.to_text();
    assert!(
        text.contains(&format!("see `student-sync problems {c}`")),
        "{text}"
    );
}

#[sqlx::test]
async fn a_night_with_other_problems_stores_its_own(pool: PgPool) {
    let mut side = fake_powerschool::generate(400, 7);
    let first = sync_side(&pool, &side).await;
    side.students[0].orgemail = Some("not-an-email".into());
    let changed = sync_side(&pool, &side).await;
    let quiet = sync_side(&pool, &side).await;
    let (a, b, c) = (first.run_id, changed.run_id, quiet.run_id);

    assert_eq!(problems_stored_by(&pool, b).await, None);
    assert_eq!(
        stored_under(&pool, b).await,
        stored_under(&pool, a).await + 1,
        "one more problem: the student without a login"
    );
    let without_login = |problems: &[student_sync::store::write::ProblemRow]| {
        problems
            .iter()
            .filter(|p| p.kind == "student_without_login")
            .count()
    };
    let of_b = run_problems(&pool, b).await.unwrap();
    let of_a = run_problems(&pool, a).await.unwrap();
    assert_eq!(without_login(&of_b), without_login(&of_a) + 1);
    // The night after shares the changed night's.
    assert_eq!(problems_stored_by(&pool, c).await, Some(b));
    assert_eq!(run_problems(&pool, c).await.unwrap(), of_b);
}

#[sqlx::test]
async fn prune_keeps_a_run_while_a_later_run_shares_its_problems(pool: PgPool) {
    let side = fake_powerschool::generate(400, 7);
    let runs = [
        sync_side(&pool, &side).await.run_id,
        sync_side(&pool, &side).await.run_id,
        sync_side(&pool, &side).await.run_id,
    ];
    let [a, b, c] = runs;
    let stored = stored_under(&pool, a).await;
    let (pruned, left) = prune_all_but(&pool, c).await;
    // `b` goes; `a` stays for `c`, with every one of its problems.
    assert_eq!((pruned.runs, pruned.problems), (1, 0));
    assert_eq!(left, vec![a, c], "{b} pruned");
    assert_eq!(run_problems(&pool, c).await.unwrap().len() as i64, stored);

    // Nothing else can remove it while `c` points at it, even with its
    // problems removed first.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM run_problems WHERE run_id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap();
    let refused = sqlx::query("DELETE FROM sync_runs WHERE id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("sync_runs_problems_stored_by_fkey"),
        "{refused}"
    );
    tx.rollback().await.unwrap();
}

#[sqlx::test]
async fn a_failed_night_between_quiet_nights_changes_nothing_shared(pool: PgPool) {
    let side = fake_powerschool::generate(400, 7);
    let first = sync_side(&pool, &side).await.run_id;
    let fake = start_fake(side.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    let mut options = RunOptions::now(&settings, RunTrigger::Manual);
    options.fail_point = Some(sync::FailPoint::BeforeCommit);
    let failed = sync::run_once(&pool, &settings, &client(&settings), &options).await;
    assert!(failed.is_err());
    fake.shutdown().await;
    let failed_run: i64 = sqlx::query_scalar("SELECT max(id) FROM sync_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(problems_stored_by(&pool, failed_run).await, None);
    assert_eq!(stored_under(&pool, failed_run).await, 0);

    let after = sync_side(&pool, &side).await.run_id;
    assert_eq!(problems_stored_by(&pool, after).await, Some(first));
    // One kind, read through the pointer.
    let kind = "link_without_matching_contact";
    let of_kind = run_problems_of_kind(&pool, after, Some(kind))
        .await
        .unwrap();
    assert!(!of_kind.is_empty());
    assert_eq!(
        of_kind,
        run_problems_of_kind(&pool, first, Some(kind))
            .await
            .unwrap()
    );
}

#[sqlx::test]
async fn prune_removes_the_storing_run_once_no_run_shares_its_problems(pool: PgPool) {
    let mut side = fake_powerschool::generate(400, 7);
    let a = sync_side(&pool, &side).await.run_id;
    let b = sync_side(&pool, &side).await.run_id;
    side.students[0].orgemail = Some("not-an-email".into());
    let c = sync_side(&pool, &side).await.run_id;
    assert_eq!(problems_stored_by(&pool, b).await, Some(a));
    assert_eq!(problems_stored_by(&pool, c).await, None);
    // `b` first (it points at `a`), then `a`, in the same prune.
    let (pruned, left) = prune_all_but(&pool, c).await;
    assert_eq!(pruned.runs, 2);
    assert_eq!(left, vec![c]);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM run_problems WHERE run_id <> (SELECT max(id) FROM sync_runs)"
        )
        .await,
        0
    );
}

#[sqlx::test]
async fn a_run_without_problems_shares_nothing(pool: PgPool) {
    use student_sync::store::runs;
    use student_sync::store::write::insert_problems;
    let night_of = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = runs::start_run(&pool, RunTrigger::Manual, night_of)
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        insert_problems(&mut tx, &[], id).await.unwrap();
        let empty = serde_json::json!({});
        runs::finish_succeeded(&mut tx, id, &empty, &empty)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ids.push(id);
    }
    assert_eq!(problems_stored_by(&pool, ids[1]).await, None);
    assert!(run_problems(&pool, ids[1]).await.unwrap().is_empty());
}
