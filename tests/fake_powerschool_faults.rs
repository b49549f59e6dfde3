#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The fake PowerSchool server's injected faults checked over real HTTP:
//! failing, rate-limited, truncated and throttled answers (first ones, a
//! seeded rate, every nth, or a query that always fails), planted field
//! values and page latency. Plain reqwest rather than the project's client,
//! so the two cannot share a misreading.

mod common;

use common::fake_setup::{count, get_token, page, query_raw, small_world, start};
use serde_json::{json, Value};
use std::time::Duration;
use student_sync::harness::fake_powerschool::{
    Faults, FieldOverride, CONTACTS, ENROLLED, GUARDIANS, INDEPENDENT,
};

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
