//! The decision table of access-rules.md, steps 1–3, with the binding choices
//! of the README's decisions: every row of the table lives in this folder and
//! nowhere else, so the nightly run, `plan` and `explain` can never disagree
//! about a parent.
//!
//! The files follow the spec's steps, in the order a run takes them:
//! - `facts_index`: the facts, indexed once (students, contacts, users,
//!   connections, forms);
//! - `link_validity`: step 1 on one guardian row, R1–R5: is the link valid,
//!   and which tier it allows;
//! - `account_owner`: step 2, which user a valid link's account is;
//! - `cases`: step 3, what happens to a pair with a valid link (D, B1, B2)
//!   or without one (A, C, `on_powerschool_removal`);
//! - `missing_link`: why a pair has no valid link, in rule terms;
//! - `verdicts`: every connection's decision, the orphans and the run report.
//!
//! The work is a handful of passes over hash indexes (O(rows)), because a
//! district of 150,000 students is decided in one go; every output is sorted
//! and every tie broken on values, never on input order, so the same district
//! gives the same decisions however PowerSchool happened to list its rows.

use std::collections::HashMap;

use crate::rules::email::normalise_optional;
use crate::rules::{DistrictFacts, Limit, StudentFacts, UserRef};

mod account_owner;
mod cases;
mod facts_index;
mod link_validity;
mod missing_link;
mod verdicts;

#[cfg(test)]
mod tests;

pub(crate) use account_owner::Found;
use account_owner::{find_owner, Accounts};
use facts_index::FactsIndex;
use link_validity::judge_link;
pub use link_validity::tier_under;
pub(crate) use link_validity::RowOutcome;

use super::Decisions;

/// Decides every connection of the district from the facts.
pub fn decide(facts: &DistrictFacts) -> Decisions {
    Engine::new(facts).decisions()
}

/// What steps 1 and 2 made of one guardian row.
struct JudgedRow {
    /// The row's email, normalised; `None` when empty or malformed.
    email: Option<String>,
    outcome: RowOutcome,
    /// Step 2's answer, for a valid link only.
    found: Option<Found>,
}

/// The facts, indexed once; step 1 and step 2 are worked out for every row
/// on construction, the rest of the table in `decisions`.
pub(crate) struct Engine<'a> {
    facts: &'a DistrictFacts,
    index: FactsIndex<'a>,
    /// Per guardian row, by position in `facts.guardian_rows`.
    rows: Vec<JudgedRow>,
    rows_by_student: HashMap<i64, Vec<usize>>,
    accounts: Accounts,
}

impl<'a> Engine<'a> {
    pub(crate) fn new(facts: &'a DistrictFacts) -> Engine<'a> {
        let index = FactsIndex::new(facts);
        let mut rows = Vec::with_capacity(facts.guardian_rows.len());
        let mut rows_by_student: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, row) in facts.guardian_rows.iter().enumerate() {
            let email = normalise_optional(row.email.as_deref());
            let outcome = judge_link(&index, row, email.as_deref());
            let found = match (&outcome, &email) {
                (RowOutcome::Valid { .. }, Some(email)) => Some(find_owner(&index, row, email)),
                _ => None,
            };
            rows.push(JudgedRow {
                email,
                outcome,
                found,
            });
            rows_by_student.entry(row.student_dcid).or_default().push(i);
        }
        let accounts = Accounts::settle(&index, &facts.guardian_rows, &rows);
        Engine {
            facts,
            index,
            rows,
            rows_by_student,
            accounts,
        }
    }

    // ---------------- small lookups ----------------

    fn row_email(&self, i: usize) -> &str {
        self.rows[i]
            .email
            .as_deref()
            .expect("only rows with a usable email get this far")
    }

    /// The user a valid link gives the student to, if any.
    fn user_of_row(&self, i: usize) -> Option<UserRef> {
        match self.rows[i].found? {
            Found::NewUser => Some(UserRef::New(
                self.accounts.new_user_index[self.row_email(i)],
            )),
            found => found.user().map(UserRef::Existing),
        }
    }

    fn limits_of(&self, i: usize) -> &[Limit] {
        match &self.rows[i].outcome {
            RowOutcome::Valid { limits } => limits,
            _ => &[],
        }
    }

    fn describe_user(&self, user: UserRef) -> String {
        match user {
            UserRef::Existing(u) => format!("user {u} ({})", self.index.login_of(u)),
            UserRef::New(i) => match self.accounts.new_users.get(i) {
                Some(n) => format!("the new user {}", n.email),
                None => "a new user".to_string(),
            },
        }
    }

    // ---------------- for explain ----------------

    pub(crate) fn row_outcome(&self, i: usize) -> (&RowOutcome, Option<&str>, Option<Found>) {
        let row = &self.rows[i];
        (&row.outcome, row.email.as_deref(), row.found)
    }

    /// The student as the rules see it (the one kept among duplicates);
    /// `None` outside the sync set.
    pub(crate) fn student(&self, student_dcid: i64) -> Option<&'a StudentFacts> {
        self.index.students.get(&student_dcid).map(|s| s.facts)
    }

    pub(crate) fn parent_portal_account_of(&self, user_id: i64) -> Option<String> {
        self.parent_portal_account(user_id)
    }
}
