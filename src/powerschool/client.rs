//! The client handle the rest of student-sync holds: one cheap-to-clone
//! `PowerSchoolClient` tying together the transport (connection pool, token,
//! retry policy and counters) with the paging settings. The queries it offers
//! are in `queries`.

use super::error::PowerSchoolError;
use super::last_counts::LastCounts;
use super::paging::PageSize;
use super::request::Transport;
use super::stats::{ClientStats, FetchObserver};
use crate::config::{AnswerLimits, GuardianColumns, PowerSchoolSettings};
use std::sync::Arc;

/// A cheap-to-clone handle; clones share the token, the connection pool and
/// the counters, and every method takes `&self`, so one client serves many
/// concurrent queries.
#[derive(Clone)]
pub struct PowerSchoolClient {
    pub(super) inner: Arc<Inner>,
    /// Told of every count and page of `fetch_district` (progress).
    pub(super) observer: Option<Arc<dyn FetchObserver>>,
    /// What the last successful run received, for the counts' ceilings.
    pub(super) last_counts: Option<Arc<LastCounts>>,
}

pub(super) struct Inner {
    pub(super) transport: Transport,
    pub(super) page_size: PageSize,
    /// Schools whose queries are under way at once: as many as the
    /// district-wide bound on requests, so that no slot waits for a school
    /// to start; the bound, not this, is what the server sees.
    pub(super) schools_under_way: usize,
    pub(super) guardian_columns: GuardianColumns,
    pub(super) answer_limits: AnswerLimits,
}

impl std::fmt::Debug for PowerSchoolClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerSchoolClient")
            .field("url", &self.inner.transport.base.as_str())
            .field("client_id", &self.inner.transport.tokens.client_id)
            .finish_non_exhaustive()
    }
}

impl PowerSchoolClient {
    pub fn new(settings: &PowerSchoolSettings) -> Result<Self, PowerSchoolError> {
        Ok(PowerSchoolClient {
            inner: Arc::new(Inner {
                transport: Transport::new(settings)?,
                page_size: PageSize::new(settings.page_size),
                schools_under_way: settings.max_requests_in_flight.max(1),
                guardian_columns: settings.guardian_columns.clone(),
                answer_limits: settings.answer_limits,
            }),
            observer: None,
            last_counts: None,
        })
    }

    /// The same client (token, connections, counters shared) whose queries
    /// fail at once when a `/count` is far above what the last successful
    /// run received (`powerschool.count_growth_factor`).
    pub fn with_last_counts(&self, last_counts: Arc<LastCounts>) -> Self {
        PowerSchoolClient {
            last_counts: Some(last_counts),
            ..self.clone()
        }
    }

    /// The same client (token, connections, counters shared) whose
    /// `fetch_district` tells `observer` of every count and page.
    pub fn observed_by(&self, observer: Arc<dyn FetchObserver>) -> Self {
        PowerSchoolClient {
            observer: Some(observer),
            ..self.clone()
        }
    }

    pub fn stats(&self) -> ClientStats {
        let transport = &self.inner.transport;
        ClientStats {
            throttled: transport.limiter.throttled_count(),
            in_flight_limit: transport.limiter.limit(),
            max_in_flight: transport.limiter.max_in_flight(),
            page_size: u64::from(self.inner.page_size.current()),
            ..transport.counters.snapshot()
        }
    }
}
