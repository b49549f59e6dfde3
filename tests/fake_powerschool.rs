#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The fake PowerSchool server's OAuth tokens checked over real HTTP against
//! `docs/powerschool.md`: bad or missing credentials answer 401, every
//! request needs a valid token, tokens expire and `expires_in` reports their
//! lifetime, and a dropped fake stops answering. Plain reqwest rather than
//! the project's client, so the two cannot share a misreading. The queries,
//! paging, faults and generated districts are in `tests/fake_powerschool_*.rs`.

mod common;

use common::fake_setup::{get_token, query_raw, small_world, start};
use serde_json::{json, Value};
use std::time::Duration;
use student_sync::harness::fake_powerschool::{Faults, ENROLLED};

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
