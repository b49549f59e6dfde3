//! The run report admins read: counts per kind and every problem, as text or
//! JSON; and the plan preview (`student-sync plan`): every change with its reason.

use super::plan::{KindCounts, Plan, PlanCounts};
use super::safety::SafetyCheck;
use crate::store::state::CurrentState;
use crate::store::write::ProblemRow;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub counts: PlanCounts,
    pub problems: Vec<ProblemRow>,
    #[serde(with = "seconds")]
    pub duration: Duration,
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl RunReport {
    pub fn from_plan(run_id: i64, plan: &Plan) -> RunReport {
        RunReport {
            run_id,
            counts: plan.counts.clone(),
            problems: plan.problems.clone(),
            duration: Duration::ZERO,
        }
    }

    pub fn to_text(&self) -> String {
        let c = &self.counts;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Run {} finished in {:.1} s",
            self.run_id,
            self.duration.as_secs_f64()
        );
        counts_table(&mut out, c, ["created", "updated", "removed", "unchanged"]);
        let cc = &c.connections;
        let _ = writeln!(
            out,
            "Access: {} tier up, {} tier down, {} orphaned from PowerSchool",
            cc.tier_up, cc.tier_down, cc.orphaned
        );
        if c.scheduling_year_excluded > 0 {
            let _ = writeln!(
                out,
                "{} scheduling-year students left out (sync.include_scheduling_year is off)",
                c.scheduling_year_excluded
            );
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "No problems.");
        } else {
            let mut by_kind: BTreeMap<&str, Vec<&ProblemRow>> = BTreeMap::new();
            for p in &self.problems {
                by_kind.entry(&p.kind).or_default().push(p);
            }
            let _ = writeln!(out, "Problems ({}):", self.problems.len());
            for (kind, list) in by_kind {
                let _ = writeln!(out, "  {kind} ({}):", list.len());
                for p in list.iter().take(20) {
                    let _ = writeln!(out, "    - {}", p.message);
                }
                if list.len() > 20 {
                    let _ = writeln!(
                        out,
                        "    … and {} more (see run_problems for run {})",
                        list.len() - 20,
                        self.run_id
                    );
                }
            }
        }
        out
    }
}

fn kind_line(name: &str, k: &KindCounts) -> String {
    format!(
        "{:<20} {:>9} {:>9} {:>9} {:>9}",
        name, k.created, k.updated, k.removed, k.unchanged
    )
}

/// The counts in one log line.
pub fn one_line(c: &PlanCounts) -> String {
    format!(
        "students +{} ~{} ={}; contacts +{} ~{} -{}; guardian accounts +{} ~{} -{}; users +{} ~{}; connections +{} ~{} -{} ={}; {} problems",
        c.students.created,
        c.students.updated,
        c.students.unchanged,
        c.contacts.created,
        c.contacts.updated,
        c.contacts.removed,
        c.guardian_accounts.created,
        c.guardian_accounts.updated,
        c.guardian_accounts.removed,
        c.users.created,
        c.users.updated,
        c.connections.created,
        c.connections.updated,
        c.connections.removed,
        c.connections.unchanged,
        c.problems
    )
}

/// `student-sync plan`: what a run would do now, and why, without doing it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanPreview {
    pub counts: PlanCounts,
    pub safety: SafetyCheck,
    /// Every change, each with its reason.
    pub changes: Vec<Change>,
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
    match old {
        Some(o) => {
            let fields = changed_fields(o, new);
            if fields.is_empty() {
                "changed in PowerSchool".to_string()
            } else {
                format!("changed in PowerSchool: {}", fields.join(", "))
            }
        }
        None => "changed in PowerSchool".to_string(),
    }
}

impl PlanPreview {
    /// `state` (the state the plan was made from) names the changed fields;
    /// without it (a stored plan) the reasons are shorter.
    pub fn new(plan: &Plan, state: Option<&CurrentState>, safety: SafetyCheck) -> PlanPreview {
        let mut changes = Vec::new();
        for s in &plan.students.create {
            changes.push(Change {
                kind: "student",
                action: "create",
                record: format!("student {}", s.dcid),
                reason: "new in PowerSchool's sync set".into(),
                verdicts: Vec::new(),
            });
        }
        for s in &plan.students.update {
            let old = state.and_then(|st| st.students.get(&s.dcid));
            let leaving = plan.leaving.binary_search(&s.dcid).is_ok();
            changes.push(Change {
                kind: "student",
                action: if leaving { "leave" } else { "update" },
                record: format!("student {}", s.dcid),
                reason: if leaving {
                    "no longer returned as an enrolled student (withdrawn, graduated, or missing from PowerSchool's answer): leaves the sync set".into()
                } else {
                    update_reason(old, s)
                },
                verdicts: Vec::new(),
            });
        }
        for c in &plan.contacts.create {
            changes.push(Change {
                kind: "contact",
                action: "create",
                record: format!("student {} contact {}", c.student_dcid, c.person_id),
                reason: "new contact in PowerSchool".into(),
                verdicts: Vec::new(),
            });
        }
        for c in &plan.contacts.update {
            let old = state.and_then(|st| st.contacts.get(&(c.student_dcid, c.person_id)));
            changes.push(Change {
                kind: "contact",
                action: "update",
                record: format!("student {} contact {}", c.student_dcid, c.person_id),
                reason: update_reason(old, c),
                verdicts: Vec::new(),
            });
        }
        for (dcid, person) in &plan.contacts.remove {
            changes.push(Change {
                kind: "contact",
                action: "remove",
                record: format!("student {dcid} contact {person}"),
                reason: "PowerSchool no longer has this contact for a student in the sync set (or the student left it)".into(),
                verdicts: Vec::new(),
            });
        }
        for g in &plan.guardian_accounts.create {
            changes.push(Change {
                kind: "guardian_account",
                action: "create",
                record: format!("guardian {} ↔ student {}", g.guardian_id, g.student_dcid),
                reason: "new Parent Portal link in PowerSchool".into(),
                verdicts: Vec::new(),
            });
        }
        for g in &plan.guardian_accounts.update {
            let old =
                state.and_then(|st| st.guardian_accounts.get(&(g.guardian_id, g.student_dcid)));
            changes.push(Change {
                kind: "guardian_account",
                action: "update",
                record: format!("guardian {} ↔ student {}", g.guardian_id, g.student_dcid),
                reason: update_reason(old, g),
                verdicts: Vec::new(),
            });
        }
        for (gid, dcid) in &plan.guardian_accounts.remove {
            changes.push(Change {
                kind: "guardian_account",
                action: "remove",
                record: format!("guardian {gid} ↔ student {dcid}"),
                reason: "PowerSchool no longer links this account to the student (or the student left the sync set)".into(),
                verdicts: Vec::new(),
            });
        }
        for u in &plan.new_users {
            changes.push(Change {
                kind: "user",
                action: "create",
                record: format!("user {}", u.email),
                reason: format!(
                    "a valid Parent Portal link (guardian {}) has an email no SchoolEngage user has",
                    u.powerschool_guardian_id
                        .map(|g| g.to_string())
                        .unwrap_or_else(|| "-".into())
                ),
                verdicts: Vec::new(),
            });
        }
        for u in &plan.user_updates {
            let old = state.and_then(|st| st.users.iter().find(|x| x.id == u.id));
            let reason = match old {
                Some(o) => {
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
                            u.powerschool_guardian_id
                                .map(|g| g.to_string())
                                .unwrap_or_else(|| "-".into())
                        ));
                    }
                    if o.incomplete != u.incomplete {
                        parts.push(if u.incomplete {
                            "flagged incomplete (a form connection without a PowerSchool link)"
                                .to_string()
                        } else {
                            "incomplete flag cleared (the PowerSchool link exists now)".to_string()
                        });
                    }
                    parts.join("; ")
                }
                None => "synced fields change".to_string(),
            };
            changes.push(Change {
                kind: "user",
                action: "update",
                record: match old {
                    Some(o) => format!("user {} ({})", u.id, o.email),
                    None => format!("user {}", u.id),
                },
                reason,
                verdicts: Vec::new(),
            });
        }
        for c in &plan.connections {
            let d = &c.decision;
            let user = match d.user {
                crate::rules::UserRef::Existing(id) => {
                    match state.and_then(|st| st.users.iter().find(|u| u.id == id)) {
                        Some(u) => format!("user {id} ({})", u.email),
                        None => format!("user {id}"),
                    }
                }
                crate::rules::UserRef::New(i) => plan
                    .new_users
                    .get(i)
                    .map(|u| format!("new user {}", u.email))
                    .unwrap_or_else(|| "a new user".into()),
            };
            let before = c
                .before
                .as_ref()
                .map(|b| b.tier.as_str())
                .unwrap_or("no connection");
            let after = c.tier_after().map(|t| t.as_str()).unwrap_or("removed");
            let limits = if d.limits.is_empty() {
                String::new()
            } else {
                format!(
                    ", limited by {}",
                    d.limits
                        .iter()
                        .map(|l| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let why: Vec<&str> = d
                .verdicts
                .iter()
                .filter(|v| !v.passed || v.rule == "case" || v.rule == "removal")
                .map(|v| v.detail.as_str())
                .collect();
            changes.push(Change {
                kind: "connection",
                action: match c.kind {
                    super::plan::ConnectionChangeKind::Create => "create",
                    super::plan::ConnectionChangeKind::Update => "update",
                    super::plan::ConnectionChangeKind::Remove => "remove",
                },
                record: format!("student {} ↔ {user}", d.student_dcid),
                reason: format!(
                    "{before} → {after} (case {} {}{limits}): {}",
                    d.case.letter(),
                    d.case.as_str(),
                    why.join(" ")
                ),
                verdicts: d.verdicts.clone(),
            });
        }
        PlanPreview {
            counts: plan.counts.clone(),
            safety,
            changes,
            problems: plan.problems.clone(),
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
            let _ = writeln!(out, "Problems ({}):", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(out, "  {}: {}", p.kind, p.message);
            }
        } else {
            let _ = writeln!(
                out,
                "{} changes, {} problems (--details lists each with its reason).",
                self.changes.len(),
                self.problems.len()
            );
        }
        out
    }
}

/// What was fetched and the per-kind table, shared by the run report (past
/// tense) and the plan preview (what would happen).
fn counts_table(out: &mut String, c: &PlanCounts, headings: [&str; 4]) {
    let _ = writeln!(
        out,
        "Fetched from PowerSchool: {} guardian links, {} students, {} independent students, {} contacts",
        c.fetched.guardians, c.fetched.students, c.fetched.independent_students, c.fetched.contacts
    );
    let [a, b, d, e] = headings;
    let _ = writeln!(out, "{:<20} {:>9} {:>9} {:>9} {:>9}", "", a, b, d, e);
    for (name, k) in [
        ("students", &c.students),
        ("contacts", &c.contacts),
        ("guardian accounts", &c.guardian_accounts),
        ("users", &c.users),
    ] {
        let _ = writeln!(out, "{}", kind_line(name, k));
    }
    let cc = &c.connections;
    let _ = writeln!(
        out,
        "{:<20} {:>9} {:>9} {:>9} {:>9}",
        "connections", cc.created, cc.updated, cc.removed, cc.unchanged
    );
}
