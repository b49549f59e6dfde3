//! The switches that make the fake answer only part of a query: a `/count`
//! that says more (or less) than the pages hold, and a school whose pages
//! come back empty. See `Faults::count_overrides` and
//! `Faults::empty_pages_for_school`.

use super::server::Shared;

impl Shared {
    /// What `/count` says for query `name` asked with `school`: the `real`
    /// number of records unless an override names the query (and school).
    pub(super) fn counted(&self, name: &str, school: Option<i64>, real: usize) -> u64 {
        self.faults
            .count_overrides
            .iter()
            .find(|o| o.query == name && o.school_number.is_none_or(|n| Some(n) == school))
            .map_or(real as u64, |o| o.count)
    }

    /// True when the pages asked with `school` come back empty.
    pub(super) fn emptied(&self, school: Option<i64>) -> bool {
        school.is_some() && self.faults.empty_pages_for_school == school
    }
}
