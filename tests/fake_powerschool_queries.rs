#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The fake PowerSchool server's PowerQueries checked over real HTTP against
//! `docs/powerschool.md`: schools, enrolled and independent students,
//! contacts and guardian accounts, with their filters, record shapes and
//! spot-sync arguments; bad arguments answer 400, unknown or uninstalled
//! queries 404, and `/ws/v1` stays locked. Plain reqwest rather than the
//! project's client, so the two cannot share a misreading.

mod common;

use common::fake_setup::{col, count, dcids, get_token, page, query_raw, small_world, start};
use serde_json::{json, Value};
use student_sync::harness::fake_powerschool::{
    Faults, CONTACTS, ENROLLED, GUARDIANS, INDEPENDENT, SCHOOLS,
};

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
