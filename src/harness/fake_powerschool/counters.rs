//! What the fake counts, for tests to compare with what a client believes:
//! requests per route, answers per kind, and the most PowerQuery requests in
//! flight at once, overall and per query.

use super::FakeStats;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) token_requests: AtomicU64,
    pub(crate) page_requests: AtomicU64,
    pub(crate) count_requests: AtomicU64,
    pub(crate) v1_requests: AtomicU64,
    pub(crate) records_served: AtomicU64,
    pub(crate) answered_500: AtomicU64,
    pub(crate) answered_429: AtomicU64,
    pub(crate) answered_401: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) capped_pages: AtomicU64,
    /// Per query (and "" for all): (in flight now, most at once).
    pub(crate) in_flight: Mutex<BTreeMap<String, (u64, u64)>>,
}

/// One PowerQuery request in flight; dropping it ends it.
pub(crate) struct InFlight<'a> {
    counters: &'a Counters,
    query: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .counters
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for key in ["", self.query.as_str()] {
            if let Some(entry) = map.get_mut(key) {
                entry.0 = entry.0.saturating_sub(1);
            }
        }
    }
}

impl Counters {
    pub(crate) fn in_flight(&self, query: &str) -> InFlight<'_> {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for key in ["", query] {
            let entry = map.entry(key.to_string()).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(entry.0);
        }
        InFlight {
            counters: self,
            query: query.to_string(),
        }
    }

    pub(crate) fn reset_max_in_flight(&self) {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for entry in map.values_mut() {
            entry.1 = entry.0;
        }
    }

    pub(crate) fn snapshot(&self) -> FakeStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        FakeStats {
            token_requests: g(&self.token_requests),
            page_requests: g(&self.page_requests),
            count_requests: g(&self.count_requests),
            v1_requests: g(&self.v1_requests),
            records_served: g(&self.records_served),
            answered_500: g(&self.answered_500),
            answered_429: g(&self.answered_429),
            answered_401: g(&self.answered_401),
            truncated: g(&self.truncated),
            throttled: g(&self.throttled),
            capped_pages: g(&self.capped_pages),
            max_in_flight: map.get("").map_or(0, |e| e.1),
            max_in_flight_by_query: map
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, e)| (k.clone(), e.1))
                .collect(),
        }
    }
}

pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}
