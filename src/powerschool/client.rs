//! The client handle the rest of student-sync holds: one cheap-to-clone
//! `PowerSchoolClient` tying together the transport (connection pool, token,
//! retry policy and counters) with the paging settings. The queries it offers
//! are in `queries`.

use super::error::PowerSchoolError;
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
}

pub(super) struct Inner {
    pub(super) transport: Transport,
    pub(super) page_size: PageSize,
    pub(super) school_concurrency: usize,
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
                school_concurrency: settings.school_concurrency.max(1),
                guardian_columns: settings.guardian_columns.clone(),
                answer_limits: settings.answer_limits,
            }),
            observer: None,
        })
    }

    /// The same client (token, connections, counters shared) whose
    /// `fetch_district` tells `observer` of every count and page.
    pub fn observed_by(&self, observer: Arc<dyn FetchObserver>) -> Self {
        PowerSchoolClient {
            inner: self.inner.clone(),
            observer: Some(observer),
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
