//! The plan of one run: every create, update and removal it would make,
//! computed in memory from the fetched snapshot and the loaded state. Nothing
//! is written here, so `plan` can be shown, stored or thrown away, and a row
//! whose synced fields are unchanged simply never appears in it.
//!
//! The steps, in the order `plan` takes them: the sync set (`sync_set`), the
//! diff of the students (`mirrored`), the rules, with the diff of the
//! contacts and guardian accounts beside them, the users (`users`) and
//! connections (`connections`) they decide, and the problems (`problems`).
//! What a plan is made of is in `changes`.

use super::facts::{return_schoolengage_side, with_schoolengage_side};
use crate::config::SyncSettings;
use crate::powerschool::{DistrictSnapshot, GuardianLink, StudentContact};
use crate::rules::{self, StudentFacts};
use crate::store::digest::Stamps;
use crate::store::state::{CurrentState, StudentRow};
use crate::store::write::{NewUserRow, ProblemRow, UserUpdate};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

mod changes;
mod connections;
mod mirrored;
mod problems;
mod sync_set;
mod users;

pub use changes::{
    ConnectionChange, ConnectionChangeKind, ConnectionCounts, FetchCounts, KindCounts, PlanCounts,
    RowChanges, SchoolCounts,
};
pub use connections::guardian_id_after;
pub(crate) use problems::problem;
pub(crate) use users::{changes_user, user_counts};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub students: RowChanges<StudentRow, i64>,
    /// Students in the sync set until now that leave it in this plan (their
    /// updates are in `students.update`).
    #[serde(default)]
    pub leaving: Vec<i64>,
    pub contacts: RowChanges<StudentContact, (i64, i64)>,
    pub guardian_accounts: RowChanges<GuardianLink, (i64, i64)>,
    pub new_users: Vec<NewUserRow>,
    pub user_updates: Vec<UserUpdate>,
    pub connections: Vec<ConnectionChange>,
    pub problems: Vec<ProblemRow>,
    pub counts: PlanCounts,
    pub decisions: DecisionsSummary,
    /// The digests owed to stored rows read without one (see
    /// `store::digest::Stamp`), written with the plan. Not kept with a held
    /// plan: the next run reads those rows' text again and stamps them.
    #[serde(skip)]
    pub stamps: Stamps,
}

impl Plan {
    /// The stored rows of the students leaving the sync set (`leaving`),
    /// for a plan made against digests, which could not copy them: each is
    /// kept, marked as out of the set, exactly as a plan made against the
    /// rows keeps it.
    pub fn add_leaving_rows(&mut self, stored: Vec<StudentRow>) {
        self.students
            .update
            .extend(stored.into_iter().map(|row| StudentRow {
                in_sync_set: false,
                ..row
            }));
        self.counts.students = self.students.counts();
    }
}

/// What the rules reported, kept for the run report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecisionsSummary {
    pub report: rules::DecisionReport,
    pub incomplete_users: u64,
}

/// Builds the whole plan from a borrowed snapshot (spot syncs and tests,
/// whose snapshots are small): a copy of it is planned with `plan_owned`.
/// `state` is lent: it is as it was when the plan is made.
pub fn plan(
    snapshot: &DistrictSnapshot,
    state: &mut CurrentState,
    settings: &SyncSettings,
    today: NaiveDate,
) -> Plan {
    plan_owned(snapshot.clone(), state, settings, today)
}

/// Builds the whole plan, consuming the snapshot: each fetched row moves
/// into the rules' facts or the plan instead of being copied, and every
/// part is freed as soon as it has been used, so a district's rows are held
/// once at a time. `today` is the district's local date. The stored users,
/// connections and forms are lent to the rules (moved out of `state` and
/// back), so `state` is as it was when the plan is made.
pub fn plan_owned(
    mut snapshot: DistrictSnapshot,
    state: &mut CurrentState,
    settings: &SyncSettings,
    today: NaiveDate,
) -> Plan {
    let started = std::time::Instant::now();
    let step = |name: &str| {
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "plan: {name} done"
        )
    };
    let mut plan = Plan::default();
    plan.counts.fetched = FetchCounts {
        guardians: snapshot.guardians.len() as u64,
        students: snapshot.students.len() as u64,
        independent_students: snapshot.independent_students.len() as u64,
        contacts: snapshot.contacts.len() as u64,
    };
    plan.counts.per_school = SchoolCounts::of(&snapshot);
    plan.problems.extend(problems::fetch_problems(&snapshot));
    snapshot.problems = Vec::new();

    let set = sync_set::sync_set(
        std::mem::take(&mut snapshot.students),
        &std::mem::take(&mut snapshot.independent_students),
        settings,
        today,
    );
    plan.counts.scheduling_year_excluded = set.scheduling_year_excluded;
    plan.problems.extend(set.problems);
    let in_set = set.students;
    step("sync set");

    let students: Vec<StudentFacts> = in_set.iter().map(super::facts::student_for_rules).collect();
    // The sync set's dcids, sorted (a binary search each, 8 bytes a student).
    let mut dcids: Vec<i64> = in_set.iter().map(|r| r.student.dcid).collect();
    dcids.sort_unstable();
    dcids.dedup();
    // The sync set's rows move into the students' changes (the unchanged
    // ones are freed here, before the rules run).
    (plan.students, plan.leaving) = mirrored::student_changes_in(in_set, state);

    // The fetched contacts and guardian rows move into the facts (no copy),
    // and are diffed there, beside the rules (below). The stored users,
    // connections and forms move in too, and back at the end.
    let mut facts = with_schoolengage_side(
        students,
        std::mem::take(&mut snapshot.contacts),
        std::mem::take(&mut snapshot.guardians),
        state,
        settings,
    );
    drop(snapshot);
    step("facts");
    // Only the connections written keep their verdicts (for the audit); a
    // run's plan (made against digests: nobody reads its sentences unless it
    // is held) keeps them as the audit's codes.
    let existing = connections::Existing::of(&facts.connections);
    let keep = rules::Keep {
        verdicts_of: &|d| existing.is_written(d),
        as_codes: state.digests.is_some(),
        unchanged: &|d| existing.is_unchanged(d),
    };
    // Contacts and guardian accounts mirror PowerSchool for the sync set.
    // Which rows changed is worked out from the facts' rows while the rules
    // read them, on a thread of its own (on a quiet night the rules keep one
    // core busy and the other idle; a first sync codes its verdicts on both,
    // and there the comparison is quick: nothing is stored); then the rows
    // move into their changes (the unchanged ones are freed), so no row is
    // ever held twice.
    let (contacts, guardian_accounts): (
        &mirrored::StoredRows<StudentContact>,
        &mirrored::StoredRows<GuardianLink>,
    ) = match &state.digests {
        Some(d) => (&d.contacts, &d.guardian_accounts),
        None => (&state.contacts, &state.guardian_accounts),
    };
    let (mut decisions, (contacts, guardian_accounts)) = std::thread::scope(|scope| {
        let compared = scope.spawn(|| {
            (
                mirrored::compare_of_sync_set(&facts.contacts, &dcids, contacts),
                mirrored::compare_of_sync_set(&facts.guardian_rows, &dcids, guardian_accounts),
            )
        });
        let decisions = rules::decide_keeping(&facts, &keep);
        let compared = compared
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (decisions, compared)
    });
    step("rules, and the comparison of the contacts and guardian accounts");

    let users = users::user_changes(&facts.users, &facts.guardian_rows, &mut decisions);
    plan.contacts = contacts.into_changes(std::mem::take(&mut facts.contacts));
    plan.guardian_accounts =
        guardian_accounts.into_changes(std::mem::take(&mut facts.guardian_rows));
    drop(dcids);
    facts.students = Vec::new();
    step("mirrored rows");
    plan.counts.users = users.counts();
    plan.new_users = users.new_users;
    plan.user_updates = users.updates;
    let (connections, unchanged) = connections::connection_changes(&existing, &mut decisions);
    plan.counts.connections = ConnectionCounts::tally(
        &connections,
        unchanged,
        decisions.report.orphaned.len() as u64,
    );
    plan.connections = connections;
    return_schoolengage_side(&mut facts, state);
    drop(facts);
    step("users and connections");
    problems::report_problems(&mut plan.problems, &decisions.report);

    plan.counts.students = plan.students.counts();
    plan.counts.contacts = plan.contacts.counts();
    plan.counts.guardian_accounts = plan.guardian_accounts.counts();
    problems::tidy(&mut plan.problems);
    plan.counts.problems = plan.problems.len() as u64;
    plan.decisions = DecisionsSummary {
        incomplete_users: decisions.incomplete_users.len() as u64,
        report: decisions.report,
    };
    plan
}
