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

use crate::rules::verdict::{Email, PortalAccount, Who};
use std::borrow::Cow;

use crate::rules::{DistrictFacts, GuardianLink, Limit, StudentFacts, UserRef};

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
pub use verdicts::Keep;

use super::Decisions;

/// Decides every connection of the district from the facts.
pub fn decide(facts: &DistrictFacts) -> Decisions {
    Engine::new(facts).decisions(&Keep::ALL)
}

/// `decide`, keeping of each decision's verdicts what `keep` says: a run
/// keeps those of the connections it writes (they go to the audit), as
/// codes, and drops the rest as they are made; a district's verdicts would
/// otherwise outweigh its rows. Every other field of every decision, and
/// the report, are as `decide` makes them.
pub fn decide_keeping(facts: &DistrictFacts, keep: &Keep<'_>) -> Decisions {
    let mut engine = Engine::new(facts);
    let mut decisions = engine.decisions_but_new_users(keep);
    // Moved, not copied: a first sync creates a user for most parents.
    decisions.new_users = std::mem::take(&mut engine.accounts.new_users);
    decisions
}

impl Keep<'_> {
    /// Every verdict, as structures (`explain`, the rules' tests).
    pub const ALL: Keep<'static> = Keep {
        verdicts_of: &|_| true,
        as_codes: false,
        unchanged: &|_| false,
    };
}

/// What steps 1 and 2 made of one guardian row.
struct JudgedRow<'a> {
    link: &'a GuardianLink,
    /// The row's email, normalised; `None` when empty or malformed. Borrowed
    /// from the row when normalising changed nothing (nearly always), so a
    /// district's rows are judged without a copy of their emails.
    email: Option<Cow<'a, str>>,
    outcome: RowOutcome,
    /// Step 2's answer, for a valid link only.
    found: Option<Found>,
    /// The user the link gives the student to (from `found`, once the new
    /// users are settled); `None` for a row that is no valid link.
    owner: Option<UserRef>,
}

impl JudgedRow<'_> {
    /// The normalised email. Every row past R2 has one; any other row gets
    /// the empty string, which matches nobody.
    fn email_or_empty(&self) -> &str {
        self.email.as_deref().unwrap_or_default()
    }

    /// The limits of a valid link; none for any other row.
    fn limits(&self) -> &[Limit] {
        match &self.outcome {
            RowOutcome::Valid { limits } => limits,
            _ => &[],
        }
    }
}

/// The facts, indexed once; step 1 and step 2 are worked out for every row
/// on construction, the rest of the table in `decisions`.
/// The student of the row at position `i` (every position is a row's).
fn student_at(rows: &[JudgedRow<'_>], i: usize) -> Option<i64> {
    rows.get(i).map(|r| r.link.student_dcid)
}

pub(crate) struct Engine<'a> {
    facts: &'a DistrictFacts,
    index: FactsIndex<'a>,
    /// Per guardian row, by position in `facts.guardian_rows`.
    rows: Vec<JudgedRow<'a>>,
    /// Every row's position, sorted by (student, position) (see `rows_of`).
    rows_by_student: Vec<usize>,
    accounts: Accounts,
}

impl<'a> Engine<'a> {
    pub(crate) fn new(facts: &'a DistrictFacts) -> Engine<'a> {
        let index = FactsIndex::new(facts);
        let mut rows = Vec::with_capacity(facts.guardian_rows.len());
        for row in &facts.guardian_rows {
            let email = facts_index::normalised(row.email.as_deref());
            let outcome = judge_link(&index, row, email.as_deref());
            let found = match (&outcome, &email) {
                (RowOutcome::Valid { .. }, Some(email)) => Some(find_owner(&index, row, email)),
                _ => None,
            };
            rows.push(JudgedRow {
                link: row,
                email,
                outcome,
                found,
                owner: None,
            });
        }
        // Sorted as (student, position) pairs side by side, not through
        // the rows: a district's rows are far apart in memory.
        let mut keyed: Vec<(i64, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.link.student_dcid, i))
            .collect();
        keyed.sort_unstable();
        let rows_by_student: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
        let accounts = Accounts::settle(&index, &rows);
        accounts.set_owners(&mut rows);
        Engine {
            facts,
            index,
            rows,
            rows_by_student,
            accounts,
        }
    }

    // ---------------- small lookups ----------------

    /// The positions of the student's guardian rows, ascending.
    fn rows_of(&self, student_dcid: i64) -> impl Iterator<Item = usize> + '_ {
        let start = self
            .rows_by_student
            .partition_point(|&i| student_at(&self.rows, i) < Some(student_dcid));
        self.rows_by_student
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .copied()
            .take_while(move |&i| student_at(&self.rows, i) == Some(student_dcid))
    }

    /// The user a valid link gives the student to, with step 2's answer;
    /// `None` for a row that is no valid link.
    fn owner_of(&self, row: &JudgedRow<'_>) -> Option<(UserRef, Found)> {
        row.owner.zip(row.found)
    }

    /// Who a connection is with, as the cases name them; `email` is the
    /// normalised email of the link that found a new user (the one it is
    /// created with).
    fn describe_user(&self, user: UserRef, email: Option<&Email>) -> Who {
        match user {
            UserRef::Existing(id) => Who::User {
                id,
                login: self.index.login_of(id),
            },
            UserRef::New(i) => match (self.accounts.new_users.get(i), email) {
                (Some(n), Some(e)) if n.email == **e => Who::NewUser(e.clone()),
                (Some(n), _) => Who::NewUser(Email::from(n.email.as_str())),
                (None, _) => Who::ANewUser,
            },
        }
    }

    // ---------------- for explain ----------------

    /// Every guardian row with what steps 1 and 2 made of it: the row, its
    /// outcome, its normalised email and step 2's answer.
    pub(crate) fn judged_rows(
        &self,
    ) -> impl Iterator<Item = (&'a GuardianLink, &RowOutcome, Option<&str>, Option<Found>)> {
        self.rows
            .iter()
            .map(|r| (r.link, &r.outcome, r.email.as_deref(), r.found))
    }

    /// The student as the rules see it (the one kept among duplicates);
    /// `None` outside the sync set.
    pub(crate) fn student(&self, student_dcid: i64) -> Option<&'a StudentFacts> {
        self.index.students.get(&student_dcid).map(|s| s.facts)
    }

    pub(crate) fn parent_portal_account_of(&self, user_id: i64) -> Option<PortalAccount> {
        self.parent_portal_account(user_id)
    }
}
