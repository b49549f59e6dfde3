//! Spot sync: one student (`--student DCID`) or one guardian's students
//! (`--email EMAIL`) fetched with PowerQuery arguments, planned with the same
//! `plan` as a nightly run but against the state of those students alone,
//! and applied in one transaction as a run with trigger `spot`. Nothing
//! outside the scope changes: no other student leaves the sync set, no other
//! connection is orphaned, no other user's flags move. New users are made
//! only with `create_users`. It waits for the run lock while a nightly run
//! holds it.

use super::explain::{explain_pairs, AccessExplanation};
use super::plan::{self, ConnectionChangeKind, ConnectionCounts, KindCounts, Plan};
use super::report::RunReport;
use super::{apply, run_lock_key, SyncError};
use crate::config::{Settings, SyncSettings};
use crate::powerschool::{DistrictSnapshot, GuardianLink, PowerSchoolClient, QueryResult};
use crate::rules::{self, ConnectionCase, TierMatrix, UserRef};
use crate::store::runs::{self, RunPhase, RunStatus, RunTrigger};
use crate::store::state::{self, CurrentState, UserRow};
use crate::store::write::ProblemRow;
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;

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
    let result = spot_locked(pool, settings, client, matrix, options, &scope).await;
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
) -> Result<SpotOutcome, SyncError> {
    // The built-in guardian query takes no arguments (wire spec §4), so the
    // whole query is read and narrowed here.
    let guardians = client.guardians().await?;
    let dcids: BTreeSet<i64> = match scope {
        SpotScope::Student(d) => [*d].into(),
        SpotScope::Guardian(email) => {
            let mut set: BTreeSet<i64> = guardians
                .records
                .iter()
                .filter(|g| {
                    g.email.as_deref().and_then(rules::normalise_email).as_ref() == Some(email)
                })
                .map(|g| g.student_dcid)
                .collect();
            set.extend(state::students_of_email(pool, email).await?);
            if set.is_empty() {
                return Err(SyncError::Spot(format!(
                    "no student is linked to {email} in PowerSchool or in the database; \
                     check the address, or let the nightly run pick it up"
                )));
            }
            set
        }
    };
    let scope_text = scope.text();
    // Fetched before the run row exists: a mistyped id is an answer to the
    // admin, not a failed run in the district's history.
    let snapshot = fetch_students(client, &dcids, guardians).await?;
    if let SpotScope::Student(dcid) = scope {
        let enrolled = snapshot.students.iter().any(|s| s.dcid == *dcid);
        if !enrolled && !state::student_known(pool, *dcid).await? {
            return Err(SyncError::Spot(format!(
                "PowerSchool has no enrolled student (enroll_status <= 0) with DCID {dcid} and \
                 SchoolEngage has never synced one; check the number (it is students.dcid, not \
                 the student number)"
            )));
        }
    }
    let run_id = runs::start_run(pool, RunTrigger::Spot, options.today).await?;
    runs::set_scope(pool, run_id, &scope_text).await?;
    tracing::info!(run_id, scope = %scope_text, "spot sync {run_id} of {scope_text}: students {dcids:?}");
    let work = async {
        runs::set_phase(pool, run_id, RunPhase::Planning).await?;
        let state = CurrentState::load(pool).await?;
        let (plan, not_created) = plan_scoped(
            &snapshot,
            &state,
            &dcids,
            &settings.sync,
            options.today,
            options.create_users,
        );
        runs::set_phase(pool, run_id, RunPhase::Applying).await?;
        let report = RunReport::from_plan(run_id, &plan);
        let report_json = serde_json::to_value(&report).expect("report serialises");
        apply::apply(pool, run_id, &plan, &report_json, None).await?;
        Ok::<_, SyncError>((plan, report, not_created, state))
    };
    let (plan, report, users_not_created, before) = match work.await {
        Ok(r) => r,
        Err(e) => {
            let _ =
                runs::finish_unsuccessful(pool, run_id, RunStatus::Failed, &e.to_string()).await;
            return Err(e);
        }
    };
    tracing::info!(
        run_id,
        "spot sync {run_id} succeeded: {}",
        super::report::one_line(&plan.counts)
    );

    // The connections of the scope, before and after, each explained.
    let email_of: HashMap<i64, &str> = before
        .users
        .iter()
        .map(|u| (u.id, u.email.as_str()))
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
    let connections = pairs
        .into_iter()
        .zip(explanations)
        .map(|((student_dcid, email), explanation)| SpotConnection {
            changed: changed.contains(&(student_dcid, email.clone())),
            student_dcid,
            email,
            explanation,
        })
        .collect();
    Ok(SpotOutcome {
        run_id,
        scope: scope_text,
        students: dcids.into_iter().collect(),
        report,
        users_not_created,
        connections,
    })
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
    let scoped = CurrentState {
        students: state
            .students
            .iter()
            .filter(|(k, _)| dcids.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        contacts: state
            .contacts
            .iter()
            .filter(|(k, _)| dcids.contains(&k.0))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        guardian_accounts: state
            .guardian_accounts
            .iter()
            .filter(|(k, _)| dcids.contains(&k.1))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
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
    };
    let mut plan = plan::plan(snapshot, &scoped, settings, today);

    // Users: only those the scope touches, and a user flagged incomplete
    // because of a connection outside the scope keeps the flag.
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
            .map(|u| u.id),
    );
    let incomplete_elsewhere: HashSet<i64> = state
        .connections
        .iter()
        .filter(|c| {
            !dcids.contains(&c.student_dcid)
                && c.case_code == Some(ConnectionCase::UnlinkedReturningParent)
        })
        .map(|c| c.user_id)
        .collect();
    let by_id: HashMap<i64, &UserRow> = state.users.iter().map(|u| (u.id, u)).collect();
    plan.user_updates.retain_mut(|u| {
        if !touched.contains(&u.id) {
            return false;
        }
        if incomplete_elsewhere.contains(&u.id) {
            u.incomplete = true;
        }
        by_id.get(&u.id).is_none_or(|o| {
            o.first_name != u.first_name
                || o.last_name != u.last_name
                || o.powerschool_guardian_id != u.powerschool_guardian_id
                || o.incomplete != u.incomplete
        })
    });

    let mut not_created = Vec::new();
    if !create_users && !plan.new_users.is_empty() {
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
            plan.problems.push(ProblemRow {
                kind: "spot_user_not_created".into(),
                query: None,
                record_id: Some(format!("guardian {guardian}")),
                field: None,
                value: None,
                message: format!(
                    "spot sync did not create a user for {} (Parent Portal guardian {guardian}, student {}): \
                     run it again with --create-users, or let the nightly run create it",
                    u.email,
                    students.join(", ")
                ),
            });
        }
        plan.new_users.clear();
        plan.connections
            .retain(|c| !matches!(c.user, UserRef::New(_)));
    }

    // The counts after narrowing.
    let mut cc = ConnectionCounts {
        unchanged: plan.counts.connections.unchanged,
        orphaned: plan.counts.connections.orphaned,
        ..Default::default()
    };
    for c in &plan.connections {
        match c.kind {
            ConnectionChangeKind::Create => cc.created += 1,
            ConnectionChangeKind::Update => cc.updated += 1,
            ConnectionChangeKind::Remove => cc.removed += 1,
        }
        if let (Some(b), Some(a)) = (c.tier_before(), c.tier_after()) {
            if a > b {
                cc.tier_up += 1;
            } else if a < b {
                cc.tier_down += 1;
            }
        }
    }
    plan.counts.connections = cc;
    plan.counts.users = KindCounts {
        created: plan.new_users.len() as u64,
        updated: plan.user_updates.len() as u64,
        removed: 0,
        unchanged: (touched.len() as u64).saturating_sub(plan.user_updates.len() as u64),
    };
    plan.counts.problems = plan.problems.len() as u64;
    (plan, not_created)
}
