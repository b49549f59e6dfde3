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

/// How many problems of one kind a report lists; the rest are counted (every
/// one of them is kept: `student-sync problems RUN` lists them).
pub const PROBLEMS_PER_KIND: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub counts: PlanCounts,
    /// How many problems of each kind the run found.
    pub problem_counts: BTreeMap<String, u64>,
    /// The first `PROBLEMS_PER_KIND` problems of each kind, kind by kind.
    pub problems: Vec<ProblemRow>,
    #[serde(with = "seconds")]
    pub duration: Duration,
}

/// The problems of each kind counted, and a sample of at most
/// `PROBLEMS_PER_KIND` of each kind (in the plan's order within a kind).
pub fn problem_sample(problems: &[ProblemRow]) -> (BTreeMap<String, u64>, Vec<ProblemRow>) {
    let mut by_kind: BTreeMap<&str, Vec<&ProblemRow>> = BTreeMap::new();
    for p in problems {
        by_kind.entry(&p.kind).or_default().push(p);
    }
    let counts = by_kind
        .iter()
        .map(|(k, list)| (k.to_string(), list.len() as u64))
        .collect();
    let sample = by_kind
        .values()
        .flat_map(|list| {
            list.iter()
                .take(PROBLEMS_PER_KIND)
                .map(|p| (*p).clone().worded())
        })
        .collect();
    (counts, sample)
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
        let (problem_counts, problems) = problem_sample(&plan.problems);
        RunReport {
            run_id,
            counts: plan.counts.clone(),
            problem_counts,
            problems,
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
        problems_text(
            &mut out,
            &self.problem_counts,
            &self.problems,
            &format!("see `student-sync problems {}`", self.run_id),
        );
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

/// The problems, kind by kind: the count of each kind and its sample.
/// `more` says where the rest are.
pub(super) fn problems_text(
    out: &mut String,
    counts: &BTreeMap<String, u64>,
    sample: &[ProblemRow],
    more: &str,
) {
    let total: u64 = counts.values().sum();
    if total == 0 {
        let _ = writeln!(out, "No problems.");
        return;
    }
    let _ = writeln!(out, "Problems ({total}):");
    for (kind, count) in counts {
        let _ = writeln!(out, "  {kind} ({count}):");
        let shown = sample.iter().filter(|p| &p.kind == kind);
        let mut listed = 0;
        for p in shown {
            let _ = writeln!(out, "    - {}", p.message);
            listed += 1;
        }
        if *count > listed {
            let _ = writeln!(out, "    … and {} more ({more})", count - listed);
        }
    }
}

/// Every problem of one run (`student-sync problems RUN`), as read back from
/// `run_problems`: the report's listing without the cut at
/// `PROBLEMS_PER_KIND`.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemList {
    pub run_id: i64,
    /// The one kind asked for, if any.
    pub kind: Option<String>,
    /// In the order the run found them.
    pub problems: Vec<ProblemRow>,
}

impl ProblemList {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let of_kind = match &self.kind {
            Some(kind) => format!(" of kind {kind}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "Run {}: every problem it recorded{of_kind}",
            self.run_id
        );
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for p in &self.problems {
            *counts.entry(p.kind.clone()).or_default() += 1;
        }
        problems_text(&mut out, &counts, &self.problems, "");
        out
    }
}
