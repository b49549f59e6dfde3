#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The access audit stores codes and ids, not sentences (issue 13): a run's
//! rows are at most 200 bytes on average, every fixture world's rows are
//! stored as codes (none falls back to sentences), a row written before
//! (sentences, no codes) reads back as it is, and codes that cannot be read
//! name the row. That the codes read back word for word is
//! `tests/golden_text.rs`.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::harness::fake_powerschool;
use student_sync::harness::seed;
use student_sync::harness::world::World;
use student_sync::store::access::audit_history;
use student_sync::sync;

/// (rows, average bytes of row data, rows stored as sentences) of a run's audit.
async fn audit_size(pool: &PgPool, run_id: i64) -> (i64, i64, i64) {
    let row: (i64, Option<i64>, i64) = sqlx::query_as(
        "SELECT count(*), (sum(pg_column_size(t.*)) / greatest(count(*), 1))::bigint,
                count(*) FILTER (WHERE reason_codes IS NULL)
         FROM access_audit t WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await
    .unwrap();
    (row.0, row.1.unwrap_or(0), row.2)
}

async fn run_world(pool: &PgPool, world: &World) -> i64 {
    seed::seed_world(pool, &world.schoolengage).await.unwrap();
    let (fake, settings, options) = world_setup(world).await;
    let outcome = sync::run_once(pool, &settings, &client(&settings), &options)
        .await
        .unwrap();
    fake.shutdown().await;
    outcome.run_id
}

#[sqlx::test]
async fn a_runs_audit_rows_are_at_most_200_bytes_on_average(pool: PgPool) {
    let world = World {
        powerschool: fake_powerschool::generate(400, 7),
        ..World::default()
    };
    let run_id = run_world(&pool, &world).await;
    let (rows, average, as_sentences) = audit_size(&pool, run_id).await;
    assert!(
        rows > 200,
        "a district with many connections: {rows} audit rows"
    );
    assert_eq!(as_sentences, 0, "every row is stored as codes");
    let sample: Vec<(String, i32)> = sqlx::query_as(
        "SELECT reason_codes::text, pg_column_size(t.*) FROM access_audit t ORDER BY id LIMIT 5",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        average <= 200,
        "{average} bytes a row on average: {sample:#?}"
    );
    // And every row reads back into sentences.
    let (dcid, user): (i64, i64) =
        sqlx::query_as("SELECT student_dcid, user_id FROM access_audit ORDER BY id LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let history = audit_history(&pool, dcid, user).await.unwrap();
    let verdicts = history[0].reasons["verdicts"].as_array().unwrap();
    assert!(verdicts.len() >= 6, "{:#}", history[0].reasons);
    assert!(verdicts
        .iter()
        .all(|v| v["detail"].as_str().unwrap().len() > 20));
}

#[sqlx::test]
async fn every_fixture_worlds_audit_is_stored_as_codes(pool: PgPool) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/worlds");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut rows = 0;
    for path in files {
        sqlx::query(
            "TRUNCATE access_audit, run_problems, connections, forms, users, students,
                      student_contacts, guardian_accounts, sync_runs RESTART IDENTITY CASCADE",
        )
        .execute(&pool)
        .await
        .unwrap();
        let world = World::load(&path).unwrap();
        let run_id = run_world(&pool, &world).await;
        let (n, _, as_sentences) = audit_size(&pool, run_id).await;
        assert_eq!(
            as_sentences,
            0,
            "{}: rows stored as sentences",
            path.display()
        );
        rows += n;
    }
    assert!(rows > 30, "the worlds write audit rows: {rows}");
}

#[sqlx::test]
async fn a_row_written_before_the_codes_reads_back_as_it_is(pool: PgPool) {
    let reasons = serde_json::json!({
        "action": "create", "case": "created", "case_letter": "B2", "guardian_id": 9001,
        "limits": [], "verdicts": [{"rule": "R1", "passed": true, "detail": "Written long ago."}]
    });
    sqlx::query(
        "INSERT INTO access_audit (student_dcid, user_id, tier_after, case_after, reasons)
         VALUES (5001, 7, 'full', 'created', $1)",
    )
    .bind(&reasons)
    .execute(&pool)
    .await
    .unwrap();
    let history = audit_history(&pool, 5001, 7).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].reasons, reasons);
}

#[sqlx::test]
async fn codes_that_cannot_be_read_name_the_row(pool: PgPool) {
    sqlx::query(
        "INSERT INTO access_audit (student_dcid, user_id, tier_after, case_after, reason_codes)
         VALUES (5001, 7, 'full', 'created', '[9001, null, \"zz\"]')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = audit_history(&pool, 5001, 7).await.unwrap_err().to_string();
    assert!(
        err.contains("access audit row 1 (student 5001, user 7)"),
        "{err}"
    );
    assert!(err.contains("unknown code \"zz\""), "{err}");
}

#[sqlx::test]
async fn a_row_needs_its_reasons_in_one_form_or_the_other(pool: PgPool) {
    let refused = sqlx::query(
        "INSERT INTO access_audit (student_dcid, user_id, tier_after) VALUES (5001, 7, 'full')",
    )
    .execute(&pool)
    .await;
    assert!(refused.is_err(), "a row without reasons is refused");
}
