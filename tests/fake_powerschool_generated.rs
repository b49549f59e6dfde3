#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The fake PowerSchool's generated districts: `generate` is deterministic
//! for a seed, has realistic proportions (schools, contacts, guardian links,
//! statuses and messy emails), and a generated district of 20,000 students
//! is served over real HTTP with plain reqwest.

mod common;

use common::fake_setup::{count, get_token, page, start};
use serde_json::json;
use std::collections::HashSet;
use student_sync::harness::fake_powerschool::{generate, Faults, ENROLLED, GUARDIANS};

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
