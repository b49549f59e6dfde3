#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! A partial answer never costs data: a `/count` the pages do not deliver,
//! an empty page before the counted end, a nonsense count and an oversized
//! body each fail the query, and a run that meets one writes nothing to the
//! live tables. Real HTTP against the fake PowerSchool, real PostgreSQL.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::harness::fake_powerschool::{
    self, CountOverride, FakeCredentials, Faults, RunningFake,
};
use student_sync::harness::world::PowerSchoolSide;
use student_sync::powerschool::{PowerSchoolError, STUDENTS_QUERY};
use student_sync::store::RunTrigger;
use student_sync::sync::{self, RunOptions, SyncError};

const SCHOOL: i64 = 101;

fn district() -> PowerSchoolSide {
    fake_powerschool::generate(300, 11)
}

/// `/count` of the students of `SCHOOL` says `count`.
fn students_counted(count: u64) -> CountOverride {
    CountOverride {
        query: STUDENTS_QUERY.to_string(),
        school_number: Some(SCHOOL),
        count,
    }
}

/// Records counted but never sent: enough to pass the default tolerance of
/// 5 records, few enough that the planned pages (50 records each, see
/// `settings_for`) stay the same, so the last page comes back short, not empty.
const MISSING: u64 = 20;

/// How many students `SCHOOL` really has on the fake.
async fn real_students() -> u64 {
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    let n = client(&settings)
        .students(SCHOOL)
        .await
        .unwrap()
        .records
        .len() as u64;
    fake.shutdown().await;
    assert!(n > 0, "school {SCHOOL} has students");
    assert_eq!((n + MISSING).div_ceil(50), n.div_ceil(50), "{n} students");
    n
}

/// Night 1 applies the district on a well-behaved fake.
async fn first_night(pool: &PgPool) {
    let fake = start_fake(district(), Faults::default()).await;
    let settings = settings_for(&fake);
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    sync::run_once(pool, &settings, &client(&settings), &options)
        .await
        .expect("night 1 succeeds");
    fake.shutdown().await;
    assert!(count(pool, "SELECT count(*) FROM students").await > 0);
}

/// Night 2 on a fake with `faults`: its error, and the live tables are
/// byte-identical before and after.
async fn second_night_fails(pool: &PgPool, faults: Faults) -> (SyncError, RunningFake) {
    let fake = start_fake(district(), faults).await;
    let settings = settings_for(&fake);
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    let before = fingerprint(pool).await;
    let err = sync::run_once(pool, &settings, &client(&settings), &options)
        .await
        .expect_err("a partial answer fails the run");
    assert_eq!(fingerprint(pool).await, before, "live tables changed");
    (err, fake)
}

#[sqlx::test]
async fn a_school_whose_pages_come_back_empty_fails_the_night_and_writes_nothing(pool: PgPool) {
    first_night(&pool).await;
    let faults = Faults {
        empty_pages_for_school: Some(SCHOOL),
        count_overrides: vec![students_counted(300)],
        ..Faults::default()
    };
    let (err, fake) = second_night_fails(&pool, faults).await;
    let message = err.to_string();
    match err {
        SyncError::PowerSchool(PowerSchoolError::EmptyPageBeforeEnd { page, received, .. }) => {
            assert_eq!((page, received), (1, 0))
        }
        other => panic!("expected an empty page before the counted end, got {other}"),
    }
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains(r#"{"school_number":"101"}"#), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    drop(fake);
    let failed: i64 = count(
        &pool,
        "SELECT count(*) FROM sync_runs WHERE status = 'failed'",
    )
    .await;
    assert_eq!(failed, 1, "the night is recorded as failed");
}

#[sqlx::test]
async fn a_count_far_above_the_last_successful_runs_fails_before_any_page_is_asked(pool: PgPool) {
    first_night(&pool).await;
    let last = real_students().await;
    // Within powerschool.max_count, but ten times what night 1 received.
    let (err, fake) = second_night_fails(
        &pool,
        Faults {
            count_overrides: vec![students_counted(last * 10 + 1000)],
            ..Faults::default()
        },
    )
    .await;
    let message = err.to_string();
    match err {
        SyncError::PowerSchool(PowerSchoolError::CountFarAboveLastRun {
            count,
            last: seen,
            ..
        }) => assert_eq!((count, seen), (last * 10 + 1000, last)),
        other => panic!("expected a count far above the last run's, got {other}"),
    }
    assert!(
        message.contains("powerschool.count_growth_factor"),
        "{message}"
    );
    assert!(message.contains(r#"{"school_number":"101"}"#), "{message}");
    // The school's students were counted, never paged.
    let asked = fake
        .stats()
        .max_in_flight_by_query
        .contains_key(STUDENTS_QUERY);
    drop(fake);
    assert!(asked, "the students query was counted");

    // The same count, believed when the factor is off: then it is the count
    // check that fails, after paging (20 times more than sent).
    let fake = start_fake(
        district(),
        Faults {
            count_overrides: vec![students_counted(last * 10 + 1000)],
            ..Faults::default()
        },
    )
    .await;
    let mut settings = settings_for(&fake);
    settings.powerschool.answer_limits.count_growth_factor = 0.0;
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    let err = sync::run_once(&pool, &settings, &client(&settings), &options)
        .await
        .expect_err("the count is still wrong");
    assert!(
        !matches!(
            err,
            SyncError::PowerSchool(PowerSchoolError::CountFarAboveLastRun { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_count_above_the_cap_fails_before_any_page_is_asked() {
    let faults = Faults {
        empty_pages_for_school: Some(SCHOOL),
        count_overrides: vec![students_counted(1_000_000_000_000)],
        ..Faults::default()
    };
    let fake = start_fake(district(), faults).await;
    let settings = settings_for(&fake);
    let err = client(&settings).students(SCHOOL).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            PowerSchoolError::CountTooLarge {
                count: 1_000_000_000_000,
                max: 5_000_000,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("powerschool.max_count"), "{message}");
    assert!(message.contains(STUDENTS_QUERY), "{message}");
    let stats = fake.stats();
    assert_eq!((stats.count_requests, stats.page_requests), (1, 0));
}

#[tokio::test]
async fn pages_past_the_count_stop_once_the_records_pass_the_cap() {
    // The count says 5, within a cap of 10, but page 1 comes back full (50
    // records) and so would the pages after it: the client stops at the cap.
    let fake = start_fake(
        district(),
        Faults {
            count_overrides: vec![students_counted(5)],
            ..Faults::default()
        },
    )
    .await;
    let mut settings = settings_for(&fake);
    settings.powerschool.answer_limits.max_count = 10;
    let err = client(&settings).students(SCHOOL).await.unwrap_err();
    assert!(
        matches!(
            err,
            PowerSchoolError::TooManyRecords {
                received: 50,
                max: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("powerschool.max_count"), "{err}");
    assert_eq!(fake.stats().page_requests, 1);
}

#[tokio::test]
async fn a_count_below_the_cap_with_empty_pages_stops_at_the_first_page() {
    let faults = Faults {
        empty_pages_for_school: Some(SCHOOL),
        count_overrides: vec![students_counted(4_000_000)],
        ..Faults::default()
    };
    let fake = start_fake(district(), faults).await;
    let settings = settings_for(&fake);
    let err = client(&settings).students(SCHOOL).await.unwrap_err();
    assert!(
        matches!(
            err,
            PowerSchoolError::EmptyPageBeforeEnd {
                page: 1,
                expected: 4_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.stats().page_requests, 1);
}

#[tokio::test]
async fn records_short_of_the_count_fail_only_beyond_the_tolerance() {
    let real = real_students().await;
    // Three missing: within the default slack of 5 records.
    let fake = start_fake(
        district(),
        Faults {
            count_overrides: vec![students_counted(real + 3)],
            ..Faults::default()
        },
    )
    .await;
    let mut settings = settings_for(&fake);
    let got = client(&settings).students(SCHOOL).await.unwrap();
    assert_eq!(got.records.len() as u64, real);
    assert_eq!(got.expected_count, Some(real + 3));
    // No tolerance at all: the same answer fails.
    settings.powerschool.answer_limits.count_tolerance_records = 0;
    settings.powerschool.answer_limits.count_tolerance_percent = 0.0;
    let err = client(&settings).students(SCHOOL).await.unwrap_err();
    match &err {
        PowerSchoolError::FewerThanCounted {
            received,
            expected,
            tolerated,
            ..
        } => assert_eq!((*received, *expected, *tolerated), (real, real + 3, 0)),
        other => panic!("expected fewer than counted, got {other}"),
    }
    assert!(err.to_string().contains("count_tolerance_percent"), "{err}");
    fake.shutdown().await;

    // Twenty missing: beyond 1% and 5 records with the defaults.
    let fake = start_fake(
        district(),
        Faults {
            count_overrides: vec![students_counted(real + MISSING)],
            ..Faults::default()
        },
    )
    .await;
    let settings = settings_for(&fake);
    let err = client(&settings).students(SCHOOL).await.unwrap_err();
    assert!(
        matches!(err, PowerSchoolError::FewerThanCounted { tolerated: 5, .. }),
        "{err}"
    );
}

#[sqlx::test]
async fn a_night_short_of_the_count_writes_nothing(pool: PgPool) {
    let real = real_students().await;
    first_night(&pool).await;
    let faults = Faults {
        count_overrides: vec![students_counted(real + MISSING)],
        ..Faults::default()
    };
    let (err, _fake) = second_night_fails(&pool, faults).await;
    assert!(
        matches!(
            err,
            SyncError::PowerSchool(PowerSchoolError::FewerThanCounted { .. })
        ),
        "{err}"
    );
}

#[sqlx::test]
async fn a_body_over_the_cap_fails_the_run_and_the_next_run_works(pool: PgPool) {
    let fake = start_fake(district(), Faults::default()).await;
    let mut settings = settings_for(&fake);
    settings.powerschool.answer_limits.max_page_bytes = 1024;
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    let small = client(&settings);
    let err = sync::run_once(&pool, &settings, &small, &options)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            SyncError::PowerSchool(PowerSchoolError::AnswerTooLarge { limit: 1024, .. })
        ),
        "{message}"
    );
    assert!(message.contains("powerschool.max_page_bytes"), "{message}");
    assert!(message.contains("page 1"), "{message}");
    // Asking again brings the same answer: not retried.
    assert_eq!(small.stats().retries, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM students").await, 0);

    // The same process goes on: with the default cap the next run applies.
    settings.powerschool.answer_limits = Default::default();
    let options = RunOptions::now(&settings, RunTrigger::Manual);
    sync::run_once(&pool, &settings, &client(&settings), &options)
        .await
        .expect("the next run with the default cap succeeds");
    assert!(count(&pool, "SELECT count(*) FROM students").await > 0);
}

#[tokio::test]
async fn fetch_with_a_tiny_body_cap_exits_1_naming_the_setting() {
    let fake = start_fake(district(), Faults::default()).await;
    let creds = FakeCredentials::default();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"))
        .arg("fetch")
        .env_remove("DATABASE_URL")
        .env_remove("STUDENT_SYNC_CONFIG")
        .env("RUST_LOG", "warn")
        .env("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url())
        .env("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", creds.client_id)
        .env(
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            creds.client_secret,
        )
        .env("STUDENT_SYNC_POWERSCHOOL_MAX_PAGE_BYTES", "1024")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("powerschool.max_page_bytes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A server that issues tokens and counts 10 records, then answers every
/// page with an endless body (spaces, sent in chunks without a length):
/// status 200, or `page_status` when given.
async fn endless_server(page_status: u16) -> String {
    use axum::body::{Body, Bytes};
    use axum::routing::post;
    use axum::Json;
    let endless = move || async move {
        let chunks =
            futures::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024])));
        axum::response::Response::builder()
            .status(page_status)
            .header("content-type", "application/json")
            .body(Body::from_stream(chunks))
            .unwrap()
    };
    let app = axum::Router::new()
        .route(
            "/oauth/access_token",
            post(|| async {
                Json(serde_json::json!({
                    "access_token": "endless", "token_type": "Bearer", "expires_in": "3599"
                }))
            }),
        )
        .route(
            "/ws/schema/query/{name}/count",
            post(|| async { Json(serde_json::json!({"count": 10})) }),
        )
        .route("/ws/schema/query/{name}", post(endless));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn settings_at(url: &str) -> student_sync::config::Settings {
    let env = [
        ("STUDENT_SYNC_POWERSCHOOL_URL", url),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "secret"),
        ("STUDENT_SYNC_POWERSCHOOL_MAX_ATTEMPTS", "2"),
        ("STUDENT_SYNC_POWERSCHOOL_MAX_PAGE_BYTES", "65536"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut s =
        student_sync::config::Settings::load(&student_sync::config::Sources { file: None, env })
            .unwrap();
    s.powerschool.backoff_initial = std::time::Duration::from_millis(1);
    s.powerschool.backoff_max = std::time::Duration::from_millis(5);
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_page_is_read_only_up_to_the_cap() {
    let settings = settings_at(&endless_server(200).await);
    assert_eq!(settings.powerschool.answer_limits.max_page_bytes, 65536);
    let client = client(&settings);
    let err = client.students(SCHOOL).await.unwrap_err();
    assert!(
        matches!(
            err,
            PowerSchoolError::AnswerTooLarge {
                page: Some(1),
                limit: 65536,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_error_body_is_cut_to_an_excerpt_and_retried() {
    let settings = settings_at(&endless_server(500).await);
    let err = client(&settings).students(SCHOOL).await.unwrap_err();
    match err {
        PowerSchoolError::GaveUp {
            attempts,
            last_status,
            ..
        } => assert_eq!((attempts, last_status), (2, Some(500))),
        other => panic!("expected the retries to run out, got {other}"),
    }
}
