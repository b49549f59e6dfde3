//! The verdicts as a whole: one connection per pair, the incomplete flag, what is left untouched.

use super::*;

#[test]
fn several_links_for_one_pair_keep_the_best_tier() {
    let facts = DistrictFacts {
        students: vec![student(5001)],
        contacts: vec![
            contact(5001, 801, "a@example.com", false),
            contact(5001, 802, "b@example.com", true),
        ],
        guardian_rows: vec![
            row(9001, 5001, "a@example.com"),
            row(9002, 5001, "b@example.com"),
        ],
        users: vec![linked_user(1, "b@example.com", 9001)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    assert_eq!(d.connections.len(), 1);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.tier, Full);
    assert!(c.limits.is_empty());
    assert_eq!(c.guardian_id, Some(9002));
}

#[test]
fn incomplete_flag_is_cleared_once_the_link_exists() {
    let mut facts = family();
    facts.users = vec![UserFacts {
        incomplete: true,
        ..user(1, MEI)
    }];
    facts.connections = vec![connection(5001, 1, Incomplete, Origin::Form)];
    facts.forms = vec![form(5001, 1)];
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::Synced);
    assert_eq!(c.tier, Full);
    assert!(d.incomplete_users.is_empty());
}

#[test]
fn students_outside_the_sync_set_are_counted_and_left_untouched() {
    let facts = DistrictFacts {
        students: vec![student(5001)],
        contacts: vec![contact(6000, 801, MEI, true)],
        guardian_rows: vec![row(9001, 6000, MEI)],
        users: vec![user(1, MEI)],
        connections: vec![connection(6000, 1, Full, Origin::Powerschool)],
        forms: vec![form(6000, 1)],
        policy: Policy {
            on_powerschool_removal: RemovalPolicy::Revoke,
        },
    };
    let d = decide(&facts);
    assert!(d.connections.is_empty());
    assert!(d.new_users.is_empty());
    assert_eq!(d.report.rows_for_unknown_students, vec![(9001, 6000)]);
    assert!(d.report.orphaned.is_empty());
    assert!(d.report.form_creator_only.is_empty());
}

#[test]
fn connections_to_unknown_users_are_case_a() {
    let facts = DistrictFacts {
        students: vec![student(5001)],
        connections: vec![connection(5001, 42, ReadOnly, Origin::Form)],
        forms: vec![form(5001, 42)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(42));
    assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
    assert_eq!(c.tier, ReadOnly);
}
