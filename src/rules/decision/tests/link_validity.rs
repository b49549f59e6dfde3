//! Step 1, the link: R1–R5, their ceilings, and how emails are compared.

use super::*;

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
    assert!(r5.detail().contains("5001") && r5.detail().contains(MEI));
    assert!(r5.detail().contains("ava.lee@students.example.org"));
    assert!(verdict(c, "R3").detail().contains("801"));
    assert!(verdict(c, "case").detail().starts_with("Case D (synced)"));
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
        .detail()
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
    assert!(r4.detail().contains("contact 801: isdecisionmaking = 1"));
    assert!(r4.detail().contains("contact 802: isdecisionmaking = 0"));
}
