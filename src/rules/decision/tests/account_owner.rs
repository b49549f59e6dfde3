//! Step 2, the account's owner: which user a guardian account is, created or found.

use super::*;

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
    assert!(verdict(c, "step2").detail().contains("verified user"));
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
    assert!(verdict(c, "step2").detail().contains("earlier sync"));
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
