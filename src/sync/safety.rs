//! Safety thresholds: before a run applies anything, its plan is measured
//! against the limits of `[safety]` (students leaving the sync set,
//! connections losing access, users created, the guardian query shrinking).
//! A plan that crosses one is held for approval instead of applied; `plan`
//! shows the same measures without writing anything.

use super::plan::{ConnectionChangeKind, Plan};
use crate::config::{SafetySettings, Threshold};
use crate::store::runs::LastFullRun;
use crate::store::state::CurrentState;
use serde::Serialize;
use std::fmt;

/// One measured quantity against its limit.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// The setting's key, e.g. `safety.students_leaving`.
    pub key: &'static str,
    /// What is counted, in words, e.g. "students in the sync set would leave it".
    pub what: &'static str,
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
    what: &'static str,
    observed: u64,
    base: Option<u64>,
    limit: Threshold,
) -> Measure {
    let mut m = Measure {
        key,
        what,
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
/// newest successful full run (none before the first sync).
pub fn check(
    settings: &SafetySettings,
    plan: &Plan,
    state: &CurrentState,
    last: Option<&LastFullRun>,
) -> SafetyCheck {
    let in_set = state.students.values().filter(|s| s.in_sync_set).count() as u64;
    let leaving = plan.leaving.len() as u64;
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
    let measures = vec![
        judge(
            settings,
            "safety.students_leaving",
            "students in the sync set would leave it",
            leaving,
            Some(in_set),
            settings.students_leaving,
        ),
        judge(
            settings,
            "safety.connections_losing_access",
            "connections would lose access (tier down or removed)",
            losing,
            Some(state.connections.len() as u64),
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
    ];
    SafetyCheck {
        enabled: settings.enabled,
        measures,
    }
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
}
