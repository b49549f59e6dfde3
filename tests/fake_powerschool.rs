#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The fake PowerSchool server checked over real HTTP against
//! `docs/powerschool.md`, with plain reqwest rather than the
//! project's client, so the two cannot share a misreading.

mod common;

use common::records::{account, contact, student};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use student_sync::harness::fake_powerschool::{
    generate, spawn, FakeCredentials, Faults, FieldOverride, RunningFake, CONTACTS, ENROLLED,
    GUARDIANS, INDEPENDENT, SCHOOLS,
};
use student_sync::harness::world::{PowerSchoolSide, WorldSchool};

/// Two schools; 5001..5005 at 101 with statuses 0, -1, 2, 3, 0; 5006 at 102.
/// 5002 (pre-registered) and 5003 (transferred) are independent.
fn small_world() -> PowerSchoolSide {
    let mut students = vec![
        student(5001, 101, 0),
        student(5002, 101, -1),
        student(5003, 101, 2),
        student(5004, 101, 3),
        student(5005, 101, 0),
        student(5006, 102, 0),
    ];
    students[1].enrlytype2 = Some("121".to_string());
    students[2].enrlytype1 = Some("121".to_string());
    students[5].enrlytype3 = Some("121".to_string());
    students[4].enrlytype1 = Some("100".to_string());
    PowerSchoolSide {
        schools: vec![
            WorldSchool {
                school_number: 101,
                name: "Crescent Heights High".to_string(),
            },
            WorldSchool {
                school_number: 102,
                name: "Bow Valley Middle".to_string(),
            },
        ],
        students,
        contacts: vec![
            contact(5001, 802, 1),
            contact(5001, 801, 0),
            contact(5002, 803, 1),
            contact(5003, 804, 1),
            contact(5006, 805, 1),
        ],
        guardian_accounts: vec![
            account(9002, 5001, "B@example.com", false),
            account(9001, 5001, " Mei.Lee@Example.com ", true),
            account(9001, 5006, "mei.lee@example.com", false),
            account(9003, 5004, "c@example.com", false),
        ],
    }
}

async fn start(world: PowerSchoolSide, faults: Faults) -> RunningFake {
    spawn(
        world,
        FakeCredentials::default(),
        faults,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("fake starts")
}

async fn get_token(http: &reqwest::Client, fake: &RunningFake) -> String {
    let creds = FakeCredentials::default();
    let r = http
        .post(format!("{}/oauth/access_token", fake.base_url()))
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        )
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].is_string(), "expires_in as a string: {v}");
    v["access_token"].as_str().unwrap().to_string()
}

async fn query_raw(
    http: &reqwest::Client,
    fake: &RunningFake,
    token: &str,
    name: &str,
    page: usize,
    pagesize: usize,
    args: Value,
) -> reqwest::Response {
    http.post(format!(
        "{}/ws/schema/query/{name}?page={page}&pagesize={pagesize}",
        fake.base_url()
    ))
    .bearer_auth(token)
    .header("Accept", "application/json")
    .json(&args)
    .send()
    .await
    .unwrap()
}

/// The records of one page, asserting a 200 and a parseable body.
async fn page(
    http: &reqwest::Client,
    fake: &RunningFake,
    token: &str,
    name: &str,
    page: usize,
    pagesize: usize,
    args: Value,
) -> Vec<Value> {
    let r = query_raw(http, fake, token, name, page, pagesize, args).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], name);
    match v.get("record") {
        None => vec![],
        Some(records) => records.as_array().expect("record is a list").clone(),
    }
}

async fn count(
    http: &reqwest::Client,
    fake: &RunningFake,
    token: &str,
    name: &str,
    args: Value,
) -> u64 {
    let r = http
        .post(format!("{}/ws/schema/query/{name}/count", fake.base_url()))
        .bearer_auth(token)
        .json(&args)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["count"].as_u64().expect("count is a number")
}

/// A column of a flat or nested record; absent and "" both read as None.
fn col(record: &Value, key: &str) -> Option<String> {
    let v = match record.get("tables") {
        Some(tables) => tables
            .as_object()
            .unwrap()
            .values()
            .find_map(|t| t.get(key))
            .cloned(),
        None => record.get(key).cloned(),
    }?;
    let s = v.as_str().expect("values are strings").to_string();
    (!s.is_empty()).then_some(s)
}

fn dcids(records: &[Value], key: &str) -> Vec<String> {
    records.iter().map(|r| col(r, key).unwrap()).collect()
}

#[tokio::test]
async fn bad_credentials_get_401_with_json() {
    let fake = start(small_world(), Faults::default()).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/oauth/access_token", fake.base_url()))
        .basic_auth("student-sync-demo", Some("wrong"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let _: Value = r.json().await.expect("a JSON body");
    let r = http
        .post(format!("{}/oauth/access_token", fake.base_url()))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let stats = fake.stats();
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.answered_401, 2);
    fake.shutdown().await;
}

#[tokio::test]
async fn token_is_required_and_checked() {
    let fake = start(small_world(), Faults::default()).await;
    let http = reqwest::Client::new();
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    assert_eq!(
        query_raw(&http, &fake, &token, ENROLLED, 1, 10, args.clone())
            .await
            .status(),
        200
    );
    let wrong = query_raw(&http, &fake, "not-a-token", ENROLLED, 1, 10, args.clone()).await;
    assert_eq!(wrong.status(), 401);
    let none = http
        .post(format!("{}/ws/schema/query/{ENROLLED}", fake.base_url()))
        .json(&args)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let schools = http
        .get(format!("{}/ws/v1/district/school", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(schools.status(), 401);
    let count = http
        .post(format!(
            "{}/ws/schema/query/{ENROLLED}/count",
            fake.base_url()
        ))
        .bearer_auth("nope")
        .json(&args)
        .send()
        .await
        .unwrap();
    assert_eq!(count.status(), 401);
    assert_eq!(fake.stats().answered_401, 4);
    fake.shutdown().await;
}

#[tokio::test]
async fn expired_token_gets_401() {
    let faults = Faults {
        // Long enough that the first request is well inside it on any
        // machine; the test then waits for the expiry by state, not time.
        token_ttl: Some(Duration::from_secs(3)),
        ..Faults::default()
    };
    let fake = start(small_world(), faults).await;
    let http = reqwest::Client::new();
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    let r = query_raw(&http, &fake, &token, ENROLLED, 1, 10, args.clone()).await;
    assert_eq!(r.status(), 200);
    let mut status = 200;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = query_raw(&http, &fake, &token, ENROLLED, 1, 10, args.clone()).await;
        status = r.status().as_u16();
        if status != 200 {
            break;
        }
    }
    assert_eq!(status, 401);
    let fresh = get_token(&http, &fake).await;
    let r = query_raw(&http, &fake, &fresh, ENROLLED, 1, 10, args).await;
    assert_eq!(r.status(), 200);
    fake.shutdown().await;
}

#[tokio::test]
async fn expires_in_reports_the_ttl() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let r: Value = http
        .post(format!("{}/oauth/access_token", fake.base_url()))
        .basic_auth("student-sync-demo", Some("demo-secret"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["expires_in"], "3599");
    fake.shutdown().await;
    let faults = Faults {
        token_ttl: Some(Duration::from_secs(60)),
        ..Faults::default()
    };
    let fake = start(small_world(), faults).await;
    let r: Value = http
        .post(format!("{}/oauth/access_token", fake.base_url()))
        .basic_auth("student-sync-demo", Some("demo-secret"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["expires_in"], "60");
    fake.shutdown().await;
}

#[tokio::test]
async fn schools_come_from_a_powerquery_and_ws_v1_is_locked() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    assert_eq!(count(&http, &fake, &token, SCHOOLS, json!({})).await, 2);
    let list = page(&http, &fake, &token, SCHOOLS, 1, 100, json!({})).await;
    assert_eq!(
        list,
        [
            json!({"school_number": "101", "name": "Crescent Heights High"}),
            json!({"school_number": "102", "name": "Bow Valley Middle"})
        ]
    );
    let r = query_raw(
        &http,
        &fake,
        &token,
        SCHOOLS,
        1,
        10,
        json!({"school_number": "101"}),
    )
    .await;
    assert_eq!(r.status(), 400, "the schools query takes no arguments");
    // PowerSchool 25.2: a valid token, and still no /ws/v1 for this plugin.
    for path in ["/ws/v1/district/school", "/ws/v1/school/1/student"] {
        let r = http
            .get(format!("{}{path}", fake.base_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["errorMessage"]["message"],
            "Plugin is missing required accessLevelV1Api READ permission"
        );
    }
    assert_eq!(fake.stats().v1_requests, 2);
    fake.shutdown().await;
}

#[tokio::test]
async fn enrolled_query_filters_by_school_and_status() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    let r = page(
        &http,
        &fake,
        &token,
        ENROLLED,
        1,
        100,
        json!({"school_number": "101"}),
    )
    .await;
    assert_eq!(dcids(&r, "dcid"), vec!["5001", "5002", "5005"]);
    assert_eq!(col(&r[1], "enroll_status").as_deref(), Some("-1"));
    assert_eq!(col(&r[0], "schoolid").as_deref(), Some("101"));
    assert_eq!(col(&r[0], "grade_level").as_deref(), Some("10"));
    assert_eq!(col(&r[0], "entrydate").as_deref(), Some("2025-08-27"));
    for rec in &r {
        for key in [
            "dcid",
            "id",
            "student_number",
            "first_name",
            "last_name",
            "grade_level",
            "schoolid",
            "enroll_status",
            "entrydate",
            "orgemail",
        ] {
            assert!(rec[key].is_string(), "{key} in {rec}");
        }
    }
    // personalemail is NULL everywhere: once "" and once absent.
    assert_eq!(r[0]["personalemail"], "");
    assert!(r[1].get("personalemail").is_none());
    // A number is accepted as the argument too.
    let r = page(
        &http,
        &fake,
        &token,
        ENROLLED,
        1,
        100,
        json!({"school_number": 102}),
    )
    .await;
    assert_eq!(dcids(&r, "dcid"), vec!["5006"]);
    let r = page(
        &http,
        &fake,
        &token,
        ENROLLED,
        1,
        100,
        json!({"school_number": "999"}),
    )
    .await;
    assert!(r.is_empty());
    fake.shutdown().await;
}

#[tokio::test]
async fn independent_query_keeps_enrolled_121_students() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    let r = page(&http, &fake, &token, INDEPENDENT, 1, 100, json!({})).await;
    assert_eq!(dcids(&r, "dcid"), vec!["5002", "5006"]);
    assert_eq!(col(&r[0], "enrlytype2").as_deref(), Some("121"));
    assert_eq!(col(&r[1], "enrlytype3").as_deref(), Some("121"));
    assert_eq!(count(&http, &fake, &token, INDEPENDENT, json!({})).await, 2);
    fake.shutdown().await;
}

#[tokio::test]
async fn contacts_query_filters_by_school_and_student_status() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    let r = page(
        &http,
        &fake,
        &token,
        CONTACTS,
        1,
        100,
        json!({"school_number": "101"}),
    )
    .await;
    let pairs: Vec<(String, String)> = r
        .iter()
        .map(|c| (col(c, "studentsdcid").unwrap(), col(c, "personid").unwrap()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("5001".to_string(), "801".to_string()),
            ("5001".to_string(), "802".to_string()),
            ("5002".to_string(), "803".to_string()),
        ]
    );
    // 801 is not decision-making: "0" or absent, never "1".
    assert_ne!(col(&r[0], "isdecisionmaking").as_deref(), Some("1"));
    assert_eq!(col(&r[1], "isdecisionmaking").as_deref(), Some("1"));
    assert_eq!(col(&r[1], "email").as_deref(), Some("p802@example.com"));
    fake.shutdown().await;
}

#[tokio::test]
async fn guardian_query_is_nested_and_unfiltered() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    let r = page(&http, &fake, &token, GUARDIANS, 1, 100, json!({})).await;
    assert_eq!(r.len(), 4, "every row, whatever the student's status");
    for rec in &r {
        assert!(rec["id"].is_number());
        let tables = &rec["tables"];
        assert!(tables["guardianstudent"]["guardianid"].is_string());
        assert!(tables["guardianstudent"]["studentsdcid"].is_string());
        assert_eq!(
            tables["guardian"]["guardianid"],
            tables["guardianstudent"]["guardianid"]
        );
        assert_eq!(
            tables["pcas_emailcontact"]["emailaddress"],
            tables["guardian"]["email"]
        );
        assert!(rec.get("guardianid").is_none(), "nested, not flat: {rec}");
    }
    let keys: Vec<(String, String)> = r
        .iter()
        .map(|g| {
            (
                col(g, "studentsdcid").unwrap(),
                col(g, "guardianid").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("5001".into(), "9001".into()),
            ("5001".into(), "9002".into()),
            ("5004".into(), "9003".into()),
            ("5006".into(), "9001".into()),
        ]
    );
    assert_eq!(col(&r[0], "accounttype").as_deref(), Some("webaccess"));
    assert_ne!(col(&r[1], "accounttype").as_deref(), Some("webaccess"));
    assert_eq!(r[0]["tables"]["guardian"]["email"], " Mei.Lee@Example.com ");
    fake.shutdown().await;
}

#[tokio::test]
async fn spot_sync_arguments_narrow_the_queries() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    let r = page(
        &http,
        &fake,
        &token,
        ENROLLED,
        1,
        100,
        json!({"students_dcid": "5006"}),
    )
    .await;
    assert_eq!(dcids(&r, "dcid"), vec!["5006"]);
    let r = page(
        &http,
        &fake,
        &token,
        ENROLLED,
        1,
        100,
        json!({"school_number": "101", "students_dcid": "5006"}),
    )
    .await;
    assert!(r.is_empty());
    let r = page(
        &http,
        &fake,
        &token,
        CONTACTS,
        1,
        100,
        json!({"students_dcid": "5001"}),
    )
    .await;
    assert_eq!(r.len(), 2);
    let r = page(
        &http,
        &fake,
        &token,
        INDEPENDENT,
        1,
        100,
        json!({"students_dcid": "5002"}),
    )
    .await;
    assert_eq!(dcids(&r, "dcid"), vec!["5002"]);
    fake.shutdown().await;
}

#[tokio::test]
async fn missing_or_unknown_argument_is_400_and_unknown_query_404() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    for (name, args) in [
        (ENROLLED, json!({})),
        (CONTACTS, json!({})),
        (GUARDIANS, json!({"school_number": "101"})),
        // The built-in guardian query declares no arguments at all.
        (GUARDIANS, json!({"students_dcid": "5001"})),
        (GUARDIANS, json!({"email": "mei.lee@example.com"})),
        (ENROLLED, json!({"school_number": "abc"})),
    ] {
        let r = query_raw(&http, &fake, &token, name, 1, 10, args.clone()).await;
        assert_eq!(r.status(), 400, "{name} {args}");
        let v: Value = r.json().await.expect("JSON error body");
        assert!(v["message"].is_string());
    }
    let r = query_raw(
        &http,
        &fake,
        &token,
        "org.studentsync.sync.students.nothere",
        1,
        10,
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!(
            "{}/ws/schema/query/org.studentsync.sync.students.nothere/count",
            fake.base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    fake.shutdown().await;
}

#[tokio::test]
async fn paging_adds_up_to_count() {
    let world = generate(3000, 7);
    let http = reqwest::Client::new();
    let fake = start(world, Faults::default()).await;
    let token = get_token(&http, &fake).await;
    for (name, args) in [
        (ENROLLED, json!({"school_number": "101"})),
        (CONTACTS, json!({"school_number": "102"})),
        (GUARDIANS, json!({})),
        (INDEPENDENT, json!({})),
    ] {
        let total = count(&http, &fake, &token, name, args.clone()).await;
        assert!(total > 0, "{name}");
        let size = 97;
        let pages = (total as usize).div_ceil(size);
        let mut seen = Vec::new();
        for p in 1..=pages {
            let r = page(&http, &fake, &token, name, p, size, args.clone()).await;
            assert!(r.len() <= size);
            seen.extend(r);
        }
        assert_eq!(seen.len() as u64, total, "{name}");
        let distinct: HashSet<String> = seen.iter().map(|r| r.to_string()).collect();
        assert_eq!(distinct.len() as u64, total, "{name}: pages overlap");
        // Past the end: no records, `record` absent or empty.
        for past in [pages + 1, pages + 2] {
            let r = query_raw(&http, &fake, &token, name, past, size, args.clone()).await;
            let v: Value = r.json().await.unwrap();
            match v.get("record") {
                None => {}
                Some(list) => assert_eq!(list.as_array().unwrap().len(), 0),
            }
        }
        // pagesize=0: everything at once, in the same order.
        let all = page(&http, &fake, &token, name, 1, 0, args.clone()).await;
        assert_eq!(all, seen, "{name}");
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn empty_first_page_has_no_record_key() {
    let http = reqwest::Client::new();
    let fake = start(small_world(), Faults::default()).await;
    let token = get_token(&http, &fake).await;
    let r = query_raw(
        &http,
        &fake,
        &token,
        ENROLLED,
        1,
        10,
        json!({"school_number": "555"}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert!(v.get("record").is_none(), "{v}");
    fake.shutdown().await;
}

#[tokio::test]
async fn fail_first_then_success() {
    let faults = Faults {
        fail_first: 2,
        ..Faults::default()
    };
    let http = reqwest::Client::new();
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    // /count is not subject to page faults.
    assert_eq!(count(&http, &fake, &token, ENROLLED, args.clone()).await, 3);
    for _ in 0..2 {
        let r = query_raw(&http, &fake, &token, ENROLLED, 1, 10, args.clone()).await;
        assert_eq!(r.status(), 500);
    }
    let r = page(&http, &fake, &token, ENROLLED, 1, 10, args).await;
    assert_eq!(r.len(), 3);
    let stats = fake.stats();
    assert_eq!(stats.answered_500, 2);
    assert_eq!(stats.page_requests, 3);
    assert_eq!(stats.count_requests, 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn rate_limit_first_sends_retry_after() {
    let faults = Faults {
        fail_first: 1,
        rate_limit_first: 1,
        retry_after_secs: 7,
        ..Faults::default()
    };
    let http = reqwest::Client::new();
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    let r = query_raw(&http, &fake, &token, ENROLLED, 1, 10, args.clone()).await;
    assert_eq!(r.status(), 500);
    let r = query_raw(&http, &fake, &token, ENROLLED, 1, 10, args.clone()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let r = query_raw(&http, &fake, &token, ENROLLED, 1, 10, args).await;
    assert_eq!(r.status(), 200);
    assert_eq!(fake.stats().answered_429, 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn truncate_first_sends_unparseable_200() {
    let faults = Faults {
        truncate_first: 1,
        ..Faults::default()
    };
    let http = reqwest::Client::new();
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    let r = query_raw(&http, &fake, &token, ENROLLED, 1, 10, args.clone()).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let r = page(&http, &fake, &token, ENROLLED, 1, 10, args).await;
    assert_eq!(r.len(), 3);
    assert_eq!(fake.stats().truncated, 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn always_fail_queries_fail_pages_and_counts() {
    let faults = Faults {
        always_fail_queries: vec![CONTACTS.to_string()],
        ..Faults::default()
    };
    let http = reqwest::Client::new();
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    for _ in 0..3 {
        let r = query_raw(&http, &fake, &token, CONTACTS, 1, 10, args.clone()).await;
        assert_eq!(r.status(), 500);
    }
    let r = http
        .post(format!(
            "{}/ws/schema/query/{CONTACTS}/count",
            fake.base_url()
        ))
        .bearer_auth(&token)
        .json(&args)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let r = page(&http, &fake, &token, ENROLLED, 1, 10, args).await;
    assert_eq!(r.len(), 3);
    fake.shutdown().await;
}

#[tokio::test]
async fn error_rate_is_seeded_and_roughly_right() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let faults = Faults {
            error_rate: 0.3,
            rate_limit_rate: 0.2,
            seed,
            ..Faults::default()
        };
        let http = reqwest::Client::new();
        let fake = start(small_world(), faults).await;
        let token = get_token(&http, &fake).await;
        let mut out = Vec::new();
        for _ in 0..100 {
            let r = query_raw(&http, &fake, &token, INDEPENDENT, 1, 10, json!({})).await;
            out.push(r.status().as_u16());
        }
        fake.shutdown().await;
        out
    }
    let a = statuses(42).await;
    assert_eq!(a, statuses(42).await, "same seed, same faults");
    assert_ne!(a, statuses(43).await);
    let n500 = a.iter().filter(|s| **s == 500).count();
    let n429 = a.iter().filter(|s| **s == 429).count();
    assert!((15..=45).contains(&n500), "{n500} of 100 answered 500");
    assert!((5..=25).contains(&n429), "{n429} of 100 answered 429");
}

#[tokio::test]
async fn truncate_rate_one_cuts_every_page() {
    let faults = Faults {
        truncate_rate: 1.0,
        ..Faults::default()
    };
    let http = reqwest::Client::new();
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    for p in 1..=3 {
        let r = query_raw(&http, &fake, &token, INDEPENDENT, p, 1, json!({})).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
    assert_eq!(fake.stats().truncated, 3);
    fake.shutdown().await;
}

#[tokio::test]
async fn overrides_plant_values() {
    let faults = Faults {
        overrides: vec![
            FieldOverride {
                query: ENROLLED.to_string(),
                record_index: 2,
                field: "enroll_status".to_string(),
                value: json!("banana"),
            },
            FieldOverride {
                query: GUARDIANS.to_string(),
                record_index: 0,
                field: "email".to_string(),
                value: json!(12),
            },
            FieldOverride {
                query: CONTACTS.to_string(),
                record_index: 1,
                field: "personid".to_string(),
                value: Value::Null,
            },
        ],
        ..Faults::default()
    };
    let http = reqwest::Client::new();
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    // Index 2 of the full result is on page 2 with pagesize 2.
    let p1 = page(&http, &fake, &token, ENROLLED, 1, 2, args.clone()).await;
    assert!(p1.iter().all(|r| r["enroll_status"] != "banana"));
    let p2 = page(&http, &fake, &token, ENROLLED, 2, 2, args.clone()).await;
    assert_eq!(p2[0]["dcid"], "5005");
    assert_eq!(p2[0]["enroll_status"], "banana");
    let g = page(&http, &fake, &token, GUARDIANS, 1, 10, json!({})).await;
    assert_eq!(g[0]["tables"]["guardian"]["email"], 12);
    let c = page(&http, &fake, &token, CONTACTS, 1, 10, args).await;
    assert!(c[1].get("personid").is_none());
    assert!(c[0].get("personid").is_some());
    fake.shutdown().await;
}

#[tokio::test]
async fn page_latency_delays_pages_only() {
    // An hour of latency: the page cannot answer during this test on any
    // machine, so what happened is checked, not how long it took.
    let faults = Faults {
        page_latency: Duration::from_secs(3600),
        ..Faults::default()
    };
    let http = reqwest::Client::new();
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let mut page_request = Box::pin(page(&http, &fake, &token, INDEPENDENT, 1, 10, json!({})));
    let counted = tokio::select! {
        biased;
        _ = &mut page_request => panic!("a page answered although its latency is an hour"),
        n = count(&http, &fake, &token, INDEPENDENT, json!({})) => n,
    };
    assert!(counted > 0, "the count answers at once: {counted}");
    assert!(
        futures::FutureExt::now_or_never(&mut page_request).is_none(),
        "the page is still held back"
    );
    // Dropping the fake aborts the held page (a graceful shutdown would wait for it).
    drop(page_request);
    drop(fake);
}

#[tokio::test]
async fn dropping_the_fake_stops_it() {
    let fake = start(small_world(), Faults::default()).await;
    let url = fake.base_url();
    drop(fake);
    // The server task ends soon after the drop: wait for it by state.
    let mut answering = true;
    for _ in 0..100 {
        let r = reqwest::Client::new()
            .post(format!("{url}/oauth/access_token"))
            .send()
            .await;
        if r.is_err() {
            answering = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!answering, "still answering after drop");
}

#[test]
fn generate_is_deterministic() {
    let a = generate(2000, 11);
    assert_eq!(a, generate(2000, 11));
    assert_ne!(a, generate(2000, 12));
    assert_eq!(a.students.len(), 2000);
    assert_eq!(generate(0, 1).students.len(), 0);
    assert_eq!(generate(1, 1).students.len(), 1);
}

#[test]
fn generate_has_realistic_proportions() {
    let n = 20_000;
    let w = generate(n, 2026);
    assert_eq!(w.students.len(), n);
    let ratio = |x: usize| x as f64 / n as f64;

    assert_eq!(w.schools.len(), 34, "600 students a school, rounded up");
    let per_school = n as f64 / w.schools.len() as f64;
    assert!((500.0..=700.0).contains(&per_school), "{per_school}");
    let numbers: HashSet<i64> = w.schools.iter().map(|s| s.school_number).collect();
    assert_eq!(numbers.len(), w.schools.len());
    assert!(w.students.iter().all(|s| numbers.contains(&s.schoolid)));
    assert!(w.schools.iter().all(|s| !s.name.is_empty()));

    let dcids: HashSet<i64> = w.students.iter().map(|s| s.dcid).collect();
    assert_eq!(dcids.len(), n, "dcids unique");
    assert!(w.contacts.iter().all(|c| dcids.contains(&c.student_dcid)));
    assert!(w
        .guardian_accounts
        .iter()
        .all(|g| dcids.contains(&g.student_dcid)));

    let contacts = ratio(w.contacts.len());
    assert!(
        (1.8..=2.3).contains(&contacts),
        "{contacts} contacts per student"
    );
    let links = ratio(w.guardian_accounts.len());
    assert!(
        (1.3..=1.7).contains(&links),
        "{links} guardian links per student"
    );

    let independent = ratio(w.students.iter().filter(|s| s.is_independent()).count());
    assert!(
        (0.02..=0.04).contains(&independent),
        "{independent} independent"
    );
    let status = |code: i64| {
        w.students
            .iter()
            .filter(|s| s.enroll_status == code)
            .count()
    };
    assert!(ratio(status(0)) > 0.8);
    assert!(status(-1) > 0 && ratio(status(-1)) < 0.05);
    assert!(status(2) > 0 && status(3) > 0);

    let non_decision = w
        .contacts
        .iter()
        .filter(|c| c.isdecisionmaking == 0)
        .count() as f64
        / w.contacts.len() as f64;
    assert!((0.06..=0.14).contains(&non_decision), "{non_decision}");
    let web = w
        .guardian_accounts
        .iter()
        .filter(|g| g.web_access_account)
        .count() as f64
        / w.guardian_accounts.len() as f64;
    assert!((0.004..=0.02).contains(&web), "{web} web access");

    // The mess: missing, blank, padded, mixed-case and malformed emails.
    let emails: Vec<Option<&str>> = w.contacts.iter().map(|c| c.email.as_deref()).collect();
    let share = |f: &dyn Fn(Option<&str>) -> bool| {
        emails.iter().filter(|e| f(**e)).count() as f64 / emails.len() as f64
    };
    let missing = share(&|e| e.is_none());
    let blank = share(&|e| e.is_some_and(|e| e.trim().is_empty()));
    let padded = share(&|e| e.is_some_and(|e| !e.trim().is_empty() && e.trim() != e));
    let mixed = share(&|e| e.is_some_and(|e| e != e.to_lowercase()));
    let malformed =
        share(&|e| e.is_some_and(|e| !e.trim().is_empty() && e.trim().matches('@').count() != 1));
    for (what, value) in [
        ("missing", missing),
        ("blank", blank),
        ("padded", padded),
        ("mixed case", mixed),
        ("malformed", malformed),
    ] {
        assert!((0.005..=0.2).contains(&value), "{what}: {value}");
    }

    // Guardian ids name one person; siblings share guardians; most account
    // emails match one of the student's contacts, and some match none.
    let mut person: std::collections::HashMap<i64, (&Option<String>, &Option<String>)> =
        Default::default();
    for g in &w.guardian_accounts {
        let entry = person
            .entry(g.guardianid)
            .or_insert((&g.email, &g.first_name));
        assert_eq!(
            *entry,
            (&g.email, &g.first_name),
            "guardian {}",
            g.guardianid
        );
    }
    let mut students_per_guardian: std::collections::HashMap<i64, usize> = Default::default();
    for g in &w.guardian_accounts {
        *students_per_guardian.entry(g.guardianid).or_default() += 1;
    }
    assert!(
        students_per_guardian.values().any(|n| *n > 1),
        "siblings share"
    );
    let norm = |e: &Option<String>| e.as_deref().map(|e| e.trim().to_lowercase());
    let mut contact_emails: std::collections::HashMap<i64, Vec<String>> = Default::default();
    for c in &w.contacts {
        if let Some(e) = norm(&c.email) {
            contact_emails.entry(c.student_dcid).or_default().push(e);
        }
    }
    let matched = w
        .guardian_accounts
        .iter()
        .filter(|g| {
            let e = norm(&g.email).unwrap_or_default();
            contact_emails
                .get(&g.student_dcid)
                .is_some_and(|l| l.contains(&e))
        })
        .count() as f64
        / w.guardian_accounts.len() as f64;
    assert!(
        (0.8..0.99).contains(&matched),
        "{matched} of links match a contact"
    );
}

#[tokio::test]
async fn serves_a_generated_district() {
    let world = generate(20_000, 3);
    let expected_enrolled = world
        .students
        .iter()
        .filter(|s| s.schoolid == 105 && s.enroll_status <= 0)
        .count() as u64;
    let http = reqwest::Client::new();
    let fake = start(world, Faults::default()).await;
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "105"});
    assert_eq!(
        count(&http, &fake, &token, ENROLLED, args.clone()).await,
        expected_enrolled
    );
    let all = page(&http, &fake, &token, GUARDIANS, 1, 1000, json!({})).await;
    assert_eq!(all.len(), 1000);
    fake.shutdown().await;
}

#[tokio::test]
async fn guardians_flat_or_with_the_email_under_another_column() {
    let http = reqwest::Client::new();
    let flat = Faults {
        flat_guardians: true,
        ..Faults::default()
    };
    let fake = start(small_world(), flat).await;
    let token = get_token(&http, &fake).await;
    let r = page(&http, &fake, &token, GUARDIANS, 1, 100, json!({})).await;
    assert!(r.iter().all(|g| g.get("tables").is_none()));
    assert_eq!(r[0]["guardianid"], "9001");
    assert_eq!(r[0]["email"], " Mei.Lee@Example.com ");
    assert_eq!(r[0]["accounttype"], "webaccess");
    fake.shutdown().await;

    let renamed = Faults {
        guardian_email_column: Some("pcas_contact.mail".to_string()),
        ..Faults::default()
    };
    let fake = start(small_world(), renamed).await;
    let token = get_token(&http, &fake).await;
    let r = page(&http, &fake, &token, GUARDIANS, 1, 100, json!({})).await;
    let tables = &r[0]["tables"];
    assert_eq!(tables["pcas_contact"]["mail"], " Mei.Lee@Example.com ");
    assert!(tables.get("pcas_emailcontact").is_none(), "{tables}");
    assert!(tables["guardian"].get("email").is_none(), "{tables}");
    fake.shutdown().await;
}

#[tokio::test]
async fn a_page_size_cap_truncates_silently_and_is_counted() {
    let http = reqwest::Client::new();
    let faults = Faults {
        page_size_cap: Some(2),
        ..Faults::default()
    };
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    let first = page(&http, &fake, &token, ENROLLED, 1, 100, args.clone()).await;
    assert_eq!(dcids(&first, "dcid"), ["5001", "5002"]);
    let second = page(&http, &fake, &token, ENROLLED, 2, 2, args.clone()).await;
    assert_eq!(dcids(&second, "dcid"), ["5005"]);
    let all = page(&http, &fake, &token, ENROLLED, 1, 0, args).await;
    assert_eq!(all.len(), 2, "0 (everything) is capped too");
    assert_eq!(fake.stats().capped_pages, 2);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_query_not_installed_answers_404_naming_it() {
    let http = reqwest::Client::new();
    let faults = Faults {
        missing_queries: vec![SCHOOLS.to_string()],
        ..Faults::default()
    };
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let r = query_raw(&http, &fake, &token, SCHOOLS, 1, 10, json!({})).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], format!("Query {SCHOOLS} not found"));
    let r = http
        .post(format!(
            "{}/ws/schema/query/{SCHOOLS}/count",
            fake.base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(count(&http, &fake, &token, INDEPENDENT, json!({})).await, 2);
    fake.shutdown().await;
}

#[tokio::test]
async fn every_nth_request_is_throttled_with_a_wait() {
    let http = reqwest::Client::new();
    let faults = Faults {
        throttle_every: 3,
        throttle_wait_secs: 7,
        throttle_status: Some(403),
        ..Faults::default()
    };
    let fake = start(small_world(), faults).await;
    let token = get_token(&http, &fake).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = query_raw(&http, &fake, &token, INDEPENDENT, 1, 10, json!({})).await;
        statuses.push(r.status().as_u16());
        if r.status() == 403 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["message"], "Too many requests, wait 7 seconds");
        }
    }
    assert_eq!(statuses, [200, 200, 403, 200, 200, 403]);
    assert_eq!(fake.stats().throttled, 2);
    fake.shutdown().await;
}

#[tokio::test]
async fn the_most_requests_in_flight_are_counted_per_query() {
    // Long enough that four requests sent together are all in the server.
    let faults = Faults {
        page_latency: Duration::from_millis(500),
        ..Faults::default()
    };
    let fake = start(small_world(), faults).await;
    let http = reqwest::Client::new();
    let token = get_token(&http, &fake).await;
    let args = json!({"school_number": "101"});
    let four = (0..4).map(|p| query_raw(&http, &fake, &token, ENROLLED, p + 1, 1, args.clone()));
    let answers = futures::future::join_all(four).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    let stats = fake.stats();
    assert_eq!(stats.max_in_flight_by_query.get(ENROLLED), Some(&4));
    assert_eq!(stats.max_in_flight, 4);
    fake.reset_max_in_flight();
    page(&http, &fake, &token, ENROLLED, 1, 1, args).await;
    let stats = fake.stats();
    assert_eq!(stats.max_in_flight_by_query.get(ENROLLED), Some(&1));
    fake.shutdown().await;
}
