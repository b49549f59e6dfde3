//! What the last successful full run received per query (and per school for
//! the per-school queries), so that tonight's `/count` far above it fails
//! before any page is asked (`powerschool.count_growth_factor`): a server
//! that answers nonsense is not paged through.

use serde_json::Value;
use std::collections::HashMap;

/// The smallest rise a count may make whatever the factor: a small school
/// that gains a class is not a server fault.
const LEAST_RISE: u64 = 1_000;

/// Records received per (query, school number), from the last successful run.
#[derive(Debug, Clone, Default)]
pub struct LastCounts {
    counts: HashMap<(String, Option<i64>), u64>,
}

impl LastCounts {
    /// What the last successful run received of `query` (for one school when
    /// the query is asked per school).
    pub fn insert(&mut self, query: &str, school_number: Option<i64>, received: u64) {
        self.counts
            .insert((query.to_string(), school_number), received);
    }

    /// The last count of `query` asked with `args`; `None` when unknown.
    pub(super) fn of(&self, query: &str, args: &Value) -> Option<u64> {
        let school = match args.get("school_number") {
            Some(Value::String(s)) => Some(s.parse().ok()?),
            Some(Value::Number(n)) => Some(n.as_i64()?),
            _ => None,
        };
        self.counts.get(&(query.to_string(), school)).copied()
    }
}

/// The largest count believed against `last`: `factor` times it and at
/// least `LEAST_RISE` more; `None` when the factor is 0 (not judged).
pub(super) fn ceiling(last: u64, factor: f64) -> Option<u64> {
    if factor <= 0.0 {
        return None;
    }
    let grown = (last as f64 * factor).min(u64::MAX as f64) as u64;
    Some(grown.max(last.saturating_add(LEAST_RISE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_count_is_looked_up_by_query_and_school() {
        let mut last = LastCounts::default();
        last.insert("q.students", Some(101), 300);
        last.insert("q.guardians", None, 5000);
        assert_eq!(
            last.of("q.students", &json!({"school_number": "101"})),
            Some(300)
        );
        assert_eq!(
            last.of("q.students", &json!({"school_number": "102"})),
            None
        );
        assert_eq!(last.of("q.guardians", &json!({})), Some(5000));
    }

    #[test]
    fn the_ceiling_is_the_factor_and_at_least_a_thousand_more() {
        assert_eq!(ceiling(300, 3.0), Some(1300));
        assert_eq!(ceiling(5000, 3.0), Some(15000));
        assert_eq!(ceiling(5000, 0.0), None);
        assert_eq!(ceiling(u64::MAX, 3.0), Some(u64::MAX));
    }
}
