//! The decision table, case by case: hand-made districts in, the decision, its
//! reasons and the run report checked. Moved from the old `decision.rs`.

use super::{decide, tier_under, Engine};
use crate::rules::test_facts::*;
use crate::rules::{
    AccessTier, ConnectionAction, ConnectionCase, DistrictFacts, FormFacts, GuardianLink, Limit,
    NewUser, Origin, Policy, RemovalPolicy, StudentFacts, UserFacts, UserRef,
};
use AccessTier::*;

const MEI: &str = "mei.lee@example.com";

/// The example world of shared/worlds: one independent student, one parent.
fn example_world() -> DistrictFacts {
    DistrictFacts {
        students: vec![independent_student(5001, "ava.lee@students.example.org")],
        contacts: vec![contact(5001, 801, MEI, true)],
        guardian_rows: vec![row(9001, 5001, "Mei.Lee@example.com")],
        users: vec![user(1, MEI)],
        connections: vec![connection(5001, 1, Full, Origin::Admin)],
        forms: vec![form(5001, 1)],
        policy: Policy::default(),
    }
}

/// A plain family: student 5001, decision-making contact, one account.
fn family() -> DistrictFacts {
    DistrictFacts {
        students: vec![student(5001)],
        contacts: vec![contact(5001, 801, MEI, true)],
        guardian_rows: vec![row(9001, 5001, MEI)],
        ..DistrictFacts::default()
    }
}

fn with_policy(mut facts: DistrictFacts, policy: RemovalPolicy) -> DistrictFacts {
    facts.policy.on_powerschool_removal = policy;
    facts
}

#[test]
fn tier_under_takes_the_lowest_ceiling() {
    assert_eq!(tier_under(&[]), Full);
    assert_eq!(tier_under(&[Limit::R4]), Restricted);
    assert_eq!(tier_under(&[Limit::R5]), ReadOnly);
    assert_eq!(tier_under(&[Limit::R4, Limit::R5]), ReadOnly);
}

#[test]
fn example_world_independent_parent_is_read_only_and_admin_connection_is_synced() {
    let d = decide(&example_world());
    assert_eq!(d.connections.len(), 1);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::Synced);
    assert_eq!(c.action, ConnectionAction::Keep);
    assert_eq!(c.tier, ReadOnly);
    assert_eq!(c.limits, vec![Limit::R5]);
    assert_eq!(c.guardian_id, Some(9001));
    assert!(c.present_in_powerschool);
    assert!(!c.orphaned);
    assert!(d.new_users.is_empty());
    assert!(d.incomplete_users.is_empty());
    // Found by email with no earlier link: the run links the account.
    assert_eq!(d.guardian_links, vec![(1, 9001)]);
    let rules: Vec<&str> = c.verdicts.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(rules, ["R1", "R2", "R3", "R4", "R5", "step2", "case"]);
    let r5 = verdict(c, "R5");
    assert!(!r5.passed);
    assert!(r5.detail.contains("5001") && r5.detail.contains(MEI));
    assert!(r5.detail.contains("ava.lee@students.example.org"));
    assert!(verdict(c, "R3").detail.contains("801"));
    assert!(verdict(c, "case").detail.starts_with("Case D (synced)"));
}

#[test]
fn r5_holds_when_the_account_is_the_students_own_email() {
    let mut facts = example_world();
    facts.contacts = vec![contact(5001, 801, "ava.lee@students.example.org", true)];
    facts.guardian_rows = vec![row(9001, 5001, " Ava.Lee@Students.Example.org")];
    facts.connections.clear();
    facts.forms.clear();
    facts.users.clear();
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::New(0));
    assert_eq!((c.tier, c.limits.clone()), (Full, vec![]));
    assert!(verdict(c, "R5").passed);
}

#[test]
fn r4_and_r5_together_give_read_only_with_both_limits() {
    let facts = DistrictFacts {
        students: vec![independent_student(5001, "ava@students.example.org")],
        contacts: vec![contact(5001, 801, MEI, false)],
        guardian_rows: vec![row(9001, 5001, MEI)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::New(0));
    assert_eq!(c.tier, ReadOnly);
    assert_eq!(c.limits, vec![Limit::R4, Limit::R5]);
    assert!(!verdict(c, "R4").passed);
    assert!(!verdict(c, "R5").passed);
    assert_eq!(c.case, ConnectionCase::Created);
}

#[test]
fn web_access_row_is_ignored_entirely() {
    let mut facts = family();
    facts.guardian_rows = vec![web_access_row(9001, 5001, MEI)];
    let d = decide(&facts);
    assert!(d.connections.is_empty());
    assert!(d.new_users.is_empty());
    assert_eq!(d.report.web_access_rows_ignored, 1);
    assert!(d.report.links_without_matching_contact.is_empty());

    // Beside a normal row of another account, only the normal one counts.
    facts
        .contacts
        .push(contact(5001, 802, "dad@example.com", true));
    facts.guardian_rows.push(row(9002, 5001, "dad@example.com"));
    let d = decide(&facts);
    assert_eq!(d.connections.len(), 1);
    assert_eq!(d.new_users.len(), 1);
    assert_eq!(d.new_users[0].email, "dad@example.com");
    assert_eq!(d.report.web_access_rows_ignored, 1);
}

#[test]
fn web_access_row_for_a_student_outside_the_sync_set_is_still_r1() {
    let mut facts = family();
    facts.guardian_rows = vec![web_access_row(9001, 7777, MEI)];
    let d = decide(&facts);
    assert_eq!(d.report.web_access_rows_ignored, 1);
    assert!(d.report.rows_for_unknown_students.is_empty());
}

#[test]
fn email_case_and_whitespace_differences_match() {
    let facts = DistrictFacts {
        students: vec![student(5001)],
        contacts: vec![contact(5001, 801, "  MEI.lee@Example.com ", true)],
        guardian_rows: vec![row(9001, 5001, "mei.LEE@example.COM\t")],
        users: vec![user(1, " Mei.Lee@example.com")],
        connections: vec![connection(5001, 1, Restricted, Origin::Powerschool)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::Synced);
    assert_eq!(c.tier, Full);
    assert!(d.new_users.is_empty());
    assert!(d.report.email_differs.is_empty());
}

#[test]
fn malformed_guardian_email_links_nothing_and_is_listed() {
    for bad in ["mei.lee@example", "mei lee@example.com", "", "   "] {
        let mut facts = family();
        facts.guardian_rows = vec![row(9001, 5001, bad)];
        let d = decide(&facts);
        assert!(d.connections.is_empty(), "{bad:?}");
        assert!(d.new_users.is_empty(), "{bad:?}");
        assert_eq!(
            d.report.accounts_without_email,
            vec![(9001, 5001)],
            "{bad:?}"
        );
    }
    let mut facts = family();
    facts.guardian_rows[0].email = None;
    assert_eq!(
        decide(&facts).report.accounts_without_email,
        vec![(9001, 5001)]
    );
}

#[test]
fn malformed_contact_email_matches_nothing() {
    let mut facts = family();
    facts.contacts = vec![contact(5001, 801, "mei.lee@@example.com", true)];
    facts.guardian_rows = vec![row(9001, 5001, "mei.lee@@example.com")];
    let d = decide(&facts);
    assert!(d.connections.is_empty());
    assert_eq!(d.report.accounts_without_email, vec![(9001, 5001)]);
}

#[test]
fn r3_without_a_matching_contact_the_link_is_absent() {
    let mut facts = family();
    facts.contacts = vec![contact(5001, 801, "someone.else@example.com", true)];
    facts.users = vec![user(1, MEI)];
    facts.connections = vec![connection(5001, 1, Full, Origin::Admin)];
    let d = decide(&facts);
    assert_eq!(
        d.report.links_without_matching_contact,
        vec![(9001, 5001, MEI.to_string())]
    );
    assert!(d.new_users.is_empty());
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
    assert_eq!(c.tier, Full);
    let r3 = verdict(c, "R3");
    assert!(!r3.passed);
    assert!(r3
        .detail
        .contains("No contact of student 5001 has the email mei.lee@example.com"));
}

#[test]
fn two_contacts_with_one_email_and_mixed_flags_is_restricted() {
    let mut facts = family();
    facts.contacts = vec![
        contact(5001, 801, MEI, true),
        contact(5001, 802, "MEI.LEE@example.com", false),
    ];
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::New(0));
    assert_eq!(c.tier, Restricted);
    assert_eq!(c.limits, vec![Limit::R4]);
    let r4 = verdict(c, "R4");
    assert!(!r4.passed);
    assert!(r4.detail.contains("contact 801: isdecisionmaking = 1"));
    assert!(r4.detail.contains("contact 802: isdecisionmaking = 0"));
}

#[test]
fn siblings_sharing_a_guardian_get_one_user_and_two_connections() {
    let facts = DistrictFacts {
        students: vec![student(5001), student(5002)],
        contacts: vec![contact(5001, 801, MEI, true), contact(5002, 801, MEI, true)],
        guardian_rows: vec![row(9001, 5002, MEI), row(9001, 5001, MEI)],
        ..DistrictFacts::default()
    };
    let d = decide(&facts);
    assert_eq!(d.new_users.len(), 1);
    assert_eq!(d.new_users[0].email, MEI);
    assert_eq!(d.new_users[0].powerschool_guardian_id, 9001);
    let students: Vec<(i64, UserRef)> = d
        .connections
        .iter()
        .map(|c| (c.student_dcid, c.user))
        .collect();
    assert_eq!(
        students,
        vec![(5001, UserRef::New(0)), (5002, UserRef::New(0))]
    );
    assert!(d
        .connections
        .iter()
        .all(|c| c.case == ConnectionCase::Created));
}

#[test]
fn unverified_user_with_the_guardians_email_gets_no_connection_and_is_reported() {
    let mut facts = family();
    facts.users = vec![unverified_user(1, MEI)];
    let d = decide(&facts);
    assert!(d.connections.is_empty());
    assert!(d.new_users.is_empty(), "no second user for the same email");
    assert!(d.guardian_links.is_empty());
    assert_eq!(
        d.report.unverified_email_matches,
        vec![(9001, 5001, MEI.to_string())]
    );
}

#[test]
fn unverified_user_already_linked_by_guardian_id_is_found() {
    let mut facts = family();
    facts.users = vec![UserFacts {
        email_verified: false,
        ..linked_user(1, MEI, 9001)
    }];
    let d = decide(&facts);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::Created);
    assert!(d.report.unverified_email_matches.is_empty());
}

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
    assert!(verdict(c, "R2").detail.contains("9001"));
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
        .detail
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
    assert!(verdict(c, "case").detail.contains("administrator"));
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
    assert!(verdict(c, "case").detail.contains("5002"));
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
    assert!(verdict(c, "case").detail.contains("guardian account 9001"));
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
        .detail
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
    assert!(verdict(c, "case").detail.contains("9002 also link"));
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

#[test]
fn step2_3_verified_user_with_the_email_is_used_and_linked() {
    // Step 2.3: no earlier link, no form, a verified user with the email:
    // that user gets the connection (case B2) and no new user is made.
    let mut facts = family();
    facts.users = vec![user(7, " MEI.Lee@example.com")];
    let d = decide(&facts);
    assert!(d.new_users.is_empty());
    let c = decision_for(&d, 5001, UserRef::Existing(7));
    assert_eq!(c.case, ConnectionCase::Created);
    assert_eq!(c.action, ConnectionAction::Create);
    assert_eq!(c.tier, Full);
    assert_eq!(c.guardian_id, Some(9001));
    assert_eq!(d.guardian_links, vec![(7, 9001)]);
    assert!(verdict(c, "step2").detail.contains("verified user"));
}

#[test]
fn unverified_form_creator_is_not_matched_as_b1() {
    // Step 2.2 uses only verified users: an unverified form creator with
    // the account's email is reported, gets no connection and no link.
    let mut facts = family();
    facts.users = vec![unverified_user(1, MEI)];
    facts.forms = vec![form(5001, 1)];
    let d = decide(&facts);
    assert!(d.connections.is_empty(), "{:#?}", d.connections);
    assert!(d.new_users.is_empty());
    assert!(d.guardian_links.is_empty());
    assert_eq!(
        d.report.unverified_email_matches,
        vec![(9001, 5001, MEI.to_string())]
    );
    assert_eq!(d.report.form_creator_only, vec![(5001, 1)]);
}

#[test]
fn existing_user_linked_by_guardian_id_wins_over_email() {
    let mut facts = family();
    facts.users = vec![linked_user(1, "mei@old.example.com", 9001), user(2, MEI)];
    let d = decide(&facts);
    assert_eq!(d.connections.len(), 1);
    let c = decision_for(&d, 5001, UserRef::Existing(1));
    assert_eq!(c.case, ConnectionCase::Created);
    assert!(verdict(c, "step2").detail.contains("earlier sync"));
    assert_eq!(
        d.report.email_differs,
        vec![(1, "mei@old.example.com".to_string(), MEI.to_string())]
    );
    assert!(d.guardian_links.is_empty(), "user 1 is already linked");
}

#[test]
fn user_with_another_guardian_id_is_not_relinked() {
    let mut facts = family();
    facts.users = vec![linked_user(1, MEI, 8000)];
    let d = decide(&facts);
    assert_eq!(
        decision_for(&d, 5001, UserRef::Existing(1)).case,
        ConnectionCase::Created
    );
    assert!(d.guardian_links.is_empty());
}

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
    let d = engine.decisions();
    let elapsed = started.elapsed();
    println!(
        "{} students, {} rows, {} contacts: {} decisions, {} new users in {elapsed:?}",
        facts.students.len(),
        facts.guardian_rows.len(),
        facts.contacts.len(),
        d.connections.len(),
        d.new_users.len()
    );
    assert!(d.connections.len() >= 150_000);
    if !cfg!(debug_assertions) {
        assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    }
}
