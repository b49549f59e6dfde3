#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The PowerSchool client against the fake server over real HTTP: every
//! record exactly once at any page size, token renewal, retries of 500s, 429s
//! and cut-off pages, bad records as problems, raw columns from `run_query`,
//! flat guardian records, and the errors an on-call engineer sees (a query
//! that keeps failing, bad credentials, a query not installed, guardian
//! emails under an unknown column). Fetching a whole district (schools in
//! parallel, a capped page size, throttling) is tested in
//! tests/powerschool_district.rs. The shapes the fake does not serve (nested
//! records, a missing `record`, one school as an object, 403, a capped page
//! size, ...) are tested against a tiny axum server in
//! tests/powerschool_shapes.rs.

mod common;

use common::client_setup::{fake, guardian, settings};
use common::records::{contact, student};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::{BTreeSet, HashSet};
use student_sync::config::Secret;
use student_sync::harness::fake_powerschool::{generate, Faults, FieldOverride};
use student_sync::harness::world::{PowerSchoolSide, WorldSchool};
use student_sync::powerschool::{
    PowerSchoolClient, PowerSchoolError, CONTACTS_QUERY, GUARDIANS_QUERY, SCHOOLS_QUERY,
    STUDENTS_QUERY,
};
use student_sync::store::RunTrigger;
use student_sync::sync::{self, RunOptions};

/// One school (101) with `n` active students, each with one guardian account.
fn one_school(n: i64) -> PowerSchoolSide {
    PowerSchoolSide {
        schools: vec![WorldSchool {
            school_number: 101,
            name: "Riverside".to_string(),
        }],
        students: (0..n).map(|i| student(5000 + i, 101, 0)).collect(),
        contacts: Vec::new(),
        guardian_accounts: (0..n).map(|i| guardian(1 + i, 5000 + i, false)).collect(),
    }
}

fn guardian_keys(n: i64) -> BTreeSet<(i64, i64)> {
    (0..n).map(|i| (1 + i, 5000 + i)).collect()
}

async fn all_guardian_keys(client: &PowerSchoolClient) -> Vec<(i64, i64)> {
    let result = client.guardians().await.expect("guardians fetched");
    assert!(result.problems.is_empty(), "{:?}", result.problems);
    result
        .records
        .iter()
        .map(|g| (g.guardian_id, g.student_dcid))
        .collect()
}

/// Every key once, and nothing else.
fn assert_exactly(got: Vec<(i64, i64)>, want: &BTreeSet<(i64, i64)>) {
    let set: BTreeSet<_> = got.iter().copied().collect();
    assert_eq!(got.len(), set.len(), "duplicates arrived");
    assert_eq!(&set, want);
}

#[tokio::test]
async fn every_record_arrives_exactly_once_at_any_page_size() {
    let running = fake(one_school(2500), Faults::default()).await;
    let want = guardian_keys(2500);
    let want_students: BTreeSet<i64> = (0..2500).map(|i| 5000 + i).collect();
    for page_size in [1, 7, 100, 1000] {
        let client = PowerSchoolClient::new(&settings(&running.base_url(), page_size)).unwrap();
        assert_exactly(all_guardian_keys(&client).await, &want);

        let students = client.students(101).await.unwrap();
        assert!(students.problems.is_empty(), "{:?}", students.problems);
        let dcids: Vec<i64> = students.records.iter().map(|s| s.dcid).collect();
        assert_eq!(dcids.len(), 2500, "page size {page_size}");
        assert_eq!(
            dcids.iter().copied().collect::<BTreeSet<_>>(),
            want_students
        );
        assert!(students.records.iter().all(|s| s.school_number == 101));
        assert_eq!(students.expected_count, Some(2500));
        assert_eq!(client.stats().retries, 0);
    }
    running.shutdown().await;
}

#[tokio::test]
async fn a_token_that_expires_mid_run_is_renewed() {
    // Each token answers 25 data requests, then the fake refuses it (401,
    // "expired"): the fetch of 120 pages outlives several tokens however
    // fast or slow the machine, and the count of token generations is
    // exact, with no clock involved.
    let faults = Faults {
        token_uses: Some(25),
        ..Faults::default()
    };
    let running = fake(one_school(1200), faults).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 10)).unwrap();
    assert_exactly(all_guardian_keys(&client).await, &guardian_keys(1200));
    let stats = client.stats();
    let fake_stats = running.stats();
    let answered = fake_stats.page_requests + fake_stats.count_requests - fake_stats.answered_401;
    assert!(stats.pages_fetched >= 120, "{stats:?}");
    // One generation per 25 answered requests: renewed exactly when needed,
    // once per expiry even with three requests in flight.
    assert_eq!(
        fake_stats.token_requests,
        answered.div_ceil(25),
        "{fake_stats:?}"
    );
    assert!(fake_stats.token_requests >= 5, "{fake_stats:?}");
    assert_eq!(stats.token_requests, fake_stats.token_requests);
    assert!(fake_stats.answered_401 >= fake_stats.token_requests - 1);
    running.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_and_counted() {
    let faults = Faults {
        fail_first: 3,
        rate_limit_first: 2,
        retry_after_secs: 0,
        ..Faults::default()
    };
    let running = fake(one_school(500), faults).await;
    let mut s = settings(&running.base_url(), 50);
    s.max_attempts = 8;
    let client = PowerSchoolClient::new(&s).unwrap();
    let result = client.guardians().await.unwrap();
    let keys = result
        .records
        .iter()
        .map(|g| (g.guardian_id, g.student_dcid))
        .collect();
    assert_exactly(keys, &guardian_keys(500));
    let stats = client.stats();
    assert_eq!(stats.server_errors, 3, "{stats:?}");
    assert_eq!(stats.rate_limited, 2, "{stats:?}");
    assert_eq!(stats.retries, 5, "{stats:?}");
    assert_eq!(result.retries, 5);
    let fake_stats = running.stats();
    assert_eq!((fake_stats.answered_500, fake_stats.answered_429), (3, 2));
    running.shutdown().await;
}

#[tokio::test]
async fn random_server_errors_are_retried() {
    let faults = Faults {
        error_rate: 0.2,
        rate_limit_rate: 0.1,
        retry_after_secs: 0,
        seed: 7,
        ..Faults::default()
    };
    let running = fake(one_school(800), faults).await;
    let mut s = settings(&running.base_url(), 20);
    s.max_attempts = 12;
    let client = PowerSchoolClient::new(&s).unwrap();
    assert_exactly(all_guardian_keys(&client).await, &guardian_keys(800));
    let stats = client.stats();
    let fake_stats = running.stats();
    assert!(
        stats.server_errors > 0 && stats.rate_limited > 0,
        "{stats:?}"
    );
    assert_eq!(stats.server_errors, fake_stats.answered_500);
    assert_eq!(stats.rate_limited, fake_stats.answered_429);
    assert_eq!(stats.retries, stats.server_errors + stats.rate_limited);
    running.shutdown().await;
}

#[tokio::test]
async fn a_query_that_keeps_failing_gives_up_naming_query_page_and_status() {
    let faults = Faults {
        always_fail_queries: vec![GUARDIANS_QUERY.to_string()],
        ..Faults::default()
    };
    let running = fake(one_school(30), faults).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 10)).unwrap();
    let err = client.guardians().await.unwrap_err();
    match &err {
        PowerSchoolError::GaveUp {
            query,
            attempts,
            last_status,
            ..
        } => {
            assert_eq!(query, GUARDIANS_QUERY);
            assert_eq!(*attempts, 4);
            assert_eq!(*last_status, Some(500));
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(GUARDIANS_QUERY), "{message}");
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(
        message.contains("page 1") || message.contains("count"),
        "{message}"
    );
    // The other queries are unaffected.
    assert_eq!(client.students(101).await.unwrap().records.len(), 30);
    running.shutdown().await;

    // A server that answers the count and page 1 but never page 2: the
    // error names that page.
    let faults = Faults {
        always_fail_pages: vec![2],
        ..Faults::default()
    };
    let running = fake(one_school(30), faults).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 10)).unwrap();
    let err = client.guardians().await.unwrap_err();
    assert!(
        matches!(
            &err,
            PowerSchoolError::GaveUp {
                last_status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(GUARDIANS_QUERY), "{message}");
    assert!(message.contains("page 2"), "{message}");
    assert!(!message.contains("count"), "{message}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_cut_off_page_is_retried_not_half_used() {
    let faults = Faults {
        truncate_first: 2,
        ..Faults::default()
    };
    let running = fake(one_school(300), faults).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 100)).unwrap();
    assert_exactly(all_guardian_keys(&client).await, &guardian_keys(300));
    assert_eq!(running.stats().truncated, 2);
    assert_eq!(client.stats().retries, 2);
    running.shutdown().await;
}

#[tokio::test]
async fn bad_records_are_problems_and_the_rest_arrive() {
    let planted = |query: &str, index: usize, field: &str, value: Value| FieldOverride {
        query: query.to_string(),
        record_index: index,
        field: field.to_string(),
        value,
    };
    let mut world = one_school(40);
    world.contacts = (0..40).map(|i| contact(5000 + i, 900 + i, 1)).collect();
    let faults = Faults {
        overrides: vec![
            planted(STUDENTS_QUERY, 3, "dcid", json!("abc")),
            planted(STUDENTS_QUERY, 17, "entrydate", json!("not-a-date")),
            planted(STUDENTS_QUERY, 20, "grade_level", json!("x")),
            planted(CONTACTS_QUERY, 5, "isdecisionmaking", json!("maybe")),
        ],
        ..Faults::default()
    };
    let running = fake(world, faults).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 7)).unwrap();

    let students = client.students(101).await.unwrap();
    assert_eq!(students.records.len(), 37);
    let mut problems = students.problems.clone();
    problems.sort_by(|a, b| a.field.cmp(&b.field));
    let fields: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.field.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("dcid", "abc"),
            ("entrydate", "not-a-date"),
            ("grade_level", "x")
        ]
    );
    for p in &problems {
        assert_eq!(p.query, STUDENTS_QUERY);
        assert!(p.record_id.starts_with("dcid="), "{p:?}");
        assert!(!p.message.is_empty());
    }
    assert_eq!(problems[0].record_id, "dcid=abc");
    let ok: HashSet<i64> = students.records.iter().map(|s| s.dcid).collect();
    for p in &problems[1..] {
        let dcid: i64 = p.record_id["dcid=".len()..].parse().unwrap();
        assert!(
            !ok.contains(&dcid),
            "a record with a problem must not arrive"
        );
    }

    let contacts = client.contacts(101).await.unwrap();
    assert_eq!(contacts.records.len(), 39);
    assert_eq!(contacts.problems.len(), 1);
    let p = &contacts.problems[0];
    assert_eq!(
        (p.field.as_str(), p.value.as_str()),
        ("isdecisionmaking", "maybe")
    );
    assert!(p.record_id.starts_with("studentsdcid="), "{p:?}");
    assert!(p.record_id.contains(", personid="), "{p:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_fail_at_once_without_retrying() {
    let running = fake(one_school(3), Faults::default()).await;
    let mut s = settings(&running.base_url(), 10);
    s.client_secret = Secret::new("wrong-secret-value");
    let client = PowerSchoolClient::new(&s).unwrap();
    let err = client.guardians().await.unwrap_err();
    assert!(
        matches!(err, PowerSchoolError::BadCredentials { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("client id and secret"), "{message}");
    assert!(!message.contains("wrong-secret-value"));
    assert!(!format!("{err:?}").contains("wrong-secret-value"));
    assert_eq!(running.stats().token_requests, 1);
    assert_eq!(client.stats().token_requests, 1);
    assert!(matches!(
        client.fetch_district().await,
        Err(PowerSchoolError::BadCredentials { .. })
    ));
    running.shutdown().await;
}

#[tokio::test]
async fn an_unknown_query_is_not_installed() {
    let running = fake(one_school(3), Faults::default()).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 10)).unwrap();
    let err = client
        .run_query("org.studentsync.sync.students.missing", json!({}))
        .await
        .unwrap_err();
    match &err {
        PowerSchoolError::QueryNotInstalled { query } => {
            assert_eq!(query, "org.studentsync.sync.students.missing")
        }
        other => panic!("expected QueryNotInstalled, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("install or enable the student-sync plugin"));
    assert!(message.contains("org.studentsync.sync.students.missing"));
    assert_eq!(client.stats().retries, 0);
    running.shutdown().await;
}

#[tokio::test]
async fn run_query_returns_raw_columns() {
    let mut world = one_school(25);
    world.contacts = (0..25).map(|i| contact(5000 + i, 900 + i, i % 2)).collect();
    let running = fake(world, Faults::default()).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 4)).unwrap();
    let raw = client
        .run_query(CONTACTS_QUERY, json!({"school_number": "101"}))
        .await
        .unwrap();
    assert_eq!(raw.records.len(), 25);
    assert_eq!(raw.expected_count, 25);
    assert_eq!(raw.duplicates_dropped, 0);
    let first = raw
        .records
        .iter()
        .find(|c| c.get("personid").map(String::as_str) == Some("900"))
        .unwrap();
    assert_eq!(first.get("studentsdcid").map(String::as_str), Some("5000"));
    assert_eq!(
        first.get("email").map(String::as_str),
        Some("p900@example.com")
    );
    running.shutdown().await;
}

#[tokio::test]
async fn flat_guardian_records_read_alike_and_a_missing_schools_query_is_named() {
    let world = one_school(30);
    let flat = Faults {
        flat_guardians: true,
        ..Faults::default()
    };
    let running = fake(world.clone(), flat).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 7)).unwrap();
    let result = client.guardians().await.unwrap();
    assert!(result.problems.is_empty(), "{:?}", result.problems);
    let emails: BTreeSet<(i64, Option<String>)> = result
        .records
        .iter()
        .map(|g| (g.guardian_id, g.email.clone()))
        .collect();
    let want: BTreeSet<(i64, Option<String>)> = world
        .guardian_accounts
        .iter()
        .map(|g| (g.guardianid, g.email.clone()))
        .collect();
    assert_eq!(emails, want);
    running.shutdown().await;

    let missing = Faults {
        missing_queries: vec![SCHOOLS_QUERY.to_string()],
        ..Faults::default()
    };
    let running = fake(world, missing).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 7)).unwrap();
    let err = client.fetch_district().await.unwrap_err();
    assert!(
        matches!(&err, PowerSchoolError::QueryNotInstalled { query } if query == SCHOOLS_QUERY),
        "{err:?}"
    );
    assert!(err.to_string().contains("install or enable"), "{err}");
    assert_eq!(running.stats().v1_requests, 0);
    running.shutdown().await;
}

#[sqlx::test]
async fn guardian_emails_under_an_unknown_column_stop_the_run_before_any_write(pool: PgPool) {
    let side = generate(300, 5);
    let faults = Faults {
        guardian_email_column: Some("pcas_contact.mail".to_string()),
        ..Faults::default()
    };
    let running = common::start_fake(side, faults).await;
    let mut settings = common::settings_for(&running);
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    let before = common::fingerprint(&pool).await;
    let err = sync::run_once(&pool, &settings, &common::client(&settings), &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("powerschool.guardian_columns.email"), "{err}");
    assert!(
        err.contains("guardian.guardianid, guardian.lastname, guardianstudent.accounttype"),
        "the keys that arrived, sorted: {err}"
    );
    assert!(err.contains("pcas_contact.mail"), "{err}");
    assert_eq!(common::fingerprint(&pool).await, before, "nothing written");
    let (status,): (String,) =
        sqlx::query_as("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");

    // The district adds the column its server uses; the same server syncs.
    settings
        .powerschool
        .guardian_columns
        .email
        .push("pcas_contact.mail".to_string());
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    sync::run_once(&pool, &settings, &common::client(&settings), &options)
        .await
        .unwrap();
    let with_email = common::count(
        &pool,
        "SELECT count(*) FROM guardian_accounts WHERE email IS NOT NULL",
    )
    .await;
    assert!(with_email > 0);
    running.shutdown().await;
}
