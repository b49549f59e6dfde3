//! Whole districts: every case at once, order independence, and the large district.

use super::*;
use crate::rules::verdict::codes::{decode, CodedReasons, RowKeys};
use crate::rules::{decide_keeping, ConnectionDecision, Keep};

/// Everything at once, to check that row order never matters.
fn busy_district() -> DistrictFacts {
    DistrictFacts {
        students: vec![
            student(5001),
            independent_student(5002, "kid@students.example.org"),
            student(5003),
        ],
        contacts: vec![
            contact(5001, 801, MEI, true),
            contact(5001, 802, "Dad@Example.com", false),
            contact(5002, 801, MEI, true),
            contact(5002, 803, "dad@example.com", true),
            contact(5003, 804, "kid@students.example.org", true),
        ],
        guardian_rows: vec![
            row(9001, 5001, MEI),
            row(9002, 5001, "dad@example.com"),
            row(9002, 5002, "DAD@example.com"),
            row(9001, 5002, MEI),
            web_access_row(9003, 5003, "kid@students.example.org"),
            row(9004, 5003, "nobody@example.com"),
            row(9005, 7000, "gone@example.com"),
        ],
        users: vec![
            user(1, MEI),
            unverified_user(2, "dad@example.com"),
            linked_user(3, "gran@example.com", 9009),
        ],
        connections: vec![
            connection(5001, 1, Full, Origin::Admin),
            connection(5003, 3, Full, Origin::Form),
            connection(5003, 1, ReadOnly, Origin::Powerschool),
        ],
        forms: vec![form(5003, 3), form(5002, 1), form(5001, 3)],
        policy: Policy {
            on_powerschool_removal: RemovalPolicy::Restrict,
        },
    }
}

#[test]
fn decisions_do_not_depend_on_row_order() {
    let facts = busy_district();
    let expected = decide(&facts);
    let mut reversed = facts.clone();
    reversed.students.reverse();
    reversed.contacts.reverse();
    reversed.guardian_rows.reverse();
    reversed.users.reverse();
    reversed.connections.reverse();
    reversed.forms.reverse();
    assert_eq!(decide(&reversed), expected);
    let mut rotated = facts.clone();
    rotated.guardian_rows.rotate_left(3);
    rotated.contacts.rotate_left(2);
    assert_eq!(decide(&rotated), expected);
}

#[test]
fn decisions_keeping_some_verdicts_differ_only_in_the_verdicts_dropped() {
    let facts = busy_district();
    let all = decide(&facts);
    let keep = |d: &ConnectionDecision| d.student_dcid != 5003;
    let some = decide_keeping(
        &facts,
        &Keep {
            verdicts_of: &keep,
            as_codes: false,
            unchanged: &|_| false,
        },
    );
    assert_eq!(some.connections.len(), all.connections.len());
    assert!(all.connections.iter().any(|d| !keep(d)));
    let mut expected = all.clone();
    for d in expected.connections.iter_mut().filter(|d| !keep(d)) {
        d.verdicts.clear();
    }
    assert_eq!(some, expected);
    assert!(some
        .connections
        .iter()
        .filter(|d| keep(d))
        .all(|d| !d.verdicts.is_empty()));
}

#[test]
fn decisions_the_caller_holds_are_counted_not_kept_and_change_nothing_else() {
    let facts = busy_district();
    let all = decide(&facts);
    let held = |d: &ConnectionDecision| {
        d.student_dcid == 5003 || d.case == ConnectionCase::UnlinkedReturningParent
    };
    let held_count = all.connections.iter().filter(|d| held(d)).count();
    assert!(held_count > 0 && held_count < all.connections.len());
    let some = decide_keeping(
        &facts,
        &Keep {
            verdicts_of: &|_| true,
            as_codes: false,
            unchanged: &held,
        },
    );
    assert_eq!(some.unchanged, held_count as u64);
    let mut expected = all.clone();
    expected.connections.retain(|d| !held(d));
    expected.unchanged = held_count as u64;
    // The incomplete users still come from every decision, kept or not.
    assert!(!all.incomplete_users.is_empty());
    assert_eq!(some, expected);
}

#[test]
fn decisions_kept_as_codes_read_back_as_the_verdicts_and_hold_for_a_new_users_id() {
    let mut facts = busy_district();
    // A parent SchoolEngage does not know yet: the run creates the user.
    facts
        .contacts
        .push(contact(5001, 810, "new.parent@example.com", true));
    facts
        .guardian_rows
        .push(row(9010, 5001, "new.parent@example.com"));
    let all = decide(&facts);
    let coded = decide_keeping(
        &facts,
        &Keep {
            verdicts_of: &|_| true,
            as_codes: true,
            unchanged: &|_| false,
        },
    );
    assert_eq!(coded.connections.len(), all.connections.len());
    // The users to create are moved out of the engine, not copied: the same.
    assert!(!all.new_users.is_empty());
    assert_eq!(coded.new_users, all.new_users);
    let mut new_users = 0;
    for (c, a) in coded.connections.iter().zip(&all.connections) {
        assert_eq!(
            (c.student_dcid, c.user, c.tier),
            (a.student_dcid, a.user, a.tier)
        );
        let codes = c.coded.as_ref().expect("every decision here can be coded");
        assert!(c.verdicts.is_empty(), "coded verdicts are not held twice");
        assert_eq!(*c.verdicts_read(), *a.verdicts);
        if let UserRef::New(_) = c.user {
            new_users += 1;
            assert!(codes.user_free, "no code stands for a user not yet made");
            let keys = RowKeys {
                user_id: 424_242,
                ..c.audit_keys()
            };
            assert_eq!(
                codes.for_row(&c.audit_keys(), &keys).ok(),
                Some(&*codes.codes)
            );
            let read = decode(&keys, &codes.codes).unwrap();
            assert_eq!(read.verdicts, a.verdicts, "the same under the new id");
        }
    }
    assert!(new_users > 0, "the district creates users");
}

#[test]
fn codes_that_cannot_be_read_are_never_passed_on_for_a_new_users_row() {
    let made = RowKeys {
        student_dcid: 5001,
        user_id: 0,
        tier_after: Some(Full),
        case: ConnectionCase::Created,
    };
    let row = RowKeys {
        user_id: 77,
        ..made
    };
    let broken = CodedReasons {
        codes: "[9001, \"a@b.example\", [\"no such code\"]]".into(),
        user_free: false,
    };
    assert!(matches!(broken.for_row(&made, &row), Err(Err(_))));
}

#[test]
fn busy_district_decides_every_case() {
    let d = decide(&busy_district());
    let summary: Vec<(i64, UserRef, ConnectionCase, AccessTier, ConnectionAction)> = d
        .connections
        .iter()
        .map(|c| (c.student_dcid, c.user, c.case, c.tier, c.action))
        .collect();
    use ConnectionAction::*;
    use ConnectionCase::*;
    assert_eq!(
        summary,
        vec![
            (5001, UserRef::Existing(1), Synced, Full, Keep),
            (
                5001,
                UserRef::Existing(3),
                UnlinkedReturningParent,
                Incomplete,
                Create
            ),
            (
                5002,
                UserRef::Existing(1),
                MatchedFormCreator,
                ReadOnly,
                Create
            ),
            (5003, UserRef::Existing(1), SchoolengageOnly, ReadOnly, Keep),
            (
                5003,
                UserRef::Existing(3),
                UnlinkedReturningParent,
                Incomplete,
                Keep
            ),
        ]
    );
    assert_eq!(d.incomplete_users, vec![3]);
    assert_eq!(d.report.web_access_rows_ignored, 1);
    assert_eq!(d.report.rows_for_unknown_students, vec![(9005, 7000)]);
    assert_eq!(
        d.report.links_without_matching_contact,
        vec![(9004, 5003, "nobody@example.com".to_string())]
    );
    assert_eq!(
        d.report.unverified_email_matches,
        vec![
            (9002, 5001, "dad@example.com".to_string()),
            (9002, 5002, "dad@example.com".to_string())
        ]
    );
    assert_eq!(d.report.orphaned, vec![(5003, 1)]);
    assert!(d.new_users.is_empty());
    assert_eq!(d.guardian_links, vec![(1, 9001)]);
    let _unused: Vec<FormFacts> = Vec::new();
}

/// A district of the size the brief names: 150,000 students, ~225,000
/// guardian rows, ~300,000 contacts. Run with
/// `cargo test --release --lib large_district -- --ignored --nocapture`.
#[test]
#[ignore]
fn large_district_is_decided_quickly() {
    let mut facts = DistrictFacts::default();
    for s in 0..150_000i64 {
        let dcid = 100_000 + s;
        let family = s / 2; // siblings share a family
        facts.students.push(StudentFacts {
            dcid,
            independent: s % 50 == 0,
            org_email: Some(format!("kid{s}@students.example.org")),
            personal_email: None,
        });
        let mother = format!("mother{family}@example.com");
        let father = format!("Father{family}@Example.com ");
        facts
            .contacts
            .push(contact(dcid, 3 * family, &mother, true));
        facts
            .contacts
            .push(contact(dcid, 3 * family + 1, &father, s % 7 != 0));
        facts
            .guardian_rows
            .push(row(1_000_000 + 2 * family, dcid, &mother));
        if s % 2 == 0 {
            facts
                .guardian_rows
                .push(row(1_000_001 + 2 * family, dcid, &father));
            facts
                .guardian_rows
                .push(row(1_000_001 + 2 * family, dcid + 1, &father));
        }
        if s % 3 == 0 {
            facts.users.push(user(family, &mother));
            facts
                .connections
                .push(connection(dcid, family, Full, Origin::Powerschool));
            facts.forms.push(form(dcid, family));
        }
    }
    let started = std::time::Instant::now();
    let engine = Engine::new(&facts);
    println!("engine built in {:?}", started.elapsed());
    let d = engine.decisions(&Keep::ALL);
    let elapsed = started.elapsed();
    println!(
        "{} students, {} rows, {} contacts: {} decisions, {} new users in {elapsed:?}",
        facts.students.len(),
        facts.guardian_rows.len(),
        facts.contacts.len(),
        d.connections.len(),
        d.new_users.len()
    );
    // How fast is the benchmark's business, not a test's.
    assert!(d.connections.len() >= 150_000);
}
