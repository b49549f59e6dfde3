#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! A bad record never costs the night: NUL and control characters, a year-0
//! date, an overlong email, a decomposed capital in an email and a token
//! lifetime of 2^64 - 1 seconds each give a successful run (through the fake
//! PowerSchool and real PostgreSQL), and the report names the records.

mod common;

use common::records::{account, contact, student};
use common::*;
use sqlx::{PgPool, Row};
use student_sync::harness::fake_powerschool::Faults;
use student_sync::harness::world::{PowerSchoolSide, WorldSchool};
use student_sync::store::RunTrigger;
use student_sync::sync::{self, RunOptions, RunOutcome};

/// Four students of school 101, each with one decision-making contact and a
/// Parent Portal account of the same email.
fn four_families() -> PowerSchoolSide {
    let dcids = [5001, 5002, 5003, 5004];
    PowerSchoolSide {
        schools: vec![WorldSchool {
            school_number: 101,
            name: "North".into(),
        }],
        students: dcids.iter().map(|d| student(*d, 101, 0)).collect(),
        contacts: dcids
            .iter()
            .enumerate()
            .map(|(i, d)| contact(*d, i as i64 + 1, 1))
            .collect(),
        guardian_accounts: dcids
            .iter()
            .enumerate()
            .map(|(i, d)| account(11 + i as i64, *d, &format!("p{}@example.com", i + 1), false))
            .collect(),
    }
}

async fn night(pool: &PgPool, side: &PowerSchoolSide, faults: Faults) -> RunOutcome {
    let fake = start_fake(side.clone(), faults).await;
    let settings = settings_for(&fake);
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    let outcome = sync::run_once(pool, &settings, &client(&settings), &options)
        .await
        .expect("the run succeeds");
    fake.shutdown().await;
    outcome
}

fn problem_of<'a>(
    outcome: &'a RunOutcome,
    record_id: &str,
    field: &str,
) -> &'a student_sync::store::write::ProblemRow {
    outcome
        .report
        .problems
        .iter()
        .find(|p| p.record_id.as_deref() == Some(record_id) && p.field.as_deref() == Some(field))
        .unwrap_or_else(|| {
            panic!(
                "no problem for {record_id} {field}: {:#?}",
                outcome.report.problems
            )
        })
}

#[sqlx::test]
async fn bad_values_are_per_record_problems_and_the_run_succeeds(pool: PgPool) {
    let mut side = four_families();
    side.guardian_accounts[0].first_name = Some("Pat\u{0}Lee".into());
    side.students[1].entrydate = Some("0000-01-01".into());
    let long_email = format!("{}@example.com", "a".repeat(3000));
    side.contacts[2].email = Some(long_email.clone());
    side.students[3].last_name = Some("Lee\u{7}\u{1b}[31m".into());
    // Invisible bidi and zero-width characters in a name are stripped.
    side.guardian_accounts[3].last_name = Some("\u{202E}Ng\u{200B}uyen".into());

    let outcome = night(&pool, &side, Faults::default()).await;
    let report = &outcome.report;
    assert_eq!(
        report.problem_counts.get("bad_record"),
        Some(&4),
        "{report:#?}"
    );

    let name = problem_of(&outcome, "guardianid=11, studentsdcid=5001", "firstname");
    assert_eq!(name.value.as_deref(), Some("Pat\\u{0000}Lee"));
    assert!(
        name.message.contains("control character U+0000"),
        "{}",
        name.message
    );
    let date = problem_of(&outcome, "dcid=5002", "entrydate");
    assert_eq!(date.value.as_deref(), Some("0000-01-01"));
    assert!(
        date.message.contains("1900-01-01 to 2200-12-31"),
        "{}",
        date.message
    );
    let email = problem_of(&outcome, "studentsdcid=5003, personid=3", "email");
    assert!(
        email.message.contains("3012 bytes long; at most 254"),
        "{}",
        email.message
    );
    assert_eq!(
        email.value.as_ref().unwrap().chars().count(),
        201,
        "cut to 200 and …"
    );
    let control = problem_of(&outcome, "dcid=5004", "last_name");
    assert_eq!(control.value.as_deref(), Some("Lee\\u{0007}\\u{001b}[31m"));

    // Every record was kept; only the refused values are empty.
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE in_sync_set),
                (SELECT entry_date IS NULL FROM students WHERE dcid = 5002),
                (SELECT last_name FROM students WHERE dcid = 5004)
         FROM students",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>(0), 4);
    assert!(row.get::<bool, _>(1));
    assert_eq!(row.get::<Option<String>, _>(2), None);
    let names: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT guardian_id, first_name, last_name FROM guardian_accounts ORDER BY guardian_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(names.len(), 4);
    assert_eq!(names[0].1, None);
    assert_eq!(names[3].2.as_deref(), Some("Nguyen"));
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT email FROM student_contacts WHERE student_dcid = 5003 AND person_id = 3",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, None);
    // The problems the database keeps are the report's, shortened.
    let longest: i32 =
        sqlx::query_scalar("SELECT max(char_length(value)) FROM run_problems WHERE run_id = $1")
            .bind(outcome.run_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(longest, 201);

    // The next night with the same answer succeeds and changes nothing.
    let second = night(&pool, &side, Faults::default()).await;
    let c = &second.report.counts;
    assert_eq!(
        (
            c.students.updated,
            c.contacts.updated,
            c.guardian_accounts.updated
        ),
        (0, 0, 0),
        "{c:?}"
    );
    assert_eq!(second.report.problem_counts.get("bad_record"), Some(&4));
}

#[sqlx::test]
async fn a_report_lists_twenty_problems_per_kind_and_counts_them_all(pool: PgPool) {
    let mut side = four_families();
    // 30 students without a usable login: one kind, 30 problems.
    for dcid in 6001..6031 {
        let mut s = student(dcid, 101, 0);
        s.orgemail = Some(format!("not-an-email-{dcid}"));
        side.students.push(s);
    }
    let outcome = night(&pool, &side, Faults::default()).await;
    let report = &outcome.report;
    assert_eq!(
        report.problem_counts.get("student_without_login"),
        Some(&30)
    );
    let listed = report
        .problems
        .iter()
        .filter(|p| p.kind == "student_without_login")
        .count();
    assert_eq!(listed, 20);
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["problem_counts"]["student_without_login"], 30);
    let text = report.to_text();
    assert!(text.contains("student_without_login (30):"), "{text}");
    assert!(
        text.contains(&format!(
            "… and 10 more (see `student-sync problems {}`)",
            outcome.run_id
        )),
        "{text}"
    );
    // Every one of them is kept in the database.
    let stored = count(
        &pool,
        &format!(
            "SELECT count(*) FROM run_problems WHERE run_id = {} AND kind = 'student_without_login'",
            outcome.run_id
        ),
    )
    .await;
    assert_eq!(stored, 30);
}

#[sqlx::test]
async fn a_decomposed_capital_in_an_email_syncs_night_after_night(pool: PgPool) {
    // "J" + combining caron: lower-casing gives "j" + caron, which NFC then
    // composes into one letter (U+01F0). Two siblings share the parent.
    let email = "J\u{30C}ane@example.com";
    let mut side = four_families();
    side.students.truncate(2);
    side.contacts = vec![contact(5001, 1, 1), contact(5002, 1, 1)];
    side.guardian_accounts = vec![
        account(11, 5001, email, false),
        account(11, 5002, email, false),
    ];
    for c in &mut side.contacts {
        c.email = Some(email.into());
    }
    let first = night(&pool, &side, Faults::default()).await;
    assert_eq!(
        first.report.counts.users.created, 1,
        "{:?}",
        first.report.counts
    );
    let second = night(&pool, &side, Faults::default()).await;
    let c = &second.report.counts;
    assert_eq!((c.users.created, c.connections.created), (0, 0), "{c:?}");
    let users: Vec<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(users, ["\u{1F0}ane@example.com"]);
    assert_eq!(count(&pool, "SELECT count(*) FROM connections").await, 2);
}

#[sqlx::test]
async fn a_token_lifetime_of_two_to_the_sixty_four_syncs(pool: PgPool) {
    let faults = Faults {
        token_expires_in: Some("18446744073709551615".into()),
        ..Faults::default()
    };
    let fake = start_fake(four_families(), faults).await;
    let settings = settings_for(&fake);
    let client = client(&settings);
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    sync::run_once(&pool, &settings, &client, &options)
        .await
        .expect("night 1 succeeds");
    // The same client again: the (clamped) token is still good, not renewed.
    sync::run_once(&pool, &settings, &client, &options)
        .await
        .expect("night 2 succeeds");
    assert_eq!(fake.stats().token_requests, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM students").await, 4);
    fake.shutdown().await;
}
