#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The one district-wide bound on data requests in flight
//! (`powerschool.max_requests_in_flight`), as the fake PowerSchool counts
//! them: a whole-district fetch keeps the server exactly that busy and never
//! busier, and a single long query may use all of it (not a fixed few pages).

mod common;

use common::{client, settings_for, start_fake};
use std::time::Duration;
use student_sync::harness::fake_powerschool::{generate, Faults};
use student_sync::harness::world::PowerSchoolSide;
use student_sync::powerschool::GUARDIANS_QUERY;

/// A page takes long enough on the fake that the requests asked together
/// are in flight together.
fn slow_pages() -> Faults {
    Faults {
        page_latency: Duration::from_millis(20),
        ..Faults::default()
    }
}

/// 2,000 students: many schools with a page or two each, and a guardian
/// query of dozens of pages at 50 records a page.
fn district() -> PowerSchoolSide {
    generate(2000, 3)
}

#[tokio::test]
async fn a_district_fetch_keeps_the_bound_full_and_never_passes_it() {
    for bound in [5, 12] {
        let fake = start_fake(district(), slow_pages()).await;
        let mut settings = settings_for(&fake);
        settings.powerschool.max_requests_in_flight = bound;
        let client = client(&settings);

        let snapshot = client.fetch_district().await.unwrap();
        assert!(snapshot.schools.len() > 1, "several schools");
        assert!(!snapshot.guardians.is_empty());

        let served = fake.stats();
        let seen = client.stats();
        assert_eq!(
            served.max_in_flight, bound as u64,
            "the fake saw at most the bound, and the client kept it busy up to it"
        );
        assert_eq!(seen.max_in_flight, bound as u64);
        assert_eq!(seen.in_flight_limit, bound as u64);
        fake.shutdown().await;
    }
}

#[tokio::test]
async fn one_long_query_alone_may_use_the_whole_bound() {
    let fake = start_fake(district(), slow_pages()).await;
    let mut settings = settings_for(&fake);
    settings.powerschool.max_requests_in_flight = 8;
    settings.powerschool.page_size = 10;
    let client = client(&settings);

    let guardians = client.guardians().await.unwrap();
    assert!(guardians.records.len() > 100, "dozens of pages");
    let served = fake.stats();
    assert_eq!(
        served.max_in_flight_by_query.get(GUARDIANS_QUERY),
        Some(&8),
        "pages 2.. of one query go out as many at once as the bound allows"
    );
    assert_eq!(served.max_in_flight, 8);
    fake.shutdown().await;
}

#[tokio::test]
async fn the_default_bound_is_sixty_four() {
    let fake = start_fake(district(), slow_pages()).await;
    let settings = settings_for(&fake);
    assert_eq!(settings.powerschool.max_requests_in_flight, 64);
    let client = client(&settings);
    client.fetch_district().await.unwrap();
    let served = fake.stats();
    assert!(served.max_in_flight <= 64, "{served:?}");
    assert_eq!(client.stats().in_flight_limit, 64);
    fake.shutdown().await;
}

/// Page 1 goes alone while the server's page cap is unknown (its length
/// shows the cap); once a page came back full at the size asked, the
/// server is known to serve it, and a query asks page 1 with the rest.
#[tokio::test]
async fn once_a_full_page_came_back_page_one_goes_with_the_rest() {
    let fake = start_fake(district(), slow_pages()).await;
    let mut settings = settings_for(&fake);
    let guardians = client(&settings).guardians().await.unwrap().records;
    // Four pages, fewer than the bound: every page may be out at once.
    settings.powerschool.page_size = u32::try_from(guardians.len().div_ceil(4)).unwrap();
    settings.powerschool.max_requests_in_flight = 8;
    let client = client(&settings);

    fake.reset_max_in_flight();
    let first = client.guardians().await.unwrap();
    assert_eq!(first.records.len(), guardians.len());
    let served = fake.stats();
    assert_eq!(
        served.max_in_flight_by_query.get(GUARDIANS_QUERY),
        Some(&3),
        "the first query asks page 1 alone, then pages 2 to 4 together"
    );

    fake.reset_max_in_flight();
    let second = client.guardians().await.unwrap();
    assert_eq!(second.records.len(), guardians.len());
    let served = fake.stats();
    assert_eq!(
        served.max_in_flight_by_query.get(GUARDIANS_QUERY),
        Some(&4),
        "page 1 was full at the size asked: the next query asks all four pages together"
    );
    fake.shutdown().await;
}
