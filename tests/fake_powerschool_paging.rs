#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The fake PowerSchool server's paging checked over real HTTP against
//! `docs/powerschool.md`: pages add up to `/count` without overlap, past the
//! end and `pagesize=0` behave as documented, an empty first page has no
//! `record` key, a page-size cap truncates silently, and the requests in
//! flight at once are counted per query. Plain reqwest rather than the
//! project's client, so the two cannot share a misreading.

mod common;

use common::fake_setup::{count, dcids, get_token, page, query_raw, small_world, start};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use student_sync::harness::fake_powerschool::{
    generate, Faults, CONTACTS, ENROLLED, GUARDIANS, INDEPENDENT,
};

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
