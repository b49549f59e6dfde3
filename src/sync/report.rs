//! The run report admins read: counts per kind and every problem, as text or
//! JSON, and the counts in one log line. The plan preview (`student-sync
//! plan`) is in `preview` and shares the counts table.

use super::plan::{KindCounts, Plan, PlanCounts};
use crate::store::write::ProblemRow;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

pub use super::preview::{Change, PlanPreview};

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

/// What was fetched and the per-kind table, shared by the run report (past
/// tense) and the plan preview (what would happen).
pub(super) fn counts_table(out: &mut String, c: &PlanCounts, headings: [&str; 4]) {
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
