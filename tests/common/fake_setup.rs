//! For the fake PowerSchool's own tests (`tests/fake_powerschool*.rs`): a
//! small hand-built world, the fake started on a loopback port, and plain
//! reqwest calls for a token, a page, a count and a record's columns. Plain
//! reqwest rather than the project's client, so the two cannot share a
//! misreading of `docs/powerschool.md`.
#![allow(dead_code)]

use super::records::{account, contact, student};
use serde_json::Value;
use student_sync::harness::fake_powerschool::{spawn, FakeCredentials, Faults, RunningFake};
use student_sync::harness::world::{PowerSchoolSide, WorldSchool};

/// Two schools; 5001..5005 at 101 with statuses 0, -1, 2, 3, 0; 5006 at 102.
/// 5002 (pre-registered) and 5003 (transferred) are independent.
pub fn small_world() -> PowerSchoolSide {
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

pub async fn start(world: PowerSchoolSide, faults: Faults) -> RunningFake {
    spawn(
        world,
        FakeCredentials::default(),
        faults,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("fake starts")
}

pub async fn get_token(http: &reqwest::Client, fake: &RunningFake) -> String {
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

pub async fn query_raw(
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
pub async fn page(
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

pub async fn count(
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
pub fn col(record: &Value, key: &str) -> Option<String> {
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

pub fn dcids(records: &[Value], key: &str) -> Vec<String> {
    records.iter().map(|r| col(r, key).unwrap()).collect()
}
