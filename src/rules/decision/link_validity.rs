//! Step 1 of access-rules.md, on one guardian row: is this PowerSchool link
//! valid (R1–R3), and which tier it allows (R4, R5), with the reasons in the
//! district's words. Nothing here looks beyond the row, its student and the
//! student's contacts.

use super::facts_index::{FactsIndex, Student};
use crate::rules::{AccessTier, GuardianLink, Limit, RuleVerdict, StudentContact};

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

/// R1–R5 for a valid link, one verdict each.
pub(super) fn link_verdicts(
    index: &FactsIndex<'_>,
    row: &GuardianLink,
    email: &str,
    limits: &[Limit],
) -> Vec<RuleVerdict> {
    let gid = row.guardian_id;
    let dcid = row.student_dcid;
    let contacts = index.contacts_with_email(dcid, email);
    let mut verdicts = vec![
        RuleVerdict {
            rule: "R1".into(),
            passed: true,
            detail: format!(
                "The row of guardian account {gid} for student {dcid} is a Parent Portal link, not a Web Access Account."
            ),
        },
        RuleVerdict {
            rule: "R2".into(),
            passed: true,
            detail: format!(
                "Guardian account {gid} ({email}) is linked to student {dcid} in the guardian PowerQuery (an active Parent Portal account with Data Access)."
            ),
        },
        RuleVerdict {
            rule: "R3".into(),
            passed: true,
            detail: format!(
                "Contact {} of student {dcid} has the email {email}.",
                contacts
                    .iter()
                    .map(|c| c.person_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        decision_making_verdict(dcid, email, contacts, limits.contains(&Limit::R4)),
    ];
    // A valid link's student is in the sync set (R2), so it is always found.
    if let Some(student) = index.students.get(&dcid) {
        verdicts.push(independent_student_verdict(
            student,
            dcid,
            email,
            limits.contains(&Limit::R5),
        ));
    }
    verdicts
}

/// R4: are all the contacts with the email decision-making?
fn decision_making_verdict(
    dcid: i64,
    email: &str,
    contacts: &[&StudentContact],
    limited: bool,
) -> RuleVerdict {
    let flags = contact_flags(contacts);
    if limited {
        RuleVerdict {
            rule: "R4".into(),
            passed: false,
            detail: format!(
                "Not every contact of student {dcid} with the email {email} is decision-making ({flags}), so the tier is at most restricted."
            ),
        }
    } else {
        RuleVerdict {
            rule: "R4".into(),
            passed: true,
            detail: format!(
                "Every contact of student {dcid} with the email {email} is decision-making ({flags})."
            ),
        }
    }
}

/// R5: for an independent student, is the email the student's own?
fn independent_student_verdict(
    student: &Student<'_>,
    dcid: i64,
    email: &str,
    limited: bool,
) -> RuleVerdict {
    if !student.facts.independent {
        RuleVerdict {
            rule: "R5".into(),
            passed: true,
            detail: format!(
                "Student {dcid} is not an independent student, so R5 does not limit the link."
            ),
        }
    } else if limited {
        RuleVerdict {
            rule: "R5".into(),
            passed: false,
            detail: format!(
                "Student {dcid} is independent and {email} is neither the student's orgemail ({}) nor personalemail ({}), so the tier is at most read_only (a parent with a Release of Information).",
                student.org_email.as_deref().unwrap_or("none"),
                student.personal_email.as_deref().unwrap_or("none"),
            ),
        }
    } else {
        RuleVerdict {
            rule: "R5".into(),
            passed: true,
            detail: format!(
                "Student {dcid} is independent and {email} is the student's own {}.",
                if student.org_email.as_deref() == Some(email) {
                    "orgemail"
                } else {
                    "personalemail"
                }
            ),
        }
    }
}

fn contact_flags(contacts: &[&StudentContact]) -> String {
    contacts
        .iter()
        .map(|c| {
            format!(
                "contact {}: isdecisionmaking = {}",
                c.person_id,
                u8::from(c.is_decision_making)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
