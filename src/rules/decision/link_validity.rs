//! Step 1 of access-rules.md, on one guardian row: is this PowerSchool link
//! valid (R1–R3), and which tier it allows (R4, R5), with the reasons in the
//! district's words. Nothing here looks beyond the row, its student and the
//! student's contacts.

use super::facts_index::{FactsIndex, Student};
use std::sync::Arc;

use crate::rules::verdict::{ContactFlag, Email, Reason};
use crate::rules::{AccessTier, GuardianLink, Limit, RuleVerdict};

/// What step 1 made of one guardian row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowOutcome {
    /// R1 failed: a Web Access Account link, ignored entirely.
    WebAccessAccount,
    /// README decision 11: ignored and counted.
    StudentNotInSyncSet,
    /// README decision 2: the account's email is empty or malformed.
    NoUsableEmail,
    /// R3 failed: treated as absent from PowerSchool.
    NoMatchingContact,
    /// R1–R3 hold; R4/R5 may have lowered the tier.
    Valid { limits: Vec<Limit> },
}

/// The tier a valid link gets: `full`, lowered to the lowest ceiling of the
/// limits that failed (access-rules.md, "the lowest tier wins").
pub fn tier_under(limits: &[Limit]) -> AccessTier {
    limits
        .iter()
        .map(|limit| limit.ceiling())
        .min()
        .unwrap_or(AccessTier::Full)
}

/// R1–R5 on one row; `email` is the row's normalised email, if usable.
pub(super) fn judge_link(
    index: &FactsIndex<'_>,
    row: &GuardianLink,
    email: Option<&str>,
) -> RowOutcome {
    // R1 before the sync set: a Web Access row is never a link, for any student.
    if row.web_access_account {
        return RowOutcome::WebAccessAccount;
    }
    let Some(student) = index.students.get(&row.student_dcid) else {
        return RowOutcome::StudentNotInSyncSet;
    };
    // R2 holds by construction: the row is in the guardian PowerQuery.
    let Some(email) = email else {
        return RowOutcome::NoUsableEmail;
    };
    let contacts = index.contacts_with_email(row.student_dcid, email);
    if contacts.is_empty() {
        return RowOutcome::NoMatchingContact;
    }
    let mut limits = Vec::new();
    if contacts.iter().any(|c| !c.is_decision_making) {
        limits.push(Limit::R4);
    }
    if student.facts.independent && !student.is_own_email(email) {
        limits.push(Limit::R5);
    }
    RowOutcome::Valid { limits }
}

/// R1–R5 for a valid link, one verdict each. The contacts with the email
/// are listed once and shared by R3 and R4.
pub(super) fn link_verdicts(
    index: &FactsIndex<'_>,
    row: &GuardianLink,
    email: &Email,
    verdicts: &mut Vec<RuleVerdict>,
) {
    let guardian_id = row.guardian_id;
    let student_dcid = row.student_dcid;
    let contacts: Arc<[ContactFlag]> = index
        .contacts_with_email(student_dcid, email)
        .iter()
        .map(|c| ContactFlag {
            person_id: c.person_id,
            decision_making: c.is_decision_making,
        })
        .collect();
    verdicts.push(
        Reason::ParentPortalLink {
            guardian_id,
            student_dcid,
        }
        .verdict(),
    );
    verdicts.push(
        Reason::AccountLinked {
            guardian_id,
            email: email.clone(),
            student_dcid,
        }
        .verdict(),
    );
    verdicts.push(
        Reason::ContactsHaveEmail {
            student_dcid,
            email: email.clone(),
            contacts: contacts.clone(),
        }
        .verdict(),
    );
    verdicts.push(
        Reason::DecisionMaking {
            student_dcid,
            email: email.clone(),
            contacts,
        }
        .verdict(),
    );
    // A valid link's student is in the sync set (R2), so it is always found.
    if let Some(student) = index.students.get(&student_dcid) {
        verdicts.push(independent_student_verdict(student, student_dcid, email));
    }
}

/// R5: for an independent student, is the email the student's own?
fn independent_student_verdict(
    student: &Student<'_>,
    student_dcid: i64,
    email: &Email,
) -> RuleVerdict {
    let reason = if !student.facts.independent {
        Reason::NotIndependent { student_dcid }
    } else if !student.is_own_email(email) {
        Reason::IndependentNotOwnEmail {
            student_dcid,
            email: email.clone(),
            org_email: student.org_email().as_deref().map(Email::from),
            personal_email: student.personal_email().as_deref().map(Email::from),
        }
    } else {
        Reason::IndependentOwnEmail {
            student_dcid,
            email: email.clone(),
            org_email: student.org_email().as_deref() == Some(&**email),
        }
    };
    reason.verdict()
}
