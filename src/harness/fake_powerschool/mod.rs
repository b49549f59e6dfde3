//! A fake PowerSchool server, written from `docs/powerschool.md`
//! and not from the client, so that a client bug is not mirrored here. It
//! serves a world's `powerschool` side (or a generated district) over real
//! HTTP, with fault switches for tests and benchmarks.
//!
//! The signatures in this file are the contract other modules and tests build
//! on. The queries also accept narrowing arguments for a "spot sync" (a
//! project extension; see `data.rs`).

mod counters;
mod data;
mod generate;
mod partial;
mod render;
mod schema;
mod server;

use crate::harness::world::PowerSchoolSide;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The names of the five PowerQueries the fake serves.
pub use data::{CONTACTS, ENROLLED, GUARDIANS, INDEPENDENT, SCHOOLS};

/// The plugin credentials the fake accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl Default for FakeCredentials {
    fn default() -> Self {
        FakeCredentials {
            client_id: "student-sync-demo".to_string(),
            client_secret: "demo-secret".to_string(),
        }
    }
}

/// Replace one field of one record a query serves, to make a bad record.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldOverride {
    /// The PowerQuery name.
    pub query: String,
    /// Index of the record in the query's full (unpaged) result, 0-based.
    pub record_index: usize,
    pub field: String,
    /// `null` removes the field (a NULL column sent as absent).
    pub value: serde_json::Value,
}

/// `/count` of one query answers `count`, whatever the query holds; its
/// pages are unchanged (a server whose count and pages disagree).
#[derive(Debug, Clone, PartialEq)]
pub struct CountOverride {
    /// The PowerQuery name.
    pub query: String,
    /// Only the requests with this `school_number` argument; None: every one.
    pub school_number: Option<i64>,
    pub count: u64,
}

/// Fault switches. The default is a well-behaved server.
///
/// Every `/ws/v1/...` request is refused with PowerSchool 25.2's 401 "Plugin
/// is missing required accessLevelV1Api READ permission", whatever the token.
///
/// The switches that make the server answer like a real one, on PowerQuery
/// page and `/count` requests that pass authentication: `throttle_every`
/// (every Nth such request is answered "too many requests, wait N seconds"),
/// `missing_queries` (404 "Query … not found"), and, on pages,
/// `page_size_cap` (a larger `pagesize`, or 0, is cut to the cap silently).
/// `flat_guardians` and `guardian_email_column` change how the guardian
/// records are written.
///
/// Only PowerQuery page requests that pass authentication, name a known
/// query and carry valid arguments and paging are subject to the faults
/// below; token and `/count` requests never are, except that
/// `always_fail_queries` also fails `/count`. For such a page request, in
/// order: `page_latency` is slept; a query in `always_fail_queries` is
/// answered 500 (without using up any `*_first` budget), and so is a page in
/// `always_fail_pages`; otherwise the
/// request takes the next ordinal n (0, 1, 2, …) and is answered 500 if
/// n < fail_first, 429 if n < fail_first + rate_limit_first, truncated if
/// n < fail_first + rate_limit_first + truncate_first; after that, three
/// draws from an RNG seeded by (`seed`, n) decide 500 (error_rate), else 429
/// (rate_limit_rate), else truncated (truncate_rate). So the n-th request's
/// fate depends only on the seed and n, however requests interleave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Delay before answering each PowerQuery page.
    pub page_latency: Duration,
    /// Fraction (0..=1) of PowerQuery page requests answered 500.
    pub error_rate: f64,
    /// The first N PowerQuery page requests are answered 500.
    pub fail_first: u32,
    /// Fraction (0..=1) of PowerQuery page requests answered 429.
    pub rate_limit_rate: f64,
    /// The first N PowerQuery page requests (after `fail_first`) are answered 429.
    pub rate_limit_first: u32,
    /// `Retry-After` seconds sent with a 429 (0 is allowed and useful in tests).
    pub retry_after_secs: u64,
    /// Tokens expire this long after they are issued (and `expires_in` says so).
    /// None: 3599 s, as a real server.
    pub token_ttl: Option<Duration>,
    /// What the token answer says as `expires_in` instead of the real
    /// lifetime (a server's nonsense, e.g. "18446744073709551615").
    pub token_expires_in: Option<String>,
    /// Each token answers this many data requests, then is refused with 401
    /// ("expired"): a token that expires mid-run without a clock in the test.
    pub token_uses: Option<u64>,
    /// Fraction (0..=1) of PowerQuery pages whose body is cut off mid-JSON.
    pub truncate_rate: f64,
    /// The first N PowerQuery page requests (after the above) are cut off mid-JSON.
    pub truncate_first: u32,
    /// Queries that always answer 500 (a server that keeps failing).
    pub always_fail_queries: Vec<String>,
    /// Page numbers that always answer 500 on every query, while `/count`
    /// and the other pages work (a server that fails part-way through).
    pub always_fail_pages: Vec<u32>,
    /// Bad values planted in served records.
    pub overrides: Vec<FieldOverride>,
    /// Seed for which requests the rates hit.
    pub seed: u64,
    /// `TABLE.COLUMN`s taken out of the fake's schema: the schema probe
    /// answers `400 Invalid field` for them.
    pub missing_columns: Vec<String>,
    /// `TABLE.COLUMN`s the plugin is not granted: the schema probe answers 403.
    pub ungranted_columns: Vec<String>,
    /// `TABLE.COLUMN`s the guardian query's access list names beyond the
    /// usual ones (a server whose guardian query needs more).
    pub access_list_extra: Vec<String>,
    /// Guardian records flat (`guardianid`, `email`, …) instead of nested
    /// under PowerSchool's tables (`tables.guardian.guardianid`, …), the default.
    pub flat_guardians: bool,
    /// Send the guardian email only under this column (`table.column` when
    /// nested, e.g. `pcas_contact.mail`; the column when flat), not under
    /// `pcas_emailcontact.emailaddress` or `guardian.email`.
    pub guardian_email_column: Option<String>,
    /// The server's largest page: a bigger `pagesize` (or 0) gets this many.
    pub page_size_cap: Option<usize>,
    /// Queries that are not installed: their pages and counts answer 404.
    pub missing_queries: Vec<String>,
    /// Every Nth PowerQuery page or count request (0: none) is answered
    /// "Too many requests, wait {throttle_wait_secs} seconds".
    pub throttle_every: u32,
    pub throttle_wait_secs: u64,
    /// The status of that answer; None: 429. (Real servers' is undocumented.)
    pub throttle_status: Option<u16>,
    /// What `/count` says instead of the truth, per query (and school).
    pub count_overrides: Vec<CountOverride>,
    /// Every page of every query asked with this `school_number` comes back
    /// empty, while `/count` still counts the school's records (a server
    /// that answers part of a district).
    pub empty_pages_for_school: Option<i64>,
}

/// What the fake has seen, for tests to compare with the client's counts.
/// Request counters count every request to the route, whatever the answer
/// (401, 404, 400, injected faults included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeStats {
    pub token_requests: u64,
    /// `POST /ws/schema/query/{name}` requests.
    pub page_requests: u64,
    /// `POST /ws/schema/query/{name}/count` requests.
    pub count_requests: u64,
    /// `/ws/v1/...` requests (all refused with 401).
    pub v1_requests: u64,
    /// Records sent in PowerQuery pages (truncated pages included).
    pub records_served: u64,
    pub answered_500: u64,
    pub answered_429: u64,
    /// 401s from every route, the token endpoint's included.
    pub answered_401: u64,
    /// 200 pages whose body was cut off.
    pub truncated: u64,
    /// Throttling replies ("too many requests, wait N seconds").
    pub throttled: u64,
    /// Page requests whose `pagesize` was above `page_size_cap` (or 0).
    pub capped_pages: u64,
    /// The most PowerQuery page and count requests in flight at once, all
    /// queries together and per query (since the start or the last
    /// `reset_max_in_flight`).
    pub max_in_flight: u64,
    pub max_in_flight_by_query: std::collections::BTreeMap<String, u64>,
}

/// A fake server listening on a real socket. Dropping it stops the server.
pub struct RunningFake {
    pub addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningFake {
    /// `http://{addr}`, what `powerschool.url` is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> FakeStats {
        self.shared.counters.snapshot()
    }

    /// Starts counting the most requests in flight afresh.
    pub fn reset_max_in_flight(&self) {
        self.shared.counters.reset_max_in_flight();
    }

    /// Stop serving and wait until the listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // Graceful shutdown waits for open connections; a client that
            // holds one forever must not hang the caller.
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        tracing::info!(addr = %self.addr, "fake PowerSchool stopped");
    }
}

impl Drop for RunningFake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serve `world` on `listen` (port 0 picks a free one).
pub async fn spawn(
    world: PowerSchoolSide,
    credentials: FakeCredentials,
    faults: Faults,
    listen: SocketAddr,
) -> std::io::Result<RunningFake> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    // Indexing a large district takes a moment of CPU; keep it off the
    // async workers.
    let shape = render::GuardianShape {
        flat: faults.flat_guardians,
        email_column: faults.guardian_email_column.clone(),
    };
    let data = tokio::task::spawn_blocking(move || data::Dataset::build(&world, &shape))
        .await
        .map_err(std::io::Error::other)?;
    let shared = Arc::new(server::Shared::new(data, credentials, faults));
    let app = server::router(shared.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "fake PowerSchool stopped with an error");
        }
    });
    tracing::info!(
        %addr,
        students = shared.student_count(),
        "fake PowerSchool listening"
    );
    Ok(RunningFake {
        addr,
        shared,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A deterministic synthetic district of about `students` students.
pub fn generate(students: usize, seed: u64) -> PowerSchoolSide {
    generate::district(students, seed)
}
