#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! A run's problems are stored compactly and read back word for word: the
//! rules' findings as their kind and facts (no words), everything else and
//! every row of an older run as its words; `student-sync problems RUN` lists
//! them all.

mod common;

use common::*;
use sqlx::PgPool;
use std::collections::BTreeMap;
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::rules::problems::RuleProblem;
use student_sync::store::access::{run_problems, run_problems_of_kind};
use student_sync::store::write::ProblemRow;
use student_sync::store::RunTrigger;
use student_sync::sync::report::PROBLEMS_PER_KIND;
use student_sync::sync::{self, RunOptions, RunOutcome};

/// A generated district of `students` synced into an empty SchoolEngage:
/// most of its problems are the rules' findings.
async fn generated_night(pool: &PgPool, students: usize) -> RunOutcome {
    let fake = start_fake(fake_powerschool::generate(students, 7), Faults::default()).await;
    let settings = settings_for(&fake);
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    let outcome = sync::run_once(pool, &settings, &client(&settings), &options)
        .await
        .expect("the run succeeds");
    fake.shutdown().await;
    outcome
}

fn by_kind(problems: &[ProblemRow]) -> BTreeMap<&str, Vec<&ProblemRow>> {
    let mut kinds: BTreeMap<&str, Vec<&ProblemRow>> = BTreeMap::new();
    for p in problems {
        kinds.entry(&p.kind).or_default().push(p);
    }
    kinds
}

#[sqlx::test]
async fn rule_problems_are_stored_as_facts_in_at_most_200_bytes_a_row(pool: PgPool) {
    let outcome = generated_night(&pool, 400).await;
    let run = outcome.run_id;
    let total = count(
        &pool,
        &format!("SELECT count(*) FROM run_problems WHERE run_id = {run}"),
    )
    .await;
    let kinds = RuleProblem::KINDS.map(|k| format!("'{k}'")).join(", ");
    let rule = count(
        &pool,
        &format!("SELECT count(*) FROM run_problems WHERE run_id = {run} AND kind IN ({kinds})"),
    )
    .await;
    assert!(
        rule >= 50 && rule * 4 >= total * 3,
        "{rule} of {total}: mostly rule problems"
    );
    let worded = count(
        &pool,
        &format!(
            "SELECT count(*) FROM run_problems WHERE run_id = {run} AND kind IN ({kinds})
             AND (message IS NOT NULL OR record_id IS NOT NULL)"
        ),
    )
    .await;
    assert_eq!(worded, 0, "rule problems are stored without words");
    let row_bytes = count(
        &pool,
        &format!(
            "SELECT sum(pg_column_size(t.*))::bigint FROM run_problems t WHERE run_id = {run}"
        ),
    )
    .await;
    let average = row_bytes as f64 / total as f64;
    println!("{total} problems, {average:.0} bytes of row data each");
    assert!(average <= 200.0, "{average:.0} bytes a row on average");

    // Read back, each kind begins with the sample the report showed.
    let read = run_problems(&pool, run).await.unwrap();
    assert_eq!(read.len() as i64, total);
    let report = &outcome.report;
    let read_kinds = by_kind(&read);
    let shown_kinds = by_kind(&report.problems);
    assert_eq!(
        read_kinds.keys().collect::<Vec<_>>(),
        shown_kinds.keys().collect::<Vec<_>>()
    );
    for (kind, shown) in &shown_kinds {
        let read = &read_kinds[kind];
        assert_eq!(read.len() as u64, report.problem_counts[*kind], "{kind}");
        assert_eq!(
            &read[..shown.len().min(PROBLEMS_PER_KIND)],
            &shown[..],
            "{kind}"
        );
    }
    let only = run_problems_of_kind(&pool, run, Some("link_without_matching_contact"))
        .await
        .unwrap();
    assert_eq!(
        only.iter().collect::<Vec<_>>(),
        read_kinds["link_without_matching_contact"]
    );
}

#[sqlx::test]
async fn rows_stored_with_their_words_read_back_as_stored(pool: PgPool) {
    let outcome = generated_night(&pool, 20).await;
    let run = outcome.run_id;
    sqlx::query("DELETE FROM run_problems")
        .execute(&pool)
        .await
        .unwrap();
    // As a run before this version stored them: a rule finding with its
    // words, and a record the fetch could not read.
    sqlx::query(
        "INSERT INTO run_problems (run_id, kind, query, record_id, field, value, message) VALUES
         ($1, 'email_differs', NULL, 'user 7', NULL, NULL, 'user 7 logs in as a@x.org but …'),
         ($1, 'bad_record', 'students', 'dcid=5', 'grade_level', 'x', 'not a whole number')",
    )
    .bind(run)
    .execute(&pool)
    .await
    .unwrap();
    let read = run_problems(&pool, run).await.unwrap();
    let words = |kind: &str,
                 query: Option<&str>,
                 record: &str,
                 field: Option<&str>,
                 value: Option<&str>,
                 message: &str| ProblemRow {
        kind: kind.into(),
        query: query.map(Into::into),
        record_id: Some(record.into()),
        field: field.map(Into::into),
        value: value.map(Into::into),
        message: message.into(),
        about: None,
    };
    assert_eq!(
        read,
        [
            words(
                "email_differs",
                None,
                "user 7",
                None,
                None,
                "user 7 logs in as a@x.org but …"
            ),
            words(
                "bad_record",
                Some("students"),
                "dcid=5",
                Some("grade_level"),
                Some("x"),
                "not a whole number"
            ),
        ]
    );
}

#[sqlx::test]
async fn only_a_kind_the_renderer_knows_is_stored_without_words(pool: PgPool) {
    let outcome = generated_night(&pool, 20).await;
    let refused = sqlx::query(
        "INSERT INTO run_problems (run_id, kind, record_id, student_dcid) VALUES ($1, 'bad_record', 'dcid=5', 5)",
    )
    .bind(outcome.run_id)
    .execute(&pool)
    .await;
    let e = refused.expect_err("a problem of another kind needs its words");
    assert!(e.to_string().contains("run_problems_words_or_facts"), "{e}");
    // A rule kind without the facts it is worded from is named when read.
    sqlx::query(
        "INSERT INTO run_problems (run_id, kind, student_dcid) VALUES ($1, 'orphaned_from_powerschool', 5)",
    )
    .bind(outcome.run_id)
    .execute(&pool)
    .await
    .unwrap();
    let e = run_problems(&pool, outcome.run_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kind orphaned_from_powerschool") && e.contains("run_problems row"),
        "{e}"
    );
    assert!(
        e.contains("SELECT * FROM run_problems WHERE id =") && !e.contains("rolled back"),
        "names the row and how to read it, and claims no rolled-back run: {e}"
    );
}

async fn binary(args: &[&str], database_url: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"))
        .args(args)
        .env_remove("STUDENT_SYNC_CONFIG")
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("binary runs")
}

#[sqlx::test]
async fn the_problems_command_lists_every_problem_of_a_run(pool: PgPool) {
    let outcome = generated_night(&pool, 400).await;
    let run = outcome.run_id.to_string();
    let url = database_url(&pool).await;
    let all = run_problems(&pool, outcome.run_id).await.unwrap();

    let text = binary(&["problems", &run], &url).await;
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "Run {run}: every problem it recorded\nProblems ({}):\n",
            all.len()
        )),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("    - ")).count(),
        all.len(),
        "{text}"
    );
    for p in &all {
        assert!(text.contains(&format!("    - {}\n", p.message)), "{text}");
    }
    assert!(!text.contains("more ("), "nothing is left out: {text}");

    let kind = "link_without_matching_contact";
    let json = binary(&["problems", &run, "--kind", kind, "--json"], &url).await;
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let want: Vec<&ProblemRow> = all.iter().filter(|p| p.kind == kind).collect();
    assert!(!want.is_empty());
    assert_eq!(
        json,
        serde_json::json!({"run_id": outcome.run_id, "kind": kind, "problems": want})
    );

    let missing = binary(&["problems", "999999"], &url).await;
    assert!(!missing.status.success());
    let e = String::from_utf8_lossy(&missing.stderr);
    assert!(e.contains("run 999999 does not exist"), "{e}");
}

/// A finding whose facts cannot be stored as they are (a NUL in an email:
/// PostgreSQL text cannot hold it) is stored with its words, rendered from
/// its facts at that moment and escaped, so it reads back as the report
/// showed it.
#[sqlx::test]
async fn a_finding_whose_facts_cannot_be_stored_is_stored_with_its_words(pool: PgPool) {
    let outcome = generated_night(&pool, 20).await;
    sqlx::query("DELETE FROM run_problems")
        .execute(&pool)
        .await
        .unwrap();
    let finding = ProblemRow::from(RuleProblem::EmailDiffers {
        user_id: 7,
        login: "login@example.com".into(),
        powerschool_email: "ps\u{0}@example.com".into(),
    });
    let shown = finding.clone().worded();
    assert!(
        shown.message.contains("ps\\u{0000}@example.com"),
        "{}",
        shown.message
    );
    let mut tx = pool.begin().await.unwrap();
    student_sync::store::write::insert_problems(&mut tx, &[finding], outcome.run_id)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let stored: (Option<String>, Option<String>, Option<i64>) =
        sqlx::query_as("SELECT record_id, message, user_id FROM run_problems")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        (shown.record_id.clone(), Some(shown.message.clone()), None)
    );
    let read = run_problems(&pool, outcome.run_id).await.unwrap();
    assert_eq!(
        (&read[0].record_id, &read[0].message),
        (&shown.record_id, &shown.message)
    );
}
