//! Why a (student, email or user) pair has no valid PowerSchool link, in rule
//! terms: what step 1 or step 2 made of every guardian row of the student
//! that carries the email or the user's account, or R2 when there is none.
//! Cases A and C and `explain` give these as their reasons.

use super::{Engine, Found, JudgedRow, RowOutcome};
use crate::rules::verdict::{Email, Reason, Rule};
use crate::rules::RuleVerdict;

impl Engine<'_> {
    /// Why (student, email/user) has no valid link: a verdict for every
    /// guardian row of the student that carries the email or the user's
    /// account, or R2 when there is none. Every verdict failed. Ordered by
    /// rule, then by sentence, without repeats (the sentences are rendered
    /// only to order two or more).
    pub(crate) fn why_no_link(
        &self,
        student_dcid: i64,
        email: Option<&Email>,
        user_id: Option<i64>,
    ) -> Vec<RuleVerdict> {
        let account = user_id.and_then(|u| self.index.earlier_guardian_id(u));
        let mut verdicts: Vec<RuleVerdict> = Vec::new();
        for i in self.rows_of(student_dcid) {
            let Some(judged) = self.rows.get(i) else {
                continue;
            };
            let related = (email.is_some() && judged.email.as_deref() == email.map(|e| &**e))
                || (account.is_some() && account == Some(judged.link.guardian_id));
            if !related {
                continue;
            }
            if let Some(reason) = self.why_row_is_no_link(judged, user_id) {
                verdicts.push(reason.verdict());
            }
        }
        if verdicts.len() > 1 {
            let mut keyed: Vec<(Rule, String, RuleVerdict)> = verdicts
                .into_iter()
                .map(|v| (v.rule, v.detail(), v))
                .collect();
            keyed.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
            keyed.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
            verdicts = keyed.into_iter().map(|(_, _, v)| v).collect();
        }
        if verdicts.is_empty() {
            verdicts.push(
                Reason::NoAccountLinks {
                    student_dcid,
                    email: email.cloned(),
                    guardian_id: account,
                }
                .verdict(),
            );
        }
        verdicts
    }

    /// Why guardian row `i` gives `user_id` no link to its student; `None`
    /// when it does (the row is the user's own valid link).
    fn why_row_is_no_link(&self, judged: &JudgedRow<'_>, user_id: Option<i64>) -> Option<Reason> {
        let row = judged.link;
        let student_dcid = row.student_dcid;
        let guardian_id = row.guardian_id;
        let email = judged.email.as_deref().map(Email::from);
        let reason = match &judged.outcome {
            RowOutcome::WebAccessAccount => Reason::WebAccessRow {
                guardian_id,
                email,
                student_dcid,
            },
            RowOutcome::StudentNotInSyncSet => Reason::RowNotInSyncSet {
                student_dcid,
                guardian_id,
            },
            RowOutcome::NoUsableEmail => Reason::UnusableEmail {
                guardian_id,
                raw: row.email.as_deref().unwrap_or("").into(),
                student_dcid,
            },
            RowOutcome::NoMatchingContact => Reason::NoMatchingContact {
                student_dcid,
                email,
                guardian_id,
            },
            RowOutcome::Valid { .. } => self.whose_valid_link(judged, user_id)?,
        };
        Some(reason)
    }

    /// Step 2 on a valid link that belongs to someone other than `user_id`;
    /// `None` when it is theirs.
    fn whose_valid_link(&self, judged: &JudgedRow<'_>, user_id: Option<i64>) -> Option<Reason> {
        let row = judged.link;
        let student_dcid = row.student_dcid;
        let guardian_id = row.guardian_id;
        let email = judged.email.as_deref().map(Email::from);
        // Step 2 ran for every valid link.
        let found = judged.found?;
        let reason = match found {
            _ if found.user().is_some() && found.user() == user_id => return None,
            Found::LinkedAccount(u) => Reason::LinkOfEarlierUser {
                guardian_id,
                student_dcid,
                email,
                user_id: u,
                login: self.index.login_of(u),
            },
            Found::FormCreator(u) | Found::VerifiedEmail(u) => Reason::LinkOfUser {
                guardian_id,
                student_dcid,
                email,
                user_id: u,
                login: self.index.login_of(u),
            },
            Found::UnverifiedOnly(u) => Reason::LinkOfUnverifiedUser {
                guardian_id,
                student_dcid,
                email,
                user_id: u,
            },
            Found::NewUser => Reason::LinkOfNewUser {
                guardian_id,
                student_dcid,
                email,
            },
        };
        Some(reason)
    }
}
