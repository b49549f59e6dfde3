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
    Valid { limits: Limits },
}

/// The limits of one valid link, R4 and R5 at most, in that order: held in
/// place (3 bytes, not a vector's 24 and an allocation), because a row is
/// judged for each of a district's guardian rows (1.5 million at a million
/// students) and every judgement lives until the decisions are made. Reads
/// as a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    items: [Limit; 2],
    len: u8,
}

impl Limits {
    const NONE: Limits = Limits {
        items: [Limit::R4, Limit::R5],
        len: 0,
    };

    /// Adds `limit` after those there; a third limit has no room and is a
    /// bug in the table (step 1 has two), so it is never silently lost: it
    /// fails the debug build, and the release build keeps the first two.
    fn push(&mut self, limit: Limit) {
        let len = usize::from(self.len);
        match self.items.get_mut(len) {
            Some(slot) => {
                *slot = limit;
                self.len += 1;
            }
            None => debug_assert!(false, "step 1 has only R4 and R5 as limits"),
        }
    }
}

impl std::ops::Deref for Limits {
    type Target = [Limit];
    fn deref(&self) -> &[Limit] {
        self.items.get(..usize::from(self.len)).unwrap_or_default()
    }
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
    let mut limits = Limits::NONE;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_the_slice_they_were_given_in_their_order() {
        assert!(Limits::NONE.is_empty());
        assert_eq!(tier_under(&Limits::NONE), AccessTier::Full);
        let mut r5 = Limits::NONE;
        r5.push(Limit::R5);
        assert_eq!(&*r5, &[Limit::R5]);
        assert_eq!(tier_under(&r5), AccessTier::ReadOnly);
        let mut both = Limits::NONE;
        both.push(Limit::R4);
        both.push(Limit::R5);
        assert_eq!(&*both, &[Limit::R4, Limit::R5]);
        assert_eq!(tier_under(&both), AccessTier::ReadOnly);
    }

    /// A judgement is kept for each of a district's guardian rows: its
    /// outcome holds its limits in place, not behind a vector.
    #[test]
    fn a_row_s_outcome_is_a_few_bytes() {
        assert!(std::mem::size_of::<RowOutcome>() <= 4);
    }
}
