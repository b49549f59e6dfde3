//! The plan preview (`student-sync plan`, `approve --dry-run`): what a run
//! would do now, and why, without doing it: the counts, the safety
//! measures, and every change with its reason.

use super::plan::{ConnectionChange, Plan, PlanCounts, RowChanges};
use super::report::{counts_table, problem_sample, problems_text};
use super::safety::SafetyCheck;
use super::{prepare, screen, RunProgress, SyncError};
use crate::config::Settings;
use crate::powerschool::PowerSchoolClient;
use crate::powerschool::{GuardianLink, StudentContact};
use crate::rules::{Limit, Rule, UserRef};
use crate::store::runs::RunPhase;
use crate::store::state::{CurrentState, StudentRow};
use crate::store::write::{NewUserRow, ProblemRow, UserUpdate};
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// `student-sync plan`: fetch and plan exactly as a run would, and write
/// nothing at all (no run row either).
pub async fn preview(
    pool: &PgPool,
    settings: &Settings,
    client: &PowerSchoolClient,
    today: NaiveDate,
) -> Result<PlanPreview, SyncError> {
    preview_observed(pool, settings, client, today, None).await
}

/// `preview`, telling `progress` its phases and the records fetched.
pub async fn preview_observed(
    pool: &PgPool,
    settings: &Settings,
    client: &PowerSchoolClient,
    today: NaiveDate,
    progress: Option<&Arc<RunProgress>>,
) -> Result<PlanPreview, SyncError> {
    let mut snapshot = match progress {
        Some(p) => {
            p.set_phase(RunPhase::Fetching);
            client.observed_by(p.clone()).fetch_district().await?
        }
        None => client.fetch_district().await?,
    };
    screen::screen(&mut snapshot);
    if let Some(p) = progress {
        p.set_phase(RunPhase::Planning);
    }
    let prepared = prepare(pool, settings, &snapshot, today).await?;
    if let Some(p) = progress {
        p.set_phase(RunPhase::Done);
    }
    Ok(PlanPreview::new(
        &prepared.plan,
        Some(&prepared.state),
        prepared.safety,
    ))
}

/// `student-sync plan`: what a run would do now, and why, without doing it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanPreview {
    pub counts: PlanCounts,
    pub safety: SafetyCheck,
    /// Every change, each with its reason.
    pub changes: Vec<Change>,
    /// How many problems of each kind the plan found.
    pub problem_counts: BTreeMap<String, u64>,
    /// At most `report::PROBLEMS_PER_KIND` problems of each kind.
    pub problems: Vec<ProblemRow>,
}

/// One row the plan would write.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// student | contact | guardian_account | user | connection
    pub kind: &'static str,
    /// create | update | leave | remove
    pub action: &'static str,
    /// The record, e.g. `student 5001` or `student 5001 ↔ user 7 (a@b.org)`.
    pub record: String,
    pub reason: String,
    /// For connections: the rules' verdicts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<crate::rules::RuleVerdict>,
}

impl Change {
    /// A change of a row without verdicts (all but connections).
    fn row(kind: &'static str, action: &'static str, record: String, reason: String) -> Change {
        Change {
            kind,
            action,
            record,
            reason,
            verdicts: Vec::new(),
        }
    }
}

impl PlanPreview {
    /// `state` (the state the plan was made from) names the changed fields;
    /// without it (a stored plan) the reasons are shorter. The changes come
    /// kind by kind (students, contacts, guardian accounts, users,
    /// connections), creates before updates before removals.
    pub fn new(plan: &Plan, state: Option<&CurrentState>, safety: SafetyCheck) -> PlanPreview {
        let mut changes = Vec::new();
        let leaving = |s: &StudentRow| plan.leaving.binary_search(&s.student.dcid).is_ok();
        mirrored_changes(&mut changes, &plan.students, state, leaving);
        mirrored_changes(&mut changes, &plan.contacts, state, |_| false);
        mirrored_changes(&mut changes, &plan.guardian_accounts, state, |_| false);
        changes.extend(plan.new_users.iter().map(new_user_change));
        changes.extend(
            plan.user_updates
                .iter()
                .map(|u| user_update_change(u, state)),
        );
        changes.extend(
            plan.connections
                .iter()
                .map(|c| connection_change(c, plan, state)),
        );
        let (problem_counts, problems) = problem_sample(&plan.problems);
        PlanPreview {
            counts: plan.counts.clone(),
            safety,
            changes,
            problem_counts,
            problems,
        }
    }

    /// The summary, and with `details` every change with its reason and every problem.
    pub fn to_text(&self, details: bool) -> String {
        let c = &self.counts;
        let mut out = String::new();
        let _ = writeln!(out, "Plan (a preview: nothing was written)");
        counts_table(&mut out, c, ["create", "update", "remove", "unchanged"]);
        let cc = &c.connections;
        let leaving = self
            .changes
            .iter()
            .filter(|ch| ch.kind == "student" && ch.action == "leave")
            .count();
        let _ = writeln!(out, "Students leaving the sync set: {leaving}");
        let _ = writeln!(
            out,
            "Connections: {} tier up, {} tier down, {} created, {} orphaned from PowerSchool",
            cc.tier_up, cc.tier_down, cc.created, cc.orphaned
        );
        if !self.safety.measures.is_empty() {
            if self.safety.enabled {
                let _ = writeln!(out, "Safety thresholds:");
            } else {
                let _ = writeln!(
                    out,
                    "Safety thresholds (safety.enabled is off: none is enforced):"
                );
            }
            for m in &self.safety.measures {
                let _ = writeln!(out, "  {} {m}", if m.crossed { "HOLD" } else { "ok  " });
            }
            if self.safety.holds() {
                let _ = writeln!(
                    out,
                    "A run now would be HELD for approval and apply nothing."
                );
            }
        }
        if details {
            let _ = writeln!(out, "Changes ({}):", self.changes.len());
            for ch in &self.changes {
                let _ = writeln!(
                    out,
                    "  {} {} {}: {}",
                    ch.action, ch.kind, ch.record, ch.reason
                );
            }
            problems_text(
                &mut out,
                &self.problem_counts,
                &self.problems,
                "a run keeps every one: `student-sync problems RUN`",
            );
        } else {
            let _ = writeln!(
                out,
                "{} changes, {} problems (--details lists each with its reason).",
                self.changes.len(),
                self.counts.problems
            );
        }
        out
    }
}

/// How the preview names and explains one kind of row mirrored from PowerSchool.
trait MirroredKind: Serialize {
    type Key;
    /// The `kind` of its changes.
    const KIND: &'static str;
    /// Why a row is created.
    const CREATED: &'static str;
    /// Why a row is removed (students are never removed: they leave).
    const REMOVED: &'static str;
    fn key(&self) -> Self::Key;
    fn record(key: &Self::Key) -> String;
    fn stored<'s>(state: &'s CurrentState, key: &Self::Key) -> Option<&'s Self>;
}

impl MirroredKind for StudentRow {
    type Key = i64;
    const KIND: &'static str = "student";
    const CREATED: &'static str = "new in PowerSchool's sync set";
    const REMOVED: &'static str = "no longer in PowerSchool";
    fn key(&self) -> i64 {
        self.student.dcid
    }
    fn record(dcid: &i64) -> String {
        format!("student {dcid}")
    }
    fn stored<'s>(state: &'s CurrentState, dcid: &i64) -> Option<&'s Self> {
        state.students.get(dcid)
    }
}

impl MirroredKind for StudentContact {
    type Key = (i64, i64);
    const KIND: &'static str = "contact";
    const CREATED: &'static str = "new contact in PowerSchool";
    const REMOVED: &'static str = "PowerSchool no longer has this contact for a student in the sync set (or the student left it)";
    fn key(&self) -> (i64, i64) {
        (self.student_dcid, self.person_id)
    }
    fn record((dcid, person): &(i64, i64)) -> String {
        format!("student {dcid} contact {person}")
    }
    fn stored<'s>(state: &'s CurrentState, key: &(i64, i64)) -> Option<&'s Self> {
        state.contacts.get(key)
    }
}

impl MirroredKind for GuardianLink {
    type Key = (i64, i64);
    const KIND: &'static str = "guardian_account";
    const CREATED: &'static str = "new Parent Portal link in PowerSchool";
    const REMOVED: &'static str = "PowerSchool no longer links this account to the student (or the student left the sync set)";
    fn key(&self) -> (i64, i64) {
        (self.guardian_id, self.student_dcid)
    }
    fn record((gid, dcid): &(i64, i64)) -> String {
        format!("guardian {gid} ↔ student {dcid}")
    }
    fn stored<'s>(state: &'s CurrentState, key: &(i64, i64)) -> Option<&'s Self> {
        state.guardian_accounts.get(key)
    }
}

/// Why a student leaves the sync set.
const LEAVES: &str = "no longer returned as an enrolled student (withdrawn, graduated, or missing from PowerSchool's answer): leaves the sync set";

/// The creates, updates (or, for students, departures from the sync set)
/// and removals of one mirrored kind.
fn mirrored_changes<T: MirroredKind>(
    out: &mut Vec<Change>,
    changes: &RowChanges<T, T::Key>,
    state: Option<&CurrentState>,
    leaves: impl Fn(&T) -> bool,
) {
    for row in &changes.create {
        let record = T::record(&row.key());
        out.push(Change::row(T::KIND, "create", record, T::CREATED.into()));
    }
    for row in &changes.update {
        let key = row.key();
        let change = if leaves(row) {
            Change::row(T::KIND, "leave", T::record(&key), LEAVES.into())
        } else {
            let old = state.and_then(|st| T::stored(st, &key));
            Change::row(T::KIND, "update", T::record(&key), update_reason(old, row))
        };
        out.push(change);
    }
    for key in &changes.remove {
        out.push(Change::row(
            T::KIND,
            "remove",
            T::record(key),
            T::REMOVED.into(),
        ));
    }
}

fn changed_fields<T: Serialize>(old: &T, new: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(o)), Ok(serde_json::Value::Object(n))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    n.iter()
        .filter(|(k, v)| o.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k} {} → {}",
                o.get(k).map(|x| x.to_string()).unwrap_or_default(),
                v
            )
        })
        .collect()
}

fn update_reason<T: Serialize>(old: Option<&T>, new: &T) -> String {
    let fields = old.map(|o| changed_fields(o, new)).unwrap_or_default();
    if fields.is_empty() {
        "changed in PowerSchool".to_string()
    } else {
        format!("changed in PowerSchool: {}", fields.join(", "))
    }
}

fn guardian_text(guardian_id: Option<i64>) -> String {
    guardian_id
        .map(|g| g.to_string())
        .unwrap_or_else(|| "-".into())
}

fn new_user_change(u: &NewUserRow) -> Change {
    Change::row(
        "user",
        "create",
        format!("user {}", u.email),
        format!(
            "a valid Parent Portal link (guardian {}) has an email no SchoolEngage user has",
            guardian_text(u.powerschool_guardian_id)
        ),
    )
}

fn user_update_change(u: &UserUpdate, state: Option<&CurrentState>) -> Change {
    let old = state.and_then(|st| st.users.iter().find(|x| x.user_id == u.id));
    let (record, reason) = match old {
        Some(o) => (
            format!("user {} ({})", u.id, o.email),
            user_update_reason(o, u),
        ),
        None => (format!("user {}", u.id), "synced fields change".to_string()),
    };
    Change::row("user", "update", record, reason)
}

/// Each synced field of the user that changes, in words.
fn user_update_reason(o: &crate::store::state::UserRow, u: &UserUpdate) -> String {
    let mut parts = Vec::new();
    if o.first_name != u.first_name || o.last_name != u.last_name {
        parts.push(format!(
            "name {} {} → {} {} (from the linked Parent Portal account)",
            o.first_name.as_deref().unwrap_or("-"),
            o.last_name.as_deref().unwrap_or("-"),
            u.first_name.as_deref().unwrap_or("-"),
            u.last_name.as_deref().unwrap_or("-")
        ));
    }
    if o.powerschool_guardian_id != u.powerschool_guardian_id {
        parts.push(format!(
            "linked to PowerSchool guardian {}",
            guardian_text(u.powerschool_guardian_id)
        ));
    }
    if o.incomplete != u.incomplete {
        parts.push(if u.incomplete {
            "flagged incomplete (a form connection without a PowerSchool link)".to_string()
        } else {
            "incomplete flag cleared (the PowerSchool link exists now)".to_string()
        });
    }
    parts.join("; ")
}

/// A connection change: the tier before and after, the case and limits,
/// and the verdicts that failed or decided the case or the removal.
fn connection_change(c: &ConnectionChange, plan: &Plan, state: Option<&CurrentState>) -> Change {
    let d = &c.decision;
    let before = c
        .before
        .as_ref()
        .map(|b| b.tier.as_str())
        .unwrap_or("no connection");
    let after = c.tier_after().map(|t| t.as_str()).unwrap_or("removed");
    let verdicts = d.verdicts_read();
    let why: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.passed || v.rule == Rule::Case || v.rule == Rule::Removal)
        .map(|v| v.detail())
        .collect();
    Change {
        kind: "connection",
        action: c.kind.as_str(),
        record: format!(
            "student {} ↔ {}",
            d.student_dcid,
            user_label(d.user, plan, state)
        ),
        reason: format!(
            "{before} → {after} (case {} {}{}): {}",
            d.case.letter(),
            d.case.as_str(),
            limits_text(&d.limits),
            why.join(" ")
        ),
        verdicts: verdicts.into_owned(),
    }
}

/// The user of a connection, with the email where it is known.
fn user_label(user: UserRef, plan: &Plan, state: Option<&CurrentState>) -> String {
    match user {
        UserRef::Existing(id) => {
            match state.and_then(|st| st.users.iter().find(|u| u.user_id == id)) {
                Some(u) => format!("user {id} ({})", u.email),
                None => format!("user {id}"),
            }
        }
        UserRef::New(i) => plan
            .new_users
            .get(i)
            .map(|u| format!("new user {}", u.email))
            .unwrap_or_else(|| "a new user".into()),
    }
}

/// `, limited by R4, R5`, or nothing without limits.
fn limits_text(limits: &[Limit]) -> String {
    if limits.is_empty() {
        return String::new();
    }
    let codes: Vec<&str> = limits.iter().map(|l| l.as_str()).collect();
    format!(", limited by {}", codes.join(", "))
}
