//! Every reason renders the sentence admins have always read (the golden
//! files cover the fixture worlds; here every variant, including those no
//! world reaches), and every reason the audit stores reads back from its
//! codes exactly.

use std::sync::Arc;

use super::codes::{decode, encode, CodedReasons, RowKeys};
use super::{ContactFlag, Email, NotCaseC, PortalAccount, Reason, Rule, Who};
use crate::rules::{AccessTier, ConnectionCase, Limit, RemovalPolicy};

fn e(s: &str) -> Email {
    Email::from(s)
}

fn mei() -> Who {
    Who::User {
        id: 7,
        login: e("mei@example.com"),
    }
}

fn contacts(flags: &[(i64, bool)]) -> Arc<[ContactFlag]> {
    flags
        .iter()
        .map(|&(person_id, decision_making)| ContactFlag {
            person_id,
            decision_making,
        })
        .collect()
}

/// Every variant the engine and explain build, with today's sentence.
fn every_reason() -> Vec<(Reason, &'static str)> {
    use Reason::*;
    let m = || e("mei@example.com");
    vec![
        (ParentPortalLink { guardian_id: 9001, student_dcid: 5001 },
         "The row of guardian account 9001 for student 5001 is a Parent Portal link, not a Web Access Account."),
        (AccountLinked { guardian_id: 9001, email: m(), student_dcid: 5001 },
         "Guardian account 9001 (mei@example.com) is linked to student 5001 in the guardian PowerQuery (an active Parent Portal account with Data Access)."),
        (ContactsHaveEmail { student_dcid: 5001, email: m(), contacts: contacts(&[(11, true), (12, false)]) },
         "Contact 11, 12 of student 5001 has the email mei@example.com."),
        (DecisionMaking { student_dcid: 5001, email: m(), contacts: contacts(&[(11, true), (12, false)]) },
         "Not every contact of student 5001 with the email mei@example.com is decision-making (contact 11: isdecisionmaking = 1, contact 12: isdecisionmaking = 0), so the tier is at most restricted."),
        (DecisionMaking { student_dcid: 5001, email: m(), contacts: contacts(&[(11, true)]) },
         "Every contact of student 5001 with the email mei@example.com is decision-making (contact 11: isdecisionmaking = 1)."),
        (NotIndependent { student_dcid: 5001 },
         "Student 5001 is not an independent student, so R5 does not limit the link."),
        (IndependentOwnEmail { student_dcid: 5001, email: m(), org_email: true },
         "Student 5001 is independent and mei@example.com is the student's own orgemail."),
        (IndependentOwnEmail { student_dcid: 5001, email: m(), org_email: false },
         "Student 5001 is independent and mei@example.com is the student's own personalemail."),
        (IndependentNotOwnEmail { student_dcid: 5001, email: m(), org_email: Some(e("kid@school.org")), personal_email: None },
         "Student 5001 is independent and mei@example.com is neither the student's orgemail (kid@school.org) nor personalemail (none), so the tier is at most read_only (a parent with a Release of Information)."),
        (LinkedEarlier { user_id: 7, login: m(), guardian_id: 9001, email: m() },
         "User 7 (mei@example.com) was linked to guardian account 9001 by an earlier sync."),
        (LinkedEarlier { user_id: 7, login: e("old@example.com"), guardian_id: 9001, email: m() },
         "User 7 (old@example.com) was linked to guardian account 9001 by an earlier sync; its login old@example.com differs from PowerSchool's mei@example.com and is left as it is (SchoolEngage owns the login)."),
        (FormCreatorMatched { user_id: 7, login: m(), email: m(), student_dcid: 5001, linked_now: Some(9001) },
         "User 7 (mei@example.com) is a verified user with the email mei@example.com who created a form for student 5001; this run links it to guardian account 9001."),
        (VerifiedEmailMatched { user_id: 7, email: m(), linked_now: None },
         "User 7 is the verified user with the email mei@example.com."),
        (NewUserCreated { email: m(), guardian_id: 9001 },
         "No SchoolEngage user has the email mei@example.com, so a new user is created with it, linked to guardian account 9001."),
        (UnverifiedOnly { user_id: 7, email: m(), guardian_id: 9001, student_dcid: 5001 },
         "User 7 has the email mei@example.com but SchoolEngage has not verified it, so guardian account 9001 is not linked to that user and no connection to student 5001 is made."),
        (CaseSynced { who: mei(), student_dcid: 5001, guardian_id: 9001, tier: AccessTier::Restricted, others: Box::new([]) },
         "Case D (synced): the connection of student 5001 and user 7 (mei@example.com) exists and guardian account 9001 links them in PowerSchool, so its tier is restricted from R4/R5."),
        (CaseMatchedFormCreator { who: mei(), student_dcid: 5001, guardian_id: 9001, tier: AccessTier::Full, others: Box::new([9002]) },
         "Case B1 (matched_form_creator): user 7 (mei@example.com) created a form for student 5001 and guardian account 9001 now links them, so the connection is created from the form creator's record with tier full. Guardian accounts 9002 also link them; the best tier among the links is kept."),
        (CaseCreated { who: Who::NewUser(m()), student_dcid: 5001, guardian_id: 9001, email: m(), tier: AccessTier::Full, others: Box::new([9002, 9003]) },
         "Case B2 (created): guardian account 9001 validly links student 5001 and mei@example.com, and no connection or form creator matched, so a connection for the new user mei@example.com is created with tier full. Guardian accounts 9002, 9003 also link them; the best tier among the links is kept."),
        (CaseAdminConnection { who: mei(), student_dcid: 5001, kept: AccessTier::Full },
         "Case A (schoolengage_only): a SchoolEngage administrator made the connection of student 5001 and user 7 (mei@example.com) and PowerSchool has no valid link for it, so it is kept with tier full: SchoolEngage is the source of truth."),
        (CaseFormConnection { who: mei(), student_dcid: 5001, missing: NotCaseC::NoForm, kept: AccessTier::ReadOnly },
         "Case A (schoolengage_only): the connection of student 5001 and user 7 (mei@example.com) was made from a form and PowerSchool has no valid link for it; it is not case C because user 7 (mei@example.com) has no form for student 5001, so it is kept with tier read_only."),
        (CaseFormConnection { who: mei(), student_dcid: 5001, missing: NotCaseC::NoPortalAccount, kept: AccessTier::Full },
         "Case A (schoolengage_only): the connection of student 5001 and user 7 (mei@example.com) was made from a form and PowerSchool has no valid link for it; it is not case C because user 7 (mei@example.com) holds no Parent Portal account, so it is kept with tier full."),
        (CaseOrphaned { who: mei(), student_dcid: 5001, policy: RemovalPolicy::Restrict },
         "Case A (schoolengage_only): an earlier sync created the connection of student 5001 and user 7 (mei@example.com) from PowerSchool and its link has gone, so it is orphaned from PowerSchool; on_powerschool_removal = restrict."),
        (CaseReturningParent { who: mei(), student_dcid: 5001, account: PortalAccount::EarlierLink { guardian_id: 9001 }, created: false },
         "Case C (unlinked_returning_parent): user 7 (mei@example.com) created a form for student 5001 and holds a Parent Portal account (guardian account 9001, linked by an earlier sync), but PowerSchool has no valid link to this student, so the connection is kept with tier incomplete and the user is flagged incomplete until the link exists."),
        (CaseReturningParent { who: mei(), student_dcid: 5001, account: PortalAccount::ThisRun { guardian_id: 9001, student_dcid: 5002 }, created: true },
         "Case C (unlinked_returning_parent): user 7 (mei@example.com) created a form for student 5001 and holds a Parent Portal account (guardian account 9001, which validly links them to student 5002 this run), but PowerSchool has no valid link to this student, so a connection is created with tier incomplete and the user is flagged incomplete until the link exists."),
        (Restricted { who: mei(), student_dcid: 5001, from: AccessTier::Full, to: AccessTier::Restricted },
         "on_powerschool_removal = restrict lowers the orphaned connection of student 5001 and user 7 (mei@example.com) from full to restricted."),
        (Revoked { who: mei(), student_dcid: 5001 },
         "on_powerschool_removal = revoke removes the orphaned connection of student 5001 and user 7 (mei@example.com)."),
        (WebAccessRow { guardian_id: 9001, email: None, student_dcid: 5001 },
         "The row of guardian account 9001 (no usable email) for student 5001 is a link through a Web Access Account, which R1 ignores."),
        (RowNotInSyncSet { student_dcid: 5001, guardian_id: 9001 },
         "Student 5001 is not in this run's sync set (not enrolled, or a scheduling-year student), so the row of guardian account 9001 is ignored."),
        (UnusableEmail { guardian_id: 9001, raw: "mei at example".into(), student_dcid: 5001 },
         "Guardian account 9001 has no usable email (\"mei at example\"), so its link to student 5001 cannot be checked against contacts or users."),
        (NoMatchingContact { student_dcid: 5001, email: Some(m()), guardian_id: 9001 },
         "No contact of student 5001 has the email mei@example.com, so the link of guardian account 9001 is treated as absent from PowerSchool."),
        (LinkOfEarlierUser { guardian_id: 9001, student_dcid: 5001, email: Some(m()), user_id: 8, login: e("ray@example.com") },
         "Guardian account 9001 validly links student 5001 with mei@example.com, but an earlier sync linked that account to user 8 (ray@example.com), who gets the connection instead."),
        (LinkOfUser { guardian_id: 9001, student_dcid: 5001, email: Some(m()), user_id: 8, login: e("ray@example.com") },
         "Guardian account 9001 validly links student 5001 with mei@example.com, and that link belongs to user 8 (ray@example.com)."),
        (LinkOfUnverifiedUser { guardian_id: 9001, student_dcid: 5001, email: Some(m()), user_id: 8 },
         "Guardian account 9001 validly links student 5001 with mei@example.com, but user 8 has not verified that email in SchoolEngage, so no connection is made."),
        (LinkOfNewUser { guardian_id: 9001, student_dcid: 5001, email: Some(m()) },
         "Guardian account 9001 validly links student 5001 with mei@example.com, and that link belongs to the new user the run creates with that email."),
        (NoAccountLinks { student_dcid: 5001, email: Some(m()), guardian_id: Some(9001) },
         "No Parent Portal account in the guardian PowerQuery links student 5001 to the email mei@example.com or to guardian account 9001."),
        (NoAccountLinks { student_dcid: 5001, email: Some(m()), guardian_id: None },
         "No Parent Portal account in the guardian PowerQuery links student 5001 to the email mei@example.com."),
        (NoAccountLinks { student_dcid: 5001, email: None, guardian_id: Some(9001) },
         "No Parent Portal account in the guardian PowerQuery links student 5001 to guardian account 9001."),
        (NoAccountLinks { student_dcid: 5001, email: None, guardian_id: None },
         "No Parent Portal account in the guardian PowerQuery links student 5001 to this user (no usable login email)."),
        (MalformedEmail { given: "not an email".into() },
         "The email \"not an email\" is malformed or empty after normalising, so it matches no contact, account or user."),
        (StudentNotSynced { student_dcid: 5001, has_connection: true },
         "Student 5001 is not in this run's sync set (not enrolled, or a scheduling-year student), so no rule is applied to it. Its existing connection with this user is left untouched."),
        (NoUserWithEmail { email: m() },
         "No SchoolEngage user has the email mei@example.com, and no valid PowerSchool link creates one."),
        (FormCreatorOnly { user_id: 7, student_dcid: 5001 },
         "form_creator_only: user 7 created a form for student 5001 but holds no Parent Portal account, so nothing changes (registration handles a new family)."),
        (Prose { rule: Rule::R3, passed: false, detail: "Kept as written.".into() },
         "Kept as written."),
    ]
}

#[test]
fn every_reason_renders_todays_sentence() {
    for (reason, sentence) in every_reason() {
        assert_eq!(reason.to_string(), sentence, "{reason:?}");
    }
}

#[test]
fn the_rule_and_passed_follow_from_the_reason() {
    let orphan = |policy| {
        Reason::CaseOrphaned {
            who: mei(),
            student_dcid: 5001,
            policy,
        }
        .verdict()
    };
    assert!(orphan(RemovalPolicy::Keep).passed);
    assert!(!orphan(RemovalPolicy::Revoke).passed);
    let revoked = Reason::Revoked {
        who: mei(),
        student_dcid: 5001,
    }
    .verdict();
    assert_eq!((revoked.rule, revoked.passed), (Rule::Removal, false));
    let r4 = Reason::DecisionMaking {
        student_dcid: 5001,
        email: e("mei@example.com"),
        contacts: contacts(&[(11, false)]),
    }
    .verdict();
    assert_eq!((r4.rule, r4.passed), (Rule::R4, false));
}

#[test]
fn a_shown_verdict_is_rule_passed_detail_and_reads_back_as_prose() {
    let v = Reason::NotIndependent { student_dcid: 5001 }.verdict();
    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(
        json,
        r#"{"rule":"R5","passed":true,"detail":"Student 5001 is not an independent student, so R5 does not limit the link."}"#
    );
    let back: super::RuleVerdict = serde_json::from_str(&json).unwrap();
    assert_eq!((back.rule, back.passed), (Rule::R5, true));
    assert_eq!(back.detail(), v.detail());
}

fn keys(case: ConnectionCase, tier_after: Option<AccessTier>) -> RowKeys {
    RowKeys {
        student_dcid: 5001,
        user_id: 7,
        tier_after,
        case,
    }
}

/// Explain's own reasons, which no decision (and so no audit row) holds.
fn explain_only(reason: &Reason) -> bool {
    matches!(
        reason,
        Reason::MalformedEmail { .. }
            | Reason::StudentNotSynced { .. }
            | Reason::NoUserWithEmail { .. }
            | Reason::FormCreatorOnly { .. }
    )
}

#[test]
fn every_reason_reads_back_from_its_codes() {
    for (reason, _) in every_reason() {
        if explain_only(&reason) {
            continue;
        }
        let verdicts = vec![reason.verdict()];
        let k = keys(ConnectionCase::SchoolengageOnly, Some(AccessTier::Full));
        let limits = limits_of(&verdicts);
        let codes = encode(&k, None, &limits, &verdicts)
            .unwrap_or_else(|| panic!("{verdicts:?} has codes"));
        let back = decode(&k, &codes).unwrap();
        assert_eq!(back.verdicts, verdicts, "{codes}");
        assert_eq!(back.limits, limits, "{codes}");
    }
}

/// The limits one failed verdict sets.
fn limits_of(verdicts: &[super::RuleVerdict]) -> Vec<Limit> {
    match verdicts.first().map(|v| (v.rule, v.passed)) {
        Some((Rule::R4, false)) => vec![Limit::R4],
        Some((Rule::R5, false)) => vec![Limit::R5],
        _ => Vec::new(),
    }
}

/// Codes marked free of the row's user read the same under any user (so a
/// new user's row takes them without reading them twice); the others are
/// exactly those that stand for the row's own user.
#[test]
fn codes_free_of_the_rows_user_read_the_same_under_any_user() {
    let mut naming_the_user = 0;
    for (reason, _) in every_reason() {
        if explain_only(&reason) {
            continue;
        }
        let verdicts = vec![reason.verdict()];
        let made = keys(ConnectionCase::SchoolengageOnly, Some(AccessTier::Full));
        let coded = CodedReasons::encode(&made, None, &limits_of(&verdicts), &verdicts)
            .unwrap_or_else(|| panic!("{verdicts:?} has codes"));
        let row = RowKeys { user_id: 8, ..made };
        let under_made = decode(&made, &coded.codes).unwrap();
        let under_row = decode(&row, &coded.codes).unwrap();
        if coded.user_free {
            assert_eq!(under_row, under_made, "{}", coded.codes);
            assert_eq!(coded.for_row(&made, &row).ok(), Some(&*coded.codes));
        } else {
            naming_the_user += 1;
            assert_ne!(under_row, under_made, "{}", coded.codes);
        }
    }
    assert!(
        naming_the_user > 0,
        "some reasons stand for the row's own user"
    );
}

/// A valid link backed by two guardian accounts, R4 limiting it: the row's
/// account and email are stored once, R1-R4 as one code, and the row is short.
#[test]
fn a_linked_decision_is_stored_in_a_few_dozen_bytes() {
    let m = e("mei@example.com");
    let flags = contacts(&[(11, true), (12, false)]);
    let verdicts: Vec<_> = [
        Reason::ParentPortalLink {
            guardian_id: 9001,
            student_dcid: 5001,
        },
        Reason::AccountLinked {
            guardian_id: 9001,
            email: m.clone(),
            student_dcid: 5001,
        },
        Reason::ContactsHaveEmail {
            student_dcid: 5001,
            email: m.clone(),
            contacts: flags.clone(),
        },
        Reason::DecisionMaking {
            student_dcid: 5001,
            email: m.clone(),
            contacts: flags,
        },
        Reason::NotIndependent { student_dcid: 5001 },
        Reason::LinkedEarlier {
            user_id: 7,
            login: m.clone(),
            guardian_id: 9001,
            email: m.clone(),
        },
        Reason::CaseSynced {
            who: mei(),
            student_dcid: 5001,
            guardian_id: 9001,
            tier: AccessTier::Restricted,
            others: Box::new([9002]),
        },
    ]
    .into_iter()
    .map(Reason::verdict)
    .collect();
    let k = keys(ConnectionCase::Synced, Some(AccessTier::Restricted));
    let codes = encode(&k, Some(9001), &[Limit::R4], &verdicts).unwrap();
    assert_eq!(
        codes,
        r#"[9001,"mei@example.com",["L",[11,-12]],"r5n","s1",["d",0,0,[9002]]]"#
    );
    let back = decode(&k, &codes).unwrap();
    assert_eq!(back.guardian_id, Some(9001));
    assert_eq!(back.limits, vec![Limit::R4]);
    assert_eq!(back.verdicts, verdicts);
}

#[test]
fn codes_that_would_not_read_back_are_refused() {
    // A contact id of 0 cannot carry its decision-making sign.
    let verdicts = vec![Reason::ContactsHaveEmail {
        student_dcid: 5001,
        email: e("mei@example.com"),
        contacts: contacts(&[(0, true)]),
    }
    .verdict()];
    let k = keys(ConnectionCase::SchoolengageOnly, Some(AccessTier::Full));
    assert_eq!(encode(&k, None, &[], &verdicts), None);
    assert!(decode(&k, r#"[null,null,"zz"]"#).is_err());
    assert!(decode(&k, "{}").is_err());
}
