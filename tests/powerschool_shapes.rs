#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The PowerSchool client against a tiny axum server of the test's own, for
//! answer shapes the fake PowerSchool (tests/powerschool_client.rs) does not
//! serve: records nested under `tables` beside flat ones, a page without
//! `record`, one school as an object rather than a list, counts as strings
//! and `expires_in` as a number, a first token refused once (renewed),
//! contacts that grow and shift while paged (each arrives once), a capped
//! page size that is learned, a 401 naming a missing plugin permission (not
//! renewed), a 403 and a 404 (not retried), and a server that is down (gives
//! up with the connection error).

mod common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::client_setup::{any_port, logs, settings};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use student_sync::powerschool::{
    PowerSchoolClient, PowerSchoolError, CONTACTS_QUERY, GUARDIANS_QUERY, INDEPENDENT_QUERY,
    SCHOOLS_QUERY, STUDENTS_QUERY,
};

#[derive(Default)]
struct Seen {
    tokens: AtomicU64,
    refused: AtomicU64,
    /// (page, pagesize) of each page request of the capped query.
    capped_asks: std::sync::Mutex<Vec<(u32, u32)>>,
}

/// A query this plugin lacks a permission for (as `/ws/v1` on 25.2).
const LOCKED: &str = "org.example.locked";

async fn token(State(seen): State<Arc<Seen>>) -> Json<Value> {
    let n = seen.tokens.fetch_add(1, Ordering::SeqCst) + 1;
    // expires_in as a number, as some servers send it.
    Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3599}))
}

fn denied_or_missing(name: &str) -> Option<Response> {
    match name {
        "org.example.denied" => Some(StatusCode::FORBIDDEN.into_response()),
        LOCKED => Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"errorMessage": {"message":
                    "Plugin is missing required accessLevelV1Api READ permission\n"}})),
            )
                .into_response(),
        ),
        GUARDIANS_QUERY | INDEPENDENT_QUERY | CONTACTS_QUERY | CAPPED | SCHOOLS_QUERY => None,
        _ => Some(StatusCode::NOT_FOUND.into_response()),
    }
}

/// A query on a server whose page size is capped at 2.
const CAPPED: &str = "org.studentsync.sync.students.capped";

async fn count(Path(name): Path<String>) -> Response {
    if let Some(r) = denied_or_missing(&name) {
        return r;
    }
    // A string, as some servers send it.
    let count = match name.as_str() {
        CAPPED => "5",
        SCHOOLS_QUERY => "1",
        _ => "3",
    };
    Json(json!({ "count": count })).into_response()
}

/// Contacts that grow and shift while they are paged (page size 2):
/// the count says 3, a record moves from page 1 to 2, and three more
/// appear at the end.
fn growing_contacts(page: u32) -> Value {
    let pairs: &[(i64, i64)] = match page {
        1 => &[(1, 10), (2, 20)],
        2 => &[(2, 20), (3, 30)],
        3 => &[(4, 40), (5, 50)],
        4 => &[(6, 60)],
        _ => &[],
    };
    pairs
        .iter()
        .map(|(s, p)| json!({"studentsdcid": s.to_string(), "personid": p.to_string()}))
        .collect()
}

fn capped(page: u32, asked: u32) -> Value {
    let size = asked.min(2);
    let start = (page - 1) * size;
    (start..(start + size).min(5))
        .map(|i| json!({ "dcid": 7000 + i }))
        .collect()
}

async fn page(
    State(seen): State<Arc<Seen>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = denied_or_missing(&name) {
        return r;
    }
    // The first token is treated as expired once, as a server would
    // after a restart.
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth == "Bearer tok-1" {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    assert_eq!(auth, "Bearer tok-2");
    let number = |key: &str| params.get(key).and_then(|v| v.parse::<u32>().ok());
    let (page, size) = (number("page").unwrap(), number("pagesize").unwrap());
    if name == CONTACTS_QUERY {
        return Json(json!({"name": name, "record": growing_contacts(page)})).into_response();
    }
    if name == CAPPED {
        seen.capped_asks.lock().unwrap().push((page, size));
        return Json(json!({"name": name, "record": capped(page, size)})).into_response();
    }
    if name == SCHOOLS_QUERY && page == 1 {
        // One record alone, as an object rather than a list.
        let one = json!({"school_number": "101", "name": "Only"});
        return Json(json!({"name": name, "record": one})).into_response();
    }
    if page != 1 {
        // No `record` at all: an empty page.
        return Json(json!({"name": name, "@extensions": ""})).into_response();
    }
    let records = if name == GUARDIANS_QUERY {
        json!([
            {"id": 1, "name": "student_guardian_detail", "tables": {
                "guardianstudent": {"guardianid": "12", "studentsdcid": "5001", "accounttype": "webaccess"},
                "guardian": {"email": "a@x.org"}}},
            {"id": 2, "name": "student_guardian_detail", "tables": {
                "guardianstudent": {"guardianid": 13, "studentsdcid": 5001},
                "guardian": {"email": "", "firstname": "Ama"}}},
            {"guardianid": 14, "studentsdcid": "5002", "email": "c@x.org"}
        ])
    } else {
        json!([
            {"dcid": "5001", "enrlytype1": "121", "orgemail": "s@x.org"},
            {"tables": {"students": {"dcid": 5002}, "s_ab_stu_x": {"enrlytype3": 121}}},
            {"dcid": 5003, "personalemail": ""}
        ])
    };
    Json(json!({"name": name, "record": records})).into_response()
}

async fn serve() -> (String, Arc<Seen>) {
    logs();
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/oauth/access_token", post(token))
        .route("/ws/schema/query/{name}/count", post(count))
        .route("/ws/schema/query/{name}", post(page))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn nested_records_missing_record_and_one_school_parse() {
    let (url, seen) = serve().await;
    let client = PowerSchoolClient::new(&settings(&url, 2)).unwrap();

    let guardians = client.guardians().await.unwrap();
    assert!(guardians.problems.is_empty(), "{:?}", guardians.problems);
    let rows: Vec<(i64, i64, Option<&str>, bool)> = guardians
        .records
        .iter()
        .map(|g| {
            (
                g.guardian_id,
                g.student_dcid,
                g.email.as_deref(),
                g.web_access_account,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (12, 5001, Some("a@x.org"), true),
            (13, 5001, None, false),
            (14, 5002, Some("c@x.org"), false)
        ]
    );
    assert_eq!(guardians.records[1].first_name.as_deref(), Some("Ama"));
    // The 401 renewed the token once; the repeat used the new one.
    assert_eq!(seen.refused.load(Ordering::SeqCst), 1);
    assert_eq!(seen.tokens.load(Ordering::SeqCst), 2);
    let stats = client.stats();
    assert_eq!(stats.unauthorized_renewals, 1);
    assert_eq!(stats.retries, 0);

    let independent = client.independent_students().await.unwrap();
    let types: Vec<(i64, [Option<String>; 3])> = independent
        .records
        .iter()
        .map(|s| (s.dcid, s.enrollment_types.clone()))
        .collect();
    assert_eq!(
        types,
        [
            (5001, [Some("121".into()), None, None]),
            (5002, [None, None, Some("121".into())]),
            (5003, [None, None, None])
        ]
    );
    assert_eq!(independent.records[2].personal_email, None);

    let schools = client.schools().await.unwrap();
    assert_eq!(schools.records.len(), 1);
    assert_eq!(schools.records[0].school_number, 101);
    assert_eq!(schools.records[0].name, "Only");
}

#[tokio::test]
async fn data_that_grows_and_shifts_while_paged_arrives_once() {
    let (url, _seen) = serve().await;
    let client = PowerSchoolClient::new(&settings(&url, 2)).unwrap();
    let contacts = client.contacts(101).await.unwrap();
    let keys: Vec<(i64, i64)> = contacts
        .records
        .iter()
        .map(|c| (c.student_dcid, c.person_id))
        .collect();
    assert_eq!(keys, [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60)]);
    assert_eq!(contacts.duplicates_dropped, 1);
    assert_eq!(contacts.expected_count, Some(3));
    assert!(contacts.problems.is_empty());
}

#[tokio::test]
async fn a_server_that_caps_the_page_size_is_still_paged_fully() {
    let (url, seen) = serve().await;
    let client = PowerSchoolClient::new(&settings(&url, 10)).unwrap();
    let raw = client.run_query(CAPPED, json!({})).await.unwrap();
    let dcids: Vec<&str> = raw.records.iter().map(|r| r["dcid"].as_str()).collect();
    assert_eq!(dcids, ["7000", "7001", "7002", "7003", "7004"]);
    assert_eq!(raw.pages, 3);
    // Page 1 showed the cap; every later page asked for it, and so does
    // the next query.
    assert_eq!(client.stats().page_size, 2);
    let asks = std::mem::take(&mut *seen.capped_asks.lock().unwrap());
    assert_eq!(asks, [(1, 10), (2, 2), (3, 2)]);
    client.run_query(CAPPED, json!({})).await.unwrap();
    let asks = seen.capped_asks.lock().unwrap().clone();
    assert_eq!(asks, [(1, 2), (2, 2), (3, 2)]);
}

/// Page 1 goes with the rest once a full page came back; a query the
/// server caps apart from the others still shows its cap on page 1, and is
/// paged again from page 1 alone at that cap, every record once.
#[tokio::test]
async fn a_query_capped_apart_is_paged_again_at_its_cap() {
    let (url, seen) = serve().await;
    let client = PowerSchoolClient::new(&settings(&url, 3)).unwrap();
    // Three guardian rows on page 1: a full page of the size asked.
    client.guardians().await.unwrap();
    let raw = client.run_query(CAPPED, json!({})).await.unwrap();
    let dcids: Vec<&str> = raw.records.iter().map(|r| r["dcid"].as_str()).collect();
    assert_eq!(dcids, ["7000", "7001", "7002", "7003", "7004"]);
    // Pages 2.. of a pass go out together, so they may arrive in any order.
    let asks = seen.capped_asks.lock().unwrap().clone();
    let (mut first, mut again): (Vec<_>, Vec<_>) = asks.into_iter().partition(|a| a.1 == 3);
    first.sort_unstable();
    again.sort_unstable();
    assert_eq!(
        first.first(),
        Some(&(1, 3)),
        "page 1 asked at the size served"
    );
    assert!(first.iter().all(|a| a.0 <= 2), "{first:?}");
    assert_eq!(again, [(1, 2), (2, 2), (3, 2)], "then again at the cap");
    assert_eq!(client.stats().page_size, 2);
}

#[tokio::test]
async fn a_401_naming_a_missing_permission_is_reported_not_renewed() {
    let (url, seen) = serve().await;
    let client = PowerSchoolClient::new(&settings(&url, 10)).unwrap();
    let err = client.run_query(LOCKED, json!({})).await.unwrap_err();
    match &err {
        PowerSchoolError::PermissionMissing { query, message, .. } => {
            assert_eq!(query, LOCKED);
            assert_eq!(
                message,
                "Plugin is missing required accessLevelV1Api READ permission"
            );
        }
        other => panic!("expected PermissionMissing, got {other:?}"),
    }
    assert!(err.to_string().contains("accessLevelV1Api"), "{err}");
    assert_eq!(seen.tokens.load(Ordering::SeqCst), 1, "no renewal");
    let stats = client.stats();
    assert_eq!((stats.token_requests, stats.unauthorized_renewals), (1, 0));
    assert_eq!(stats.retries, 0);
}

#[tokio::test]
async fn forbidden_and_missing_queries_are_not_retried() {
    let (url, _seen) = serve().await;
    let client = PowerSchoolClient::new(&settings(&url, 10)).unwrap();
    let err = client
        .run_query("org.example.denied", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PowerSchoolError::AccessDenied { query } if query == "org.example.denied"),
        "{err:?}"
    );
    assert!(err.to_string().contains("access request"), "{err}");
    let err = client.students(101).await.unwrap_err();
    assert!(
        matches!(&err, PowerSchoolError::QueryNotInstalled { query } if query == STUDENTS_QUERY),
        "{err:?}"
    );
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn a_server_that_is_down_gives_up_with_the_connection_error() {
    // Bind then drop, so nothing listens on the port.
    let listener = std::net::TcpListener::bind(any_port()).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = PowerSchoolClient::new(&settings(&url, 10)).unwrap();
    let err = client.guardians().await.unwrap_err();
    match &err {
        PowerSchoolError::GaveUp {
            attempts,
            last_status,
            ..
        } => {
            assert_eq!((*attempts, *last_status), (4, None));
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(err.to_string().contains("token request"), "{err}");
    assert_eq!(client.stats().token_requests, 4);
}
