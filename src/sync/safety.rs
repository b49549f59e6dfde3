//! Safety thresholds: before a run applies anything, its plan is measured
//! against the limits of `[safety]`, one for every kind of loss: students
//! leaving the sync set, connections losing access, users created, the
//! guardian query shrinking, contacts and guardian accounts removed,
//! connections orphaned from PowerSchool, and per school, its students or
//! contacts shrinking against the last successful run. A plan that crosses
//! one is held for approval instead of applied; `plan` shows the same
//! measures without writing anything.

use super::plan::{ConnectionChangeKind, Plan, SchoolCounts};
use crate::config::{SafetySettings, Threshold};
use crate::store::runs::LastFullRun;
use crate::store::state::CurrentState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One measured quantity against its limit.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// The setting's key, e.g. `safety.students_leaving`.
    pub key: &'static str,
    /// What is counted, in words, e.g. "students in the sync set would leave it".
    pub what: String,
    pub observed: u64,
    /// What the percentage is taken of; `None` when there is nothing to
    /// compare with (no earlier run), and then the limit is not judged.
    pub base: Option<u64>,
    pub limit: ThresholdView,
    /// Above the limit (and safety is enabled).
    pub crossed: bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ThresholdView {
    pub count: u64,
    pub percent: f64,
}

impl From<Threshold> for ThresholdView {
    fn from(t: Threshold) -> Self {
        ThresholdView {
            count: t.count,
            percent: t.percent,
        }
    }
}

impl Measure {
    /// The observed share of the base, in percent.
    pub fn percent(&self) -> Option<f64> {
        match self.base {
            Some(0) if self.observed > 0 => Some(f64::INFINITY),
            Some(0) | None => None,
            Some(b) => Some(self.observed as f64 * 100.0 / b as f64),
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.key, self.observed, self.what)?;
        match (self.base, self.percent()) {
            (Some(b), Some(p)) if p.is_finite() => write!(f, " ({p:.1}% of {b})")?,
            (Some(b), Some(_)) => write!(f, " (there were {b})")?,
            (Some(b), None) => write!(f, " (0% of {b})")?,
            (None, _) => write!(f, " (no earlier run to compare with: not judged)")?,
        }
        write!(f, "; limit {} or {}%", self.limit.count, self.limit.percent)?;
        if self.crossed {
            f.write_str(" — CROSSED")?;
        }
        Ok(())
    }
}

/// Every measure of one plan.
#[derive(Debug, Clone, Serialize)]
pub struct SafetyCheck {
    pub enabled: bool,
    pub measures: Vec<Measure>,
}

impl SafetyCheck {
    pub fn crossed(&self) -> impl Iterator<Item = &Measure> {
        self.measures.iter().filter(|m| m.crossed)
    }

    pub fn holds(&self) -> bool {
        self.crossed().next().is_some()
    }

    /// The crossed thresholds in one line, for the log, the run row and `/healthz`.
    pub fn reason(&self) -> String {
        self.crossed()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn judge(
    settings: &SafetySettings,
    key: &'static str,
    what: impl Into<String>,
    observed: u64,
    base: Option<u64>,
    limit: Threshold,
) -> Measure {
    let mut m = Measure {
        key,
        what: what.into(),
        observed,
        base,
        limit: limit.into(),
        crossed: false,
    };
    if settings.enabled && base.is_some() {
        let by_count = observed > limit.count;
        let by_share = observed >= settings.percent_applies_from
            && m.percent().is_some_and(|p| p > limit.percent);
        m.crossed = by_count || by_share;
    }
    m
}

/// Measures `plan`, made from `state`, against the limits. `last` is the
/// newest successful full run (none before the first sync) and
/// `last_schools` the per-school counts it kept (empty when none).
pub fn check(
    settings: &SafetySettings,
    plan: &Plan,
    state: &CurrentState,
    last: Option<&LastFullRun>,
    last_schools: &BTreeMap<i64, SchoolCounts>,
) -> SafetyCheck {
    let in_set = state.students_in_sync_set();
    let connections_now = state.connections.len() as u64;
    let losing = plan
        .connections
        .iter()
        .filter(|c| match c.kind {
            ConnectionChangeKind::Remove => true,
            ConnectionChangeKind::Update => match (c.tier_before(), c.tier_after()) {
                (Some(b), Some(a)) => a < b,
                _ => false,
            },
            ConnectionChangeKind::Create => false,
        })
        .count() as u64;
    let fetched_guardians = plan.counts.fetched.guardians;
    let last_guardians = last.and_then(|l| l.guardians).map(|g| g.max(0) as u64);
    let mut measures = vec![
        judge(
            settings,
            "safety.students_leaving",
            "students in the sync set would leave it",
            plan.leaving.len() as u64,
            Some(in_set),
            settings.students_leaving,
        ),
        judge(
            settings,
            "safety.connections_losing_access",
            "connections would lose access (tier down or removed)",
            losing,
            Some(connections_now),
            settings.connections_losing_access,
        ),
        judge(
            settings,
            "safety.users_created",
            "users would be created",
            plan.new_users.len() as u64,
            // The first run creates everyone: nothing to compare with.
            last.map(|_| state.users.len() as u64),
            settings.users_created,
        ),
        judge(
            settings,
            "safety.guardian_query_shrink",
            "fewer guardian query rows than at the last successful run",
            last_guardians
                .map(|g| g.saturating_sub(fetched_guardians))
                .unwrap_or(0),
            last_guardians,
            settings.guardian_query_shrink,
        ),
        judge(
            settings,
            "safety.contacts_removed",
            "contacts would be removed",
            plan.contacts.remove.len() as u64,
            Some(state.contact_count()),
            settings.contacts_removed,
        ),
        judge(
            settings,
            "safety.guardian_accounts_removed",
            "guardian accounts would be removed",
            plan.guardian_accounts.remove.len() as u64,
            Some(state.guardian_account_count()),
            settings.guardian_accounts_removed,
        ),
        judge(
            settings,
            "safety.connections_orphaned",
            "connections would be orphaned from PowerSchool (their link vanished)",
            plan.counts.connections.orphaned,
            Some(connections_now),
            settings.connections_orphaned,
        ),
    ];
    measures.extend(school_measures(
        settings,
        &plan.counts.per_school,
        last_schools,
    ));
    SafetyCheck {
        enabled: settings.enabled,
        measures,
    }
}

/// Reads one of a school's counts.
type SchoolCount = fn(&SchoolCounts) -> u64;

/// Per school, against the last successful run: one measure for each school
/// whose students (or contacts) shrank; when none did, one measure of each
/// kind saying so, so `plan` always shows both limits.
fn school_measures(
    settings: &SafetySettings,
    now: &BTreeMap<i64, SchoolCounts>,
    last: &BTreeMap<i64, SchoolCounts>,
) -> Vec<Measure> {
    let kinds: [(&'static str, &str, Threshold, SchoolCount); 2] = [
        (
            "safety.school_students_shrink",
            "students",
            settings.school_students_shrink,
            |c| c.students,
        ),
        (
            "safety.school_contacts_shrink",
            "contacts",
            settings.school_contacts_shrink,
            |c| c.contacts,
        ),
    ];
    let mut out = Vec::new();
    for (key, noun, limit, count) in kinds {
        let before = out.len();
        for (school, then) in last {
            let was = count(then);
            let is = now.get(school).map(count).unwrap_or(0);
            if is < was {
                let what = format!(
                    "fewer {noun} at school {school} than at the last successful run (now {is})"
                );
                out.push(judge(settings, key, what, was - is, Some(was), limit));
            }
        }
        if out.len() == before {
            let what = format!("fewer {noun} at any one school than at the last successful run");
            let base = (!last.is_empty()).then(|| last.values().map(count).sum());
            out.push(judge(settings, key, what, 0, base, limit));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_or_share_crosses_and_small_numbers_do_not() {
        let s = SafetySettings::default();
        let t = s.students_leaving;
        // 3 of 3 leaving: 100%, but below percent_applies_from.
        assert!(!judge(&s, "k", "w", 3, Some(3), t).crossed);
        // 20 of 100: above 10% and at least 10 rows.
        assert!(judge(&s, "k", "w", 20, Some(100), t).crossed);
        // 9 of 10,000: neither.
        assert!(!judge(&s, "k", "w", 9, Some(10_000), t).crossed);
        // 501 of 1,000,000: the count.
        assert!(judge(&s, "k", "w", 501, Some(1_000_000), t).crossed);
        // No base: never judged.
        assert!(!judge(&s, "k", "w", 10_000, None, t).crossed);
        let off = SafetySettings {
            enabled: false,
            ..SafetySettings::default()
        };
        assert!(!judge(&off, "k", "w", 10_000, Some(10), t).crossed);
        let m = judge(&s, "safety.students_leaving", "leave", 20, Some(100), t);
        assert_eq!(
            m.to_string(),
            "safety.students_leaving: 20 leave (20.0% of 100); limit 500 or 10% — CROSSED"
        );
    }

    #[test]
    fn a_school_that_shrinks_is_measured_against_its_own_last_count() {
        let s = SafetySettings {
            percent_applies_from: 1,
            ..SafetySettings::default()
        };
        let c = |students, contacts| SchoolCounts { students, contacts };
        let last = BTreeMap::from([(101, c(40, 60)), (102, c(400, 600)), (103, c(5, 5))]);
        // 101 keeps its students but its contacts come back empty; 103 is gone.
        let now = BTreeMap::from([(101, c(40, 0)), (102, c(399, 610))]);
        let m = school_measures(&s, &now, &last);
        let crossed: Vec<String> = m
            .iter()
            .filter(|m| m.crossed)
            .map(|m| m.to_string())
            .collect();
        assert_eq!(
            crossed,
            [
                "safety.school_students_shrink: 5 fewer students at school 103 than at the last \
                 successful run (now 0) (100.0% of 5); limit 500 or 25% — CROSSED",
                "safety.school_contacts_shrink: 60 fewer contacts at school 101 than at the last \
                 successful run (now 0) (100.0% of 60); limit 500 or 25% — CROSSED",
                "safety.school_contacts_shrink: 5 fewer contacts at school 103 than at the last \
                 successful run (now 0) (100.0% of 5); limit 500 or 25% — CROSSED",
            ]
        );
        // School 102 lost one student: measured, not crossed.
        assert!(m
            .iter()
            .any(|m| m.what.contains("school 102") && !m.crossed));
        // Nothing shrank: one quiet measure per kind; no earlier run: not judged.
        let quiet = school_measures(&s, &last, &last);
        assert_eq!(quiet.len(), 2);
        assert!(quiet.iter().all(|m| m.observed == 0 && !m.crossed));
        let first = school_measures(&s, &now, &BTreeMap::new());
        assert!(first.iter().all(|m| m.base.is_none() && !m.crossed));
    }
}
