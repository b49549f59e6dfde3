//! Why a (student, email or user) pair has no valid PowerSchool link, in rule
//! terms: what step 1 or step 2 made of every guardian row of the student
//! that carries the email or the user's account, or R2 when there is none.
//! Cases A and C and `explain` give these as their reasons.

use std::collections::BTreeMap;

use super::{Engine, Found, JudgedRow, RowOutcome};
use crate::rules::RuleVerdict;

/// One row's reason: (rule, detail).
type RowReason = (&'static str, String);

impl Engine<'_> {
    /// Why (student, email/user) has no valid link: a verdict for every
    /// guardian row of the student that carries the email or the user's
    /// account, or R2 when there is none. Every verdict failed.
    pub(crate) fn why_no_link(
        &self,
        student_dcid: i64,
        email: Option<&str>,
        user_id: Option<i64>,
    ) -> Vec<RuleVerdict> {
        let account = user_id.and_then(|u| self.index.earlier_guardian_id(u));
        let mut verdicts: BTreeMap<(String, String), bool> = BTreeMap::new();
        for &i in self
            .rows_by_student
            .get(&student_dcid)
            .into_iter()
            .flatten()
        {
            let Some(judged) = self.rows.get(i) else {
                continue;
            };
            let row_email = judged.email.as_deref();
            let related = (email.is_some() && row_email == email)
                || (account.is_some() && account == Some(judged.link.guardian_id));
            if !related {
                continue;
            }
            if let Some((rule, detail)) = self.why_row_is_no_link(judged, user_id) {
                verdicts.insert((rule.to_string(), detail), false);
            }
        }
        if verdicts.is_empty() {
            verdicts.insert(
                (
                    "R2".to_string(),
                    no_account_links(student_dcid, email, account),
                ),
                false,
            );
        }
        verdicts
            .into_iter()
            .map(|((rule, detail), passed)| RuleVerdict {
                rule,
                passed,
                detail,
            })
            .collect()
    }

    /// Why guardian row `i` gives `user_id` no link to its student; `None`
    /// when it does (the row is the user's own valid link).
    fn why_row_is_no_link(
        &self,
        judged: &JudgedRow<'_>,
        user_id: Option<i64>,
    ) -> Option<RowReason> {
        let row = judged.link;
        let student_dcid = row.student_dcid;
        let gid = row.guardian_id;
        let shown = judged.email.as_deref().unwrap_or("no usable email");
        let reason = match &judged.outcome {
            RowOutcome::WebAccessAccount => (
                "R1",
                format!(
                    "The row of guardian account {gid} ({shown}) for student {student_dcid} is a link through a Web Access Account, which R1 ignores."
                ),
            ),
            RowOutcome::StudentNotInSyncSet => (
                "sync_set",
                format!(
                    "Student {student_dcid} is not in this run's sync set (not enrolled, or a scheduling-year student), so the row of guardian account {gid} is ignored."
                ),
            ),
            RowOutcome::NoUsableEmail => (
                "email",
                format!(
                    "Guardian account {gid} has no usable email ({:?}), so its link to student {student_dcid} cannot be checked against contacts or users.",
                    row.email.as_deref().unwrap_or("")
                ),
            ),
            RowOutcome::NoMatchingContact => (
                "R3",
                format!(
                    "No contact of student {student_dcid} has the email {shown}, so the link of guardian account {gid} is treated as absent from PowerSchool."
                ),
            ),
            RowOutcome::Valid { .. } => ("step2", self.whose_valid_link(judged, shown, user_id)?),
        };
        Some(reason)
    }

    /// Step 2 on a valid link that belongs to someone other than `user_id`;
    /// `None` when it is theirs.
    fn whose_valid_link(
        &self,
        judged: &JudgedRow<'_>,
        shown: &str,
        user_id: Option<i64>,
    ) -> Option<String> {
        let row = judged.link;
        let student_dcid = row.student_dcid;
        let gid = row.guardian_id;
        // Step 2 ran for every valid link.
        let found = judged.found?;
        let detail = match found {
            _ if found.user().is_some() && found.user() == user_id => return None,
            Found::LinkedAccount(u) => format!(
                "Guardian account {gid} validly links student {student_dcid} with {shown}, but an earlier sync linked that account to user {u} ({}), who gets the connection instead.",
                self.index.login_of(u)
            ),
            Found::FormCreator(u) | Found::VerifiedEmail(u) => format!(
                "Guardian account {gid} validly links student {student_dcid} with {shown}, and that link belongs to user {u} ({}).",
                self.index.login_of(u)
            ),
            Found::UnverifiedOnly(u) => format!(
                "Guardian account {gid} validly links student {student_dcid} with {shown}, but user {u} has not verified that email in SchoolEngage, so no connection is made."
            ),
            Found::NewUser => format!(
                "Guardian account {gid} validly links student {student_dcid} with {shown}, and that link belongs to the new user the run creates with that email."
            ),
        };
        Some(detail)
    }
}

/// R2: no row of the guardian PowerQuery links the student to the email or account.
fn no_account_links(student_dcid: i64, email: Option<&str>, account: Option<i64>) -> String {
    let whose = match (email, account) {
        (Some(e), Some(g)) => format!("the email {e} or to guardian account {g}"),
        (Some(e), None) => format!("the email {e}"),
        (None, Some(g)) => format!("guardian account {g}"),
        (None, None) => "this user (no usable login email)".to_string(),
    };
    format!(
        "No Parent Portal account in the guardian PowerQuery links student {student_dcid} to {whose}."
    )
}
