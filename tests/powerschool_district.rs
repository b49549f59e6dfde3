#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The PowerSchool client fetching a whole district (`fetch_district`) from
//! the fake server over real HTTP, each snapshot checked record by record
//! against the world served: six schools of enrolled, pre-registered,
//! transferred and independent students, contacts and guardian accounts,
//! fetched with the schools in parallel through two server errors and again
//! alike; a generated district of about 3,000 students from a server that
//! caps the page size (the cap is learned, /ws/v1 never called); and
//! throttling waited out, lowering the requests in flight for good. The
//! client's other tests against the fake are in tests/powerschool_client.rs.

mod common;

use common::client_setup::{fake, guardian, settings};
use common::records::{contact, student};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use student_sync::harness::fake_powerschool::{generate, Faults};
use student_sync::harness::world::{PowerSchoolSide, WorldSchool, WorldStudent};
use student_sync::powerschool::{
    DistrictSnapshot, PowerSchoolClient, GUARDIANS_QUERY, INDEPENDENT_QUERY, SCHOOLS_QUERY,
    STUDENTS_QUERY,
};

/// Six schools, some pre-registered, transferred and independent students,
/// contacts and guardian accounts (some through Web Access).
fn district() -> PowerSchoolSide {
    let mut world = PowerSchoolSide::default();
    let mut dcid = 10_000;
    for (s, school_number) in [101, 102, 205, 310, 311, 400].into_iter().enumerate() {
        world.schools.push(WorldSchool {
            school_number,
            name: format!("School {school_number}"),
        });
        for i in 0..(40 + 17 * s as i64) {
            dcid += 1;
            let status = match i % 10 {
                0 => -1,
                9 => 2,
                _ => 0,
            };
            let mut st = student(dcid, school_number, status);
            if i % 7 == 0 {
                st.enrlytype2 = Some("121".to_string());
            }
            world.students.push(st);
            if status <= 0 {
                world.contacts.push(contact(dcid, dcid * 10, 1));
                world.contacts.push(contact(dcid, dcid * 10 + 1, i % 2));
                world
                    .guardian_accounts
                    .push(guardian(dcid + 50_000, dcid, i % 11 == 0));
            }
        }
    }
    world
}

/// Every record of every query of `world` arrived exactly once: each list
/// equals the world's, sorted by key, nothing missing, nothing twice.
fn assert_snapshot_is(world: &PowerSchoolSide, snapshot: &DistrictSnapshot) {
    let mut want_schools: Vec<i64> = world.schools.iter().map(|s| s.school_number).collect();
    want_schools.sort();
    assert_eq!(
        snapshot
            .schools
            .iter()
            .map(|s| s.school_number)
            .collect::<Vec<_>>(),
        want_schools
    );
    let mut enrolled: Vec<&WorldStudent> = world
        .students
        .iter()
        .filter(|s| s.enroll_status <= 0)
        .collect();
    enrolled.sort_by_key(|s| s.dcid);
    let got: Vec<(i64, i64)> = snapshot
        .students
        .iter()
        .map(|s| (s.dcid, s.school_number))
        .collect();
    let want: Vec<(i64, i64)> = enrolled.iter().map(|s| (s.dcid, s.schoolid)).collect();
    assert_eq!(got, want, "sorted by dcid, each once, with its school");
    let independent: Vec<i64> = snapshot
        .independent_students
        .iter()
        .map(|s| s.dcid)
        .collect();
    let want_independent: Vec<i64> = enrolled
        .iter()
        .filter(|s| s.is_independent())
        .map(|s| s.dcid)
        .collect();
    assert_eq!(independent, want_independent);
    let contacts: Vec<(i64, i64, bool)> = snapshot
        .contacts
        .iter()
        .map(|c| (c.student_dcid, c.person_id, c.is_decision_making))
        .collect();
    let enrolled_dcids: HashSet<i64> = enrolled.iter().map(|s| s.dcid).collect();
    let mut want_contacts: Vec<(i64, i64, bool)> = world
        .contacts
        .iter()
        .filter(|c| enrolled_dcids.contains(&c.student_dcid))
        .map(|c| (c.student_dcid, c.person_id, c.isdecisionmaking == 1))
        .collect();
    want_contacts.sort();
    assert_eq!(contacts, want_contacts);
    let guardians: Vec<(i64, i64, bool, Option<String>)> = snapshot
        .guardians
        .iter()
        .map(|g| {
            (
                g.guardian_id,
                g.student_dcid,
                g.web_access_account,
                g.email.clone(),
            )
        })
        .collect();
    // Values arrive trimmed; an empty one is NULL.
    let email = |e: &Option<String>| {
        e.as_ref()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
    };
    let mut want_guardians: Vec<(i64, i64, bool, Option<String>)> = world
        .guardian_accounts
        .iter()
        .map(|g| {
            (
                g.guardianid,
                g.student_dcid,
                g.web_access_account,
                email(&g.email),
            )
        })
        .collect();
    want_guardians.sort();
    assert_eq!(guardians, want_guardians);
    assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
}

#[tokio::test]
async fn fetch_district_returns_everything_with_schools_in_parallel() {
    let world = district();
    let faults = Faults {
        page_latency: Duration::from_millis(2),
        fail_first: 2,
        ..Faults::default()
    };
    let running = fake(world.clone(), faults).await;
    let mut s = settings(&running.base_url(), 13);
    s.school_concurrency = 4;
    let client = PowerSchoolClient::new(&s).unwrap();
    let snapshot = client.fetch_district().await.unwrap();

    assert_snapshot_is(&world, &snapshot);
    assert_eq!(snapshot.retries, 2);
    assert_eq!(client.stats().server_errors, 2);

    // The same data fetched again gives the same snapshot.
    let again = client.fetch_district().await.unwrap();
    assert_eq!(again.students, snapshot.students);
    assert_eq!(again.contacts, snapshot.contacts);
    assert_eq!(again.retries, 0);
    running.shutdown().await;
}

#[tokio::test]
async fn a_generated_district_arrives_exactly_once_with_ws_v1_locked_and_pages_capped() {
    let world = generate(3000, 11);
    let faults = Faults {
        page_size_cap: Some(100),
        ..Faults::default()
    };
    let running = fake(world.clone(), faults).await;
    let client = PowerSchoolClient::new(&settings(&running.base_url(), 1000)).unwrap();
    let snapshot = client.fetch_district().await.unwrap();
    assert_snapshot_is(&world, &snapshot);
    assert_eq!(
        client.stats().page_size,
        100,
        "the server's cap was learned"
    );
    let served = running.stats();
    assert_eq!(served.v1_requests, 0, "nothing calls /ws/v1");
    assert!(served.capped_pages >= 1);

    // Each query on its own: as many distinct records as /count says, and
    // no page asked above the cap any more.
    let enrolled_101 = world
        .students
        .iter()
        .filter(|s| s.schoolid == 101 && s.enroll_status <= 0)
        .count();
    for (query, args, want) in [
        (SCHOOLS_QUERY, json!({}), world.schools.len()),
        (GUARDIANS_QUERY, json!({}), world.guardian_accounts.len()),
        (
            STUDENTS_QUERY,
            json!({"school_number": "101"}),
            enrolled_101,
        ),
        (
            INDEPENDENT_QUERY,
            json!({}),
            snapshot.independent_students.len(),
        ),
    ] {
        let raw = client.run_query(query, args).await.unwrap();
        assert_eq!(raw.records.len(), want, "{query}");
        assert_eq!(raw.expected_count, want as u64, "{query}");
        assert_eq!(raw.duplicates_dropped, 0, "{query}");
    }
    assert!(enrolled_101 > 100, "the students of 101 take several pages");
    assert_eq!(running.stats().capped_pages, served.capped_pages);
    running.shutdown().await;
}

#[tokio::test]
async fn throttling_is_waited_out_and_lowers_the_requests_in_flight() {
    let world = district();
    // Every 10th request is told to wait a second, with a status (403) that
    // would otherwise mean "not granted": the body decides.
    let faults = Faults {
        page_latency: Duration::from_millis(5),
        throttle_every: 10,
        throttle_wait_secs: 1,
        throttle_status: Some(403),
        ..Faults::default()
    };
    let running = fake(world.clone(), faults).await;
    let mut s = settings(&running.base_url(), 25);
    s.max_requests_in_flight = 24;
    let client = PowerSchoolClient::new(&s).unwrap();
    assert_eq!(
        client.stats().in_flight_limit,
        24,
        "powerschool.max_requests_in_flight"
    );

    let snapshot = client.fetch_district().await.unwrap();
    assert_snapshot_is(&world, &snapshot);
    let stats = client.stats();
    assert_eq!(stats.throttled, running.stats().throttled);
    assert!(stats.throttled >= 6, "{stats:?}");
    assert!(
        stats.retries >= stats.throttled,
        "each throttled request was retried"
    );
    assert!(
        stats.in_flight_limit <= 6,
        "halved at least twice: {stats:?}"
    );

    // From now on the server never sees more than the lowered limit, even
    // with several queries asking at once.
    let limit = stats.in_flight_limit;
    running.reset_max_in_flight();
    let (a, b, c, d) = tokio::join!(
        client.students(101),
        client.students(400),
        client.contacts(310),
        client.guardians()
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok() && d.is_ok());
    let most = running.stats().max_in_flight;
    assert!(
        most >= 1 && most <= limit,
        "{most} in flight, limit {limit}"
    );
    assert!(client.stats().in_flight_limit <= limit);
    running.shutdown().await;
}
