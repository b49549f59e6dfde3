//! Spot sync: one student (`--student DCID`) or one guardian's students
//! (`--email EMAIL`) fetched with PowerQuery arguments, planned with the same
//! `plan` as a nightly run but against the state of those students alone,
//! and applied in one transaction as a run with trigger `spot`. Nothing
//! outside the scope changes: no other student leaves the sync set, no other
//! connection is orphaned, no other user's flags move. New users are made
//! only with `create_users`. It waits for the run lock while a nightly run
//! holds it.

use super::explain::{explain_pairs, AccessExplanation};
use super::plan::{self, ConnectionCounts, Plan};
use super::report::RunReport;
use super::{apply_run, mark_unsuccessful, run_lock_key, SyncError};
use crate::config::{Settings, SyncSettings};
use crate::powerschool::{DistrictSnapshot, GuardianLink, PowerSchoolClient, QueryResult};
use crate::rules::{self, ConnectionCase, TierMatrix, UserRef};
use crate::store::district::WriteGate;
use crate::store::runs::{self, RunPhase, RunStatus, RunTrigger};
use crate::store::scope::load_scoped;
use crate::store::state::{self, CurrentState, UserRow};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;
use std::hash::Hash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpotScope {
    Student(i64),
    /// A guardian's email (any case and spacing): every student linked to
    /// it in PowerSchool or in the database.
    Guardian(String),
}

#[derive(Debug, Clone)]
pub struct SpotOptions {
    pub scope: SpotScope,
    /// Create users for valid PowerSchool links whose email matches nobody.
    pub create_users: bool,
    /// The district's local date, for the scheduling-year rule.
    pub today: NaiveDate,
}

/// One connection of the scope after the spot sync, with the rules' explanation.
#[derive(Debug, Clone, Serialize)]
pub struct SpotConnection {
    pub student_dcid: i64,
    pub email: String,
    /// The spot sync wrote it (created, updated or removed).
    pub changed: bool,
    pub explanation: AccessExplanation,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpotOutcome {
    pub run_id: i64,
    pub scope: String,
    pub students: Vec<i64>,
    pub report: RunReport,
    /// Emails a user would have been made for, without `--create-users`.
    pub users_not_created: Vec<String>,
    pub connections: Vec<SpotConnection>,
}

impl SpotOutcome {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Spot sync of {} (run {}): students {:?}",
            self.scope, self.run_id, self.students
        );
        out.push_str(&self.report.to_text());
        if !self.users_not_created.is_empty() {
            let _ = writeln!(
                out,
                "Users not created (run again with --create-users to create them): {}",
                self.users_not_created.join(", ")
            );
        }
        for c in &self.connections {
            let _ = writeln!(
                out,
                "\n=== student {} ↔ {}{} ===",
                c.student_dcid,
                c.email,
                if c.changed {
                    " (changed by this spot sync)"
                } else {
                    ""
                }
            );
            out.push_str(&c.explanation.to_text());
        }
        if self.connections.is_empty() {
            let _ = writeln!(out, "\nNo connection in scope.");
        }
        out
    }
}

impl SpotScope {
    fn text(&self) -> String {
        match self {
            SpotScope::Student(d) => format!("student {d}"),
            SpotScope::Guardian(e) => format!("guardian {e}"),
        }
    }
}

/// Runs one spot sync; waits for the run lock first.
pub async fn spot(
    pool: &PgPool,
    settings: &Settings,
    client: &PowerSchoolClient,
    matrix: &TierMatrix,
    options: &SpotOptions,
) -> Result<SpotOutcome, SyncError> {
    let scope = match &options.scope {
        SpotScope::Student(d) => SpotScope::Student(*d),
        SpotScope::Guardian(e) => {
            SpotScope::Guardian(rules::normalise_email(e).ok_or_else(|| {
                SyncError::Spot(format!("--email {e:?} is not a well-formed email address"))
            })?)
        }
    };
    let lock = crate::store::lock::wait_for_lock(pool, &run_lock_key(settings), || {
        tracing::info!("spot sync: a run holds the run lock; waiting for it to finish")
    })
    .await?;
    let gate = WriteGate::new(&settings.district, Some(lock.backend_pid()));
    let result = spot_locked(pool, settings, client, matrix, options, &scope, &gate).await;
    lock.release().await;
    result
}

async fn spot_locked(
    pool: &PgPool,
    settings: &Settings,
    client: &PowerSchoolClient,
    matrix: &TierMatrix,
    options: &SpotOptions,
    scope: &SpotScope,
    gate: &WriteGate,
) -> Result<SpotOutcome, SyncError> {
    // The built-in guardian query takes no arguments (wire spec §4), so the
    // whole query is read and narrowed here.
    let guardians = client.guardians().await?;
    let dcids = students_of_scope(pool, scope, &guardians.records).await?;
    // Fetched before the run row exists: a mistyped id is an answer to the
    // admin, not a failed run in the district's history.
    let snapshot = fetch_students(client, &dcids, guardians).await?;
    if let SpotScope::Student(dcid) = scope {
        ensure_student_exists(pool, &snapshot, *dcid).await?;
    }
    let scope_text = scope.text();
    let run = run_spot(
        pool,
        settings,
        options,
        &snapshot,
        &dcids,
        &scope_text,
        gate,
    )
    .await?;
    let connections = explain_scope(pool, settings, matrix, scope, &dcids, &run).await?;
    Ok(SpotOutcome {
        run_id: run.run_id,
        scope: scope_text,
        students: dcids.into_iter().collect(),
        report: run.report,
        users_not_created: run.users_not_created,
        connections,
    })
}

/// The students a spot sync covers: the one asked for, or every student
/// linked to the guardian's email in PowerSchool or in the database.
async fn students_of_scope(
    pool: &PgPool,
    scope: &SpotScope,
    guardians: &[GuardianLink],
) -> Result<BTreeSet<i64>, SyncError> {
    let email = match scope {
        SpotScope::Student(d) => return Ok([*d].into()),
        SpotScope::Guardian(email) => email,
    };
    let mut set: BTreeSet<i64> = guardians
        .iter()
        .filter(|g| g.email.as_deref().and_then(rules::normalise_email).as_ref() == Some(email))
        .map(|g| g.student_dcid)
        .collect();
    set.extend(state::students_of_email(pool, email).await?);
    if set.is_empty() {
        return Err(SyncError::Spot(format!(
            "no student is linked to {email} in PowerSchool or in the database; \
             check the address, or let the nightly run pick it up"
        )));
    }
    Ok(set)
}

/// Refuses a student PowerSchool does not return as enrolled and the
/// database has never held: most likely a mistyped number.
async fn ensure_student_exists(
    pool: &PgPool,
    snapshot: &DistrictSnapshot,
    dcid: i64,
) -> Result<(), SyncError> {
    let enrolled = snapshot.students.iter().any(|s| s.dcid == dcid);
    if !enrolled && !state::student_known(pool, dcid).await? {
        return Err(SyncError::Spot(format!(
            "PowerSchool has no enrolled student (enroll_status <= 0) with DCID {dcid} and \
             SchoolEngage has never synced one; check the number (it is students.dcid, not \
             the student number)"
        )));
    }
    Ok(())
}

/// A spot sync done: its run, what it wrote, and the state it planned from.
struct SpotRun {
    run_id: i64,
    plan: Plan,
    report: RunReport,
    users_not_created: Vec<String>,
    before: CurrentState,
}

/// The spot sync as a run (trigger `spot`, with its scope): planned against
/// the state of the scope's students and applied in one transaction. A
/// failure marks the run failed.
async fn run_spot(
    pool: &PgPool,
    settings: &Settings,
    options: &SpotOptions,
    snapshot: &DistrictSnapshot,
    dcids: &BTreeSet<i64>,
    scope_text: &str,
    gate: &WriteGate,
) -> Result<SpotRun, SyncError> {
    let run_id = runs::start_run(pool, RunTrigger::Spot, options.today).await?;
    runs::set_scope(pool, run_id, scope_text).await?;
    tracing::info!(run_id, scope = %scope_text, "spot sync {run_id} of {scope_text}: students {dcids:?}");
    let work = async {
        runs::set_phase(pool, run_id, RunPhase::Planning).await?;
        let state = state_of_scope(pool, snapshot, dcids).await?;
        let (plan, not_created) = plan_scoped(
            snapshot,
            &state,
            dcids,
            &settings.sync,
            options.today,
            options.create_users,
        );
        // Writing frees the plan's rows; a spot sync's (one student's) are
        // shown after it, so a copy is written.
        let report = apply_run(pool, gate, run_id, &mut plan.clone(), None, None).await?;
        Ok::<_, SyncError>((plan, report, not_created, state))
    };
    let (plan, report, users_not_created, before) = match work.await {
        Ok(r) => r,
        Err(e) => {
            mark_unsuccessful(pool, run_id, RunStatus::Failed, &e).await;
            return Err(e);
        }
    };
    tracing::info!(
        run_id,
        "spot sync {run_id} succeeded: {}",
        super::report::one_line(&plan.counts)
    );
    Ok(SpotRun {
        run_id,
        plan,
        report,
        users_not_created,
        before,
    })
}

/// The stored state a spot sync reads: that of its students, and of every
/// record joined to them or to what was fetched for them by a student, an
/// email, a guardian account or a user (`rules::reach_from`, from the
/// fetched guardian rows' emails and accounts), which holds
/// every user the plan can match and every connection of those users. The
/// keys of the stored records are read first, then those records only: a
/// district's whole state is gigabytes at a million students.
async fn state_of_scope(
    pool: &PgPool,
    snapshot: &DistrictSnapshot,
    dcids: &BTreeSet<i64>,
) -> Result<CurrentState, SyncError> {
    let emails = snapshot.guardians.iter().map(|g| g.email.as_deref());
    let guardians = snapshot.guardians.iter().map(|g| g.guardian_id);
    let scope = |keys| rules::reach_from(&keys, dcids.iter().copied(), emails, guardians);
    Ok(load_scoped(pool, scope).await?)
}

/// The connections of the scope, before and after, each explained: every
/// connection the spot sync wrote, and the scope's students' connections
/// (for a guardian, only that guardian's).
async fn explain_scope(
    pool: &PgPool,
    settings: &Settings,
    matrix: &TierMatrix,
    scope: &SpotScope,
    dcids: &BTreeSet<i64>,
    run: &SpotRun,
) -> Result<Vec<SpotConnection>, SyncError> {
    let (plan, before) = (&run.plan, &run.before);
    let email_of: HashMap<i64, &str> = before
        .users
        .iter()
        .map(|u| (u.user_id, u.email.as_str()))
        .collect();
    let mut changed: HashSet<(i64, String)> = HashSet::new();
    for c in &plan.connections {
        let email = match c.user {
            UserRef::Existing(id) => email_of.get(&id).map(|e| e.to_string()),
            UserRef::New(i) => plan.new_users.get(i).map(|u| u.email.clone()),
        };
        if let Some(e) = email {
            changed.insert((c.decision.student_dcid, e));
        }
    }
    let mut pairs: BTreeSet<(i64, String)> = changed.iter().cloned().collect();
    for c in before
        .connections
        .iter()
        .filter(|c| dcids.contains(&c.student_dcid))
    {
        if let Some(e) = email_of.get(&c.user_id) {
            pairs.insert((c.student_dcid, e.to_string()));
        }
    }
    if let SpotScope::Guardian(email) = scope {
        pairs.retain(|p| &p.1 == email || changed.contains(p));
    }
    let pairs: Vec<(i64, String)> = pairs.into_iter().collect();
    let explanations = explain_pairs(pool, &settings.sync, matrix, &pairs).await?;
    Ok(pairs
        .into_iter()
        .zip(explanations)
        .map(|((student_dcid, email), explanation)| SpotConnection {
            changed: changed.contains(&(student_dcid, email.clone())),
            student_dcid,
            email,
            explanation,
        })
        .collect())
}

/// The plugin's three queries narrowed to each student (`students_dcid`),
/// and the student's rows of the (whole) guardian query.
async fn fetch_students(
    client: &PowerSchoolClient,
    dcids: &BTreeSet<i64>,
    guardians: QueryResult<GuardianLink>,
) -> Result<DistrictSnapshot, SyncError> {
    // The guardian query's unreadable records belong to the whole district;
    // the nightly run reports them, a spot sync would only repeat them.
    let mut snapshot = DistrictSnapshot {
        retries: guardians.retries,
        ..DistrictSnapshot::default()
    };
    snapshot.guardians.extend(
        guardians
            .records
            .into_iter()
            .filter(|g| dcids.contains(&g.student_dcid)),
    );
    for dcid in dcids {
        let args = json!({ "students_dcid": dcid.to_string() });
        let (students, independent, contacts) = futures::try_join!(
            client.students_where(args.clone()),
            client.independent_students_where(args.clone()),
            client.contacts_where(args.clone()),
        )?;
        snapshot.retries += students.retries + independent.retries + contacts.retries;
        for p in [students.problems, independent.problems, contacts.problems] {
            snapshot.problems.extend(p);
        }
        // Only this student's rows, whatever the server sent.
        snapshot
            .students
            .extend(students.records.into_iter().filter(|s| s.dcid == *dcid));
        snapshot
            .independent_students
            .extend(independent.records.into_iter().filter(|s| s.dcid == *dcid));
        snapshot.contacts.extend(
            contacts
                .records
                .into_iter()
                .filter(|c| c.student_dcid == *dcid),
        );
    }
    snapshot.sort_and_dedup();
    super::screen::screen(&mut snapshot);
    Ok(snapshot)
}

/// The plan of a spot sync: `plan::plan` against the scope's share of the
/// state, then narrowed so nothing outside the scope moves. Returns the
/// emails of users it did not create (without `create_users`).
pub fn plan_scoped(
    snapshot: &DistrictSnapshot,
    state: &CurrentState,
    dcids: &BTreeSet<i64>,
    settings: &SyncSettings,
    today: NaiveDate,
    create_users: bool,
) -> (Plan, Vec<String>) {
    let mut scoped = scoped_state(state, dcids);
    let mut plan = plan::plan(snapshot, &mut scoped, settings, today);
    let touched = users_touched(snapshot, state, &scoped, &plan);
    keep_user_updates_in_scope(&mut plan, state, dcids, &touched);
    let not_created = if create_users {
        Vec::new()
    } else {
        leave_new_users_uncreated(&mut plan)
    };

    // The counts after narrowing.
    plan.counts.connections = ConnectionCounts::tally(
        &plan.connections,
        plan.counts.connections.unchanged,
        plan.counts.connections.orphaned,
    );
    let updated = plan.user_updates.len();
    plan.counts.users = plan::user_counts(
        plan.new_users.len(),
        updated,
        (touched.len() as u64).saturating_sub(updated as u64),
    );
    plan.counts.problems = plan.problems.len() as u64;
    (plan, not_created)
}

/// The state of the scope's students alone, and every user read (a user
/// can be matched by email from anywhere: `state_of_scope` read every user
/// the students' records can reach).
fn scoped_state(state: &CurrentState, dcids: &BTreeSet<i64>) -> CurrentState {
    CurrentState {
        students: of_scope(&state.students, |dcid| dcids.contains(dcid)),
        contacts: of_scope(&state.contacts, |(dcid, _)| dcids.contains(dcid)),
        guardian_accounts: of_scope(&state.guardian_accounts, |(_, dcid)| dcids.contains(dcid)),
        // A spot sync reads the rows themselves.
        digests: None,
        users: state.users.clone(),
        connections: state
            .connections
            .iter()
            .filter(|c| dcids.contains(&c.student_dcid))
            .cloned()
            .collect(),
        forms: state
            .forms
            .iter()
            .filter(|f| dcids.contains(&f.student_dcid))
            .cloned()
            .collect(),
    }
}

/// The stored rows whose key is in the scope.
fn of_scope<K: Copy + Eq + Hash, V: Clone>(
    rows: &HashMap<K, V>,
    in_scope: impl Fn(&K) -> bool,
) -> HashMap<K, V> {
    rows.iter()
        .filter(|(k, _)| in_scope(k))
        .map(|(k, v)| (*k, v.clone()))
        .collect()
}

/// The users the scope touches: those connected to its students before or
/// after, and those linked to its guardian accounts.
fn users_touched(
    snapshot: &DistrictSnapshot,
    state: &CurrentState,
    scoped: &CurrentState,
    plan: &Plan,
) -> HashSet<i64> {
    let scoped_guardians: HashSet<i64> = snapshot.guardians.iter().map(|g| g.guardian_id).collect();
    let mut touched: HashSet<i64> = scoped.connections.iter().map(|c| c.user_id).collect();
    touched.extend(plan.connections.iter().filter_map(|c| match c.user {
        UserRef::Existing(id) => Some(id),
        UserRef::New(_) => None,
    }));
    touched.extend(
        state
            .users
            .iter()
            .filter(|u| {
                u.powerschool_guardian_id
                    .is_some_and(|g| scoped_guardians.contains(&g))
            })
            .map(|u| u.user_id),
    );
    touched
}

/// Only the touched users are updated, and a user flagged incomplete because
/// of a connection outside the scope keeps the flag.
fn keep_user_updates_in_scope(
    plan: &mut Plan,
    state: &CurrentState,
    dcids: &BTreeSet<i64>,
    touched: &HashSet<i64>,
) {
    let incomplete_elsewhere: HashSet<i64> = state
        .connections
        .iter()
        .filter(|c| {
            !dcids.contains(&c.student_dcid)
                && c.case == Some(ConnectionCase::UnlinkedReturningParent)
        })
        .map(|c| c.user_id)
        .collect();
    let by_id: HashMap<i64, &UserRow> = state.users.iter().map(|u| (u.user_id, u)).collect();
    plan.user_updates.retain_mut(|u| {
        if !touched.contains(&u.id) {
            return false;
        }
        if incomplete_elsewhere.contains(&u.id) {
            u.incomplete = true;
        }
        by_id.get(&u.id).is_none_or(|o| plan::changes_user(u, o))
    });
}

/// Without `create_users`: the plan's new users and their connections are
/// dropped, each reported as a problem; returns their emails.
fn leave_new_users_uncreated(plan: &mut Plan) -> Vec<String> {
    let mut not_created = Vec::new();
    for (i, u) in plan.new_users.iter().enumerate() {
        let students: Vec<String> = plan
            .connections
            .iter()
            .filter(|c| c.user == UserRef::New(i))
            .map(|c| c.decision.student_dcid.to_string())
            .collect();
        let guardian = u
            .powerschool_guardian_id
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-".into());
        not_created.push(u.email.clone());
        plan.problems.push(plan::problem(
            "spot_user_not_created",
            format!("guardian {guardian}"),
            format!(
                "spot sync did not create a user for {} (Parent Portal guardian {guardian}, student {}): \
                 run it again with --create-users, or let the nightly run create it",
                u.email,
                students.join(", ")
            ),
        ));
    }
    plan.new_users.clear();
    plan.connections
        .retain(|c| !matches!(c.user, UserRef::New(_)));
    not_created
}
