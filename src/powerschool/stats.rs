//! What the client counts and reports while it works: the counters kept for
//! the client's whole life (`ClientStats`, for tests and metrics), each
//! query's own bookkeeping (`Ctx`) and the periodic progress log. Every other
//! part of the client writes here; this file depends on none of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::info;

const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Counters for the whole life of a client, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Token calls sent (first token, renewals, their retries).
    pub token_requests: u64,
    /// PowerQuery pages received and used.
    pub pages_fetched: u64,
    /// Transient failures that were followed by another attempt.
    pub retries: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 401s on a data call that led to a new token.
    pub unauthorized_renewals: u64,
    /// Throttling replies: 429s and "too many requests, wait N seconds".
    pub throttled: u64,
    /// Data requests allowed on the server at once now (halved, down to 1,
    /// after repeated throttling).
    pub in_flight_limit: u64,
    /// The most data requests that were on the server at once.
    pub max_in_flight: u64,
    /// The page size asked now: `powerschool.page_size`, or the server's
    /// cap once a short first page showed it.
    pub page_size: u64,
}

/// The live counters behind `ClientStats`, shared by every clone of a client.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) token_requests: AtomicU64,
    pub(super) pages_fetched: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) server_errors: AtomicU64,
    pub(super) rate_limited: AtomicU64,
    pub(super) unauthorized_renewals: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> ClientStats {
        ClientStats {
            token_requests: self.token_requests.load(Ordering::Relaxed),
            pages_fetched: self.pages_fetched.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            unauthorized_renewals: self.unauthorized_renewals.load(Ordering::Relaxed),
            ..ClientStats::default()
        }
    }
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Per-query bookkeeping shared by its requests.
pub(super) struct Ctx<'a> {
    pub(super) query: &'a str,
    /// Only PowerQuery 404/403 mean a missing plugin or a missing grant.
    pub(super) powerquery: bool,
    pub(super) retries: AtomicU64,
    pub(super) progress: &'a Progress,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(query: &'a str, powerquery: bool, progress: &'a Progress) -> Self {
        Ctx {
            query,
            powerquery,
            retries: AtomicU64::new(0),
            progress,
        }
    }

    /// The retries this query needed so far.
    pub(super) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// Told as a fetch goes: what each query's `/count` said, and the records
/// of every page received. The sync's progress (bars on a terminal, counts
/// on the run's row) listens through this; it must be cheap and never block.
pub trait FetchObserver: Send + Sync {
    /// A query's `/count` answered `total` records.
    fn counted(&self, query: &str, total: u64);
    /// A page of `records` records of `query` arrived.
    fn fetched(&self, query: &str, records: u64);
}

/// Logs records-so-far and rate at most every `PROGRESS_EVERY`, from whichever
/// request happens to finish after the interval passed, and tells the
/// observer (if any) of every count and page.
pub(super) struct Progress {
    label: String,
    started: Instant,
    records: AtomicU64,
    last_log: Mutex<Instant>,
    observer: Option<Arc<dyn FetchObserver>>,
}

impl Progress {
    pub(super) fn new(label: impl Into<String>) -> Self {
        let now = Instant::now();
        Progress {
            label: label.into(),
            started: now,
            records: AtomicU64::new(0),
            last_log: Mutex::new(now),
            observer: None,
        }
    }

    pub(super) fn observed_by(mut self, observer: Option<Arc<dyn FetchObserver>>) -> Self {
        self.observer = observer;
        self
    }

    pub(super) fn counted(&self, query: &str, total: u64) {
        if let Some(o) = &self.observer {
            o.counted(query, total);
        }
    }

    pub(super) fn add_page(&self, query: &str, records: u64) {
        if let Some(o) = &self.observer {
            o.fetched(query, records);
        }
        self.add(records);
    }

    pub(super) fn add(&self, records: u64) {
        let total = self.records.fetch_add(records, Ordering::Relaxed) + records;
        let now = Instant::now();
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(*last) >= PROGRESS_EVERY {
            *last = now;
            let secs = now.duration_since(self.started).as_secs_f64();
            info!(
                fetch = %self.label,
                records = total,
                elapsed_secs = secs.round() as u64,
                records_per_sec = (total as f64 / secs.max(0.001)).round() as u64,
                "PowerSchool fetch in progress"
            );
        }
    }
}
