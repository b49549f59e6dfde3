//! Step 3, the cases: orphaned connections and the removal policy, A, C, B1, B2 and D.

use super::*;

fn orphan() -> DistrictFacts {
    DistrictFacts {
        students: vec![student(5001)],
        users: vec![linked_user(1, MEI, 9001)],
        connections: vec![connection(5001, 1, Full, Origin::Powerschool)],
        ..DistrictFacts::default()
    }
}

#[test]
fn orphaned_powerschool_connection_is_kept_by_default() {
    let d = decide(&orphan());
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
    assert_eq!(c.action, ConnectionAction::Keep);
    assert_eq!(c.tier, Full);
    assert!(c.limits.is_empty());
    assert!(c.orphaned);
    assert!(!c.present_in_powerschool);
    assert_eq!(d.report.orphaned, vec![(5001, 1)]);
    assert!(c.verdicts.iter().all(|v| v.rule != "removal"));
    assert!(verdict(c, "R2").detail().contains("9001"));
}

#[test]
fn orphaned_powerschool_connection_is_restricted_under_restrict() {
    let d = decide(&with_policy(orphan(), RemovalPolicy::Restrict));
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
    assert_eq!(c.action, ConnectionAction::Keep);
    assert_eq!(c.tier, Restricted);
    assert!(c.orphaned);
    assert!(verdict(c, "removal")
        .detail()
        .contains("from full to restricted"));
    assert_eq!(d.report.orphaned, vec![(5001, 1)]);

    // Never raises a lower tier.
    let mut facts = with_policy(orphan(), RemovalPolicy::Restrict);
    facts.connections[0].tier = ReadOnly;
    let d = decide(&facts);
    assert_eq!(decision_for(&d, 5001, UserRef::Existing(1)).tier, ReadOnly);
}

#[test]
fn orphaned_powerschool_connection_is_removed_under_revoke() {
    let d = decide(&with_policy(orphan(), RemovalPolicy::Revoke));
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.action, ConnectionAction::Remove);
    assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
    assert!(c.orphaned);
    assert!(!verdict(c, "removal").passed);
    assert_eq!(d.report.orphaned, vec![(5001, 1)]);
}

#[test]
fn removal_policy_never_touches_admin_or_form_connections() {
    for origin in [Origin::Admin, Origin::Form] {
        let mut facts = with_policy(orphan(), RemovalPolicy::Revoke);
        facts.connections[0].origin = origin;
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.action, ConnectionAction::Keep, "{origin:?}");
        assert!(!c.orphaned);
        assert!(d.report.orphaned.is_empty());
    }
}

#[test]
fn admin_connection_without_link_keeps_its_tier_as_case_a() {
    // Even a returning parent with a form: admin connections are never case C.
    let facts = DistrictFacts {
        students: vec![student(5001)],
        users: vec![linked_user(1, MEI, 9001)],
        connections: vec![connection(5001, 1, Restricted, Origin::Admin)],
        forms: vec![form(5001, 1)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
    assert_eq!(c.tier, Restricted);
    assert!(c.limits.is_empty());
    assert!(!c.orphaned);
    assert!(d.incomplete_users.is_empty());
    assert!(verdict(c, "case").detail().contains("administrator"));
}

/// Mei holds a Parent Portal account through sibling 5002, created a
/// form for 5001, and PowerSchool does not link her to 5001.
fn returning_parent() -> DistrictFacts {
    DistrictFacts {
        students: vec![student(5001), student(5002)],
        contacts: vec![contact(5002, 801, MEI, true)],
        guardian_rows: vec![row(9001, 5002, MEI)],
        users: vec![UserFacts {
            incomplete: false,
            ..user(1, MEI)
        }],
        connections: vec![connection(5001, 1, Full, Origin::Form)],
        forms: vec![form(5001, 1)],
        ..DistrictFacts::default()
    }
}

#[test]
fn form_connection_of_a_returning_parent_is_case_c_and_user_incomplete() {
    let d = decide(&returning_parent());
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::UnlinkedReturningParent);
    assert_eq!(c.action, ConnectionAction::Keep);
    assert_eq!(c.tier, Incomplete);
    assert!(c.limits.is_empty());
    assert!(!c.present_in_powerschool);
    assert_eq!(d.incomplete_users, vec![1]);
    assert!(verdict(c, "case").detail().contains("5002"));
    // The sibling link is case B1? No: no form for 5002, so B2.
    let sibling = decision_for(&d, 5002, UserRef::Existing(1));
    assert_eq!(sibling.case, ConnectionCase::Created);
}

#[test]
fn returning_parent_by_an_earlier_guardian_id_is_case_c() {
    let facts = DistrictFacts {
        students: vec![student(5001)],
        users: vec![linked_user(1, MEI, 9001)],
        forms: vec![form(5001, 1)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::UnlinkedReturningParent);
    assert_eq!(c.action, ConnectionAction::Create);
    assert_eq!(c.tier, Incomplete);
    assert_eq!(d.incomplete_users, vec![1]);
    assert!(verdict(c, "case")
        .detail()
        .contains("guardian account 9001"));
}

#[test]
fn form_connection_without_parent_portal_account_is_case_a() {
    let mut facts = returning_parent();
    facts.guardian_rows.clear();
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
    assert_eq!(c.tier, Full);
    assert!(d.incomplete_users.is_empty());
}

#[test]
fn form_creator_without_parent_portal_account_changes_nothing() {
    let facts = DistrictFacts {
        students: vec![student(5001)],
        users: vec![user(1, MEI)],
        forms: vec![form(5001, 1), form(5001, 1)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    assert!(d.connections.is_empty());
    assert_eq!(d.report.form_creator_only, vec![(5001, 1)]);
    assert!(d.incomplete_users.is_empty());
}

#[test]
fn b1_form_creator_is_matched_and_linked() {
    let mut facts = family();
    facts.users = vec![user(1, MEI)];
    facts.forms = vec![form(5001, 1)];
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::MatchedFormCreator);
    assert_eq!(c.action, ConnectionAction::Create);
    assert_eq!(c.tier, Full);
    assert_eq!(d.guardian_links, vec![(1, 9001)]);
    assert!(verdict(c, "step2")
        .detail()
        .contains("created a form for student 5001"));
    assert!(d.new_users.is_empty());
    assert!(d.report.form_creator_only.is_empty());
}

#[test]
fn b2_two_accounts_sharing_an_email_create_exactly_one_user() {
    let facts = DistrictFacts {
        students: vec![student(5001), student(5002)],
        contacts: vec![contact(5001, 801, MEI, true), contact(5002, 802, MEI, true)],
        guardian_rows: vec![
            GuardianLink {
                first_name: Some("Later".into()),
                ..row(9002, 5001, MEI)
            },
            row(9001, 5002, " Mei.Lee@Example.com"),
            row(9002, 5002, MEI),
        ],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    assert_eq!(d.new_users.len(), 1);
    assert_eq!(
        d.new_users[0],
        NewUser {
            email: MEI.into(),
            first_name: Some("Mei".into()),
            last_name: Some("Lee".into()),
            powerschool_guardian_id: 9001,
        }
    );
    assert_eq!(d.connections.len(), 2);
    assert!(d.connections.iter().all(|c| c.user == UserRef::New(0)));
    assert!(d
        .connections
        .iter()
        .all(|c| c.case == ConnectionCase::Created));
    // Both accounts link student 5002: one connection, from the lower id.
    let c = decision_for(&d, 5002, UserRef::New(0));
    assert_eq!(c.guardian_id, Some(9001));
    assert!(verdict(c, "case").detail().contains("9002 also link"));
}

#[test]
fn d_existing_full_connection_is_lowered_by_r4_and_r5() {
    // Case D: "tier from R4/R5" also lowers an existing connection.
    let facts = DistrictFacts {
        students: vec![independent_student(5001, "ava@students.example.org")],
        contacts: vec![contact(5001, 801, MEI, false)],
        guardian_rows: vec![row(9001, 5001, MEI)],
        users: vec![user(1, MEI)],
        connections: vec![connection(5001, 1, Full, Origin::Powerschool)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::Synced);
    assert_eq!(c.action, ConnectionAction::Keep);
    assert_eq!(c.tier, ReadOnly);
    assert_eq!(c.limits, vec![Limit::R4, Limit::R5]);
    assert!(c.present_in_powerschool);
    assert!(!c.orphaned);
    assert!(d.report.orphaned.is_empty());
}
