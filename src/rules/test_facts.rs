//! Small builders for hand-made district facts, so each unit test of the
//! rules reads like the situation it checks.

use super::*;

pub fn student(dcid: i64) -> StudentFacts {
    StudentFacts {
        dcid,
        independent: false,
        org_email: None,
        personal_email: None,
    }
}

pub fn independent_student(dcid: i64, org_email: &str) -> StudentFacts {
    StudentFacts {
        dcid,
        independent: true,
        org_email: Some(org_email.to_string()),
        personal_email: None,
    }
}

pub fn contact(
    student_dcid: i64,
    person_id: i64,
    email: &str,
    decision_making: bool,
) -> StudentContact {
    StudentContact {
        student_dcid,
        person_id,
        first_name: None,
        last_name: None,
        email: Some(email.to_string()),
        is_decision_making: decision_making,
    }
}

pub fn row(guardian_id: i64, student_dcid: i64, email: &str) -> GuardianLink {
    GuardianLink {
        guardian_id,
        student_dcid,
        email: Some(email.to_string()),
        first_name: Some("Mei".into()),
        last_name: Some("Lee".into()),
        web_access_account: false,
    }
}

pub fn web_access_row(guardian_id: i64, student_dcid: i64, email: &str) -> GuardianLink {
    GuardianLink {
        web_access_account: true,
        ..row(guardian_id, student_dcid, email)
    }
}

pub fn user(user_id: i64, email: &str) -> UserFacts {
    UserFacts {
        user_id,
        email: email.to_string(),
        email_verified: true,
        ..UserFacts::default()
    }
}

pub fn unverified_user(user_id: i64, email: &str) -> UserFacts {
    UserFacts {
        email_verified: false,
        ..user(user_id, email)
    }
}

pub fn linked_user(user_id: i64, email: &str, guardian_id: i64) -> UserFacts {
    UserFacts {
        powerschool_guardian_id: Some(guardian_id),
        ..user(user_id, email)
    }
}

pub fn connection(
    student_dcid: i64,
    user_id: i64,
    tier: AccessTier,
    origin: Origin,
) -> ConnectionFacts {
    ConnectionFacts {
        id: 0,
        student_dcid,
        user_id,
        tier,
        case: None,
        limits: Vec::new(),
        origin,
        present_in_powerschool: false,
        powerschool_guardian_id: None,
    }
}

pub fn form(student_dcid: i64, user_id: i64) -> FormFacts {
    FormFacts {
        student_dcid,
        created_by_user_id: user_id,
    }
}

/// The one decision for (student, user); panics with the whole list when absent.
pub fn decision_for(
    decisions: &Decisions,
    student_dcid: i64,
    user: UserRef,
) -> &ConnectionDecision {
    decisions
        .connections
        .iter()
        .find(|c| c.student_dcid == student_dcid && c.user == user)
        .unwrap_or_else(|| {
            panic!(
                "no decision for ({student_dcid}, {user:?}) in {:#?}",
                decisions.connections
            )
        })
}

pub fn verdict<'d>(decision: &'d ConnectionDecision, rule: &str) -> &'d RuleVerdict {
    decision
        .verdicts
        .iter()
        .find(|v| v.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} verdict in {:#?}", decision.verdicts))
}
