//! The HTTP side of the PowerSchool client: the OAuth token, PowerQuery
//! counting and paging, retries, and the district-wide fetch. Parsing lives in
//! `parse`, so everything here is about getting every record exactly once.

use super::error::PowerSchoolError;
use super::parse::{self, Columns, FieldError};
use super::records::{
    DistrictSnapshot, GuardianLink, IndependentStudent, RecordProblem, School, Student,
    StudentContact,
};
use crate::config::{PowerSchoolSettings, Secret};
use futures::{stream, StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub const GUARDIANS_QUERY: &str = "com.pearson.core.guardian.student_guardian_detail";
pub const STUDENTS_QUERY: &str = "org.studentsync.sync.students.enrolled";
pub const INDEPENDENT_QUERY: &str = "org.studentsync.sync.students.independent";
pub const CONTACTS_QUERY: &str = "org.studentsync.sync.students.contacts";
/// How the schools request is named in errors, problems and logs.
pub const SCHOOLS_ENDPOINT: &str = "/ws/v1/district/school";
const TOKEN_ENDPOINT: &str = "/oauth/access_token";

/// Pages of one query requested at once. Small on purpose: with several
/// schools in flight, each running two queries, a district server sees at
/// most `school_concurrency * 2 * PAGES_IN_FLIGHT` requests.
const PAGES_IN_FLIGHT: usize = 3;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Only the first problems of a query are logged one by one; a district with
/// thousands of bad rows gets a count instead of a flood.
const PROBLEMS_LOGGED: usize = 20;
/// What a real server says when `expires_in` is missing or unreadable.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3599);

/// The columns that make a record distinct, per known query. A second record
/// with the same key (paging over data that moved) is dropped.
fn key_columns(query: &str) -> Option<&'static [&'static str]> {
    match query {
        GUARDIANS_QUERY => Some(&["guardianid", "studentsdcid"]),
        STUDENTS_QUERY | INDEPENDENT_QUERY => Some(&["dcid"]),
        CONTACTS_QUERY => Some(&["studentsdcid", "personid"]),
        _ => None,
    }
}

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
}

#[derive(Default)]
struct Counters {
    token_requests: AtomicU64,
    pages_fetched: AtomicU64,
    retries: AtomicU64,
    server_errors: AtomicU64,
    rate_limited: AtomicU64,
    unauthorized_renewals: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The raw result of one PowerQuery: every distinct record's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawQueryResult {
    pub query: String,
    pub records: Vec<Columns>,
    /// What `/count` said before paging.
    pub expected_count: u64,
    /// Records dropped because an earlier page already had their key.
    pub duplicates_dropped: u64,
    pub pages: u32,
    pub retries: u64,
}

/// The typed result of one query: the records that parsed and the problems
/// of those that did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult<T> {
    pub query: String,
    pub records: Vec<T>,
    pub problems: Vec<RecordProblem>,
    /// What `/count` said (None for the schools list, which has no count).
    pub expected_count: Option<u64>,
    pub duplicates_dropped: u64,
    pub retries: u64,
}

/// A cheap-to-clone handle; clones share the token, the connection pool and
/// the counters, and every method takes `&self`, so one client serves many
/// concurrent queries.
#[derive(Clone)]
pub struct PowerSchoolClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PowerSchoolClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerSchoolClient")
            .field("url", &self.inner.base.as_str())
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    base: url::Url,
    client_id: String,
    client_secret: Secret,
    page_size: u32,
    school_concurrency: usize,
    max_attempts: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    token_refresh_margin: Duration,
    /// Held while a token is fetched, so concurrent callers wait for one
    /// token call instead of each making their own.
    token: tokio::sync::Mutex<Option<Token>>,
    generations: AtomicU64,
    counters: Counters,
}

#[derive(Clone)]
struct Token {
    value: String,
    /// Lets a caller that got a 401 tell whether someone already renewed.
    generation: u64,
    /// None: the server gave no usable lifetime (`expires_in` 0), so the
    /// token is kept until a call is refused with 401.
    renew_at: Option<Instant>,
}

/// Per-query bookkeeping shared by its requests.
struct Ctx<'a> {
    query: &'a str,
    /// Only PowerQuery 404/403 mean a missing plugin or a missing grant.
    powerquery: bool,
    retries: AtomicU64,
    progress: &'a Progress,
}

impl<'a> Ctx<'a> {
    fn new(query: &'a str, powerquery: bool, progress: &'a Progress) -> Self {
        Ctx {
            query,
            powerquery,
            retries: AtomicU64::new(0),
            progress,
        }
    }
}

/// Logs records-so-far and rate at most every `PROGRESS_EVERY`, from whichever
/// request happens to finish after the interval passed.
struct Progress {
    label: String,
    started: Instant,
    records: AtomicU64,
    last_log: Mutex<Instant>,
}

impl Progress {
    fn new(label: impl Into<String>) -> Self {
        let now = Instant::now();
        Progress {
            label: label.into(),
            started: now,
            records: AtomicU64::new(0),
            last_log: Mutex::new(now),
        }
    }

    fn add(&self, records: u64) {
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

/// Why one attempt failed in a way another attempt may fix.
struct Transient {
    status: Option<u16>,
    error: String,
    retry_after: Option<Duration>,
}

enum Body<'a> {
    Get,
    Json(&'a Value),
}

impl PowerSchoolClient {
    pub fn new(settings: &PowerSchoolSettings) -> Result<Self, PowerSchoolError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(30)))
            // A redirect here is a login page or a wrong URL; following it
            // would turn a clear status into an unreadable HTML answer.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("student-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PowerSchoolError::Setup {
                url: settings.url.to_string(),
                message: e.to_string(),
            })?;
        Ok(PowerSchoolClient {
            inner: Arc::new(Inner {
                http,
                base: settings.url.clone(),
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                page_size: settings.page_size.max(1),
                school_concurrency: settings.school_concurrency.max(1),
                max_attempts: settings.max_attempts.max(1),
                backoff_initial: settings.backoff_initial,
                backoff_max: settings.backoff_max.max(settings.backoff_initial),
                token_refresh_margin: settings.token_refresh_margin,
                token: tokio::sync::Mutex::new(None),
                generations: AtomicU64::new(0),
                counters: Counters::default(),
            }),
        })
    }

    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            token_requests: c.token_requests.load(Ordering::Relaxed),
            pages_fetched: c.pages_fetched.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            unauthorized_renewals: c.unauthorized_renewals.load(Ordering::Relaxed),
        }
    }

    // ---- the queries ----

    /// Every (Parent Portal account, student) link with Data Access enabled.
    pub async fn guardians(&self) -> Result<QueryResult<GuardianLink>, PowerSchoolError> {
        self.guardians_where(json!({})).await
    }

    /// The guardian query with narrowing arguments, e.g. `{"students_dcid": "5001"}`.
    pub async fn guardians_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<GuardianLink>, PowerSchoolError> {
        let progress = Progress::new(GUARDIANS_QUERY);
        self.typed(GUARDIANS_QUERY, args, &progress, parse::guardian)
            .await
    }

    /// One school's students with `enroll_status <= 0`.
    pub async fn students(
        &self,
        school_number: i64,
    ) -> Result<QueryResult<Student>, PowerSchoolError> {
        self.students_where(school_args(school_number)).await
    }

    /// The students query with any arguments; a `school_number` among them is
    /// the school assumed for records that lack `schoolid`.
    pub async fn students_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<Student>, PowerSchoolError> {
        let progress = Progress::new(STUDENTS_QUERY);
        self.students_with(args, &progress).await
    }

    pub async fn independent_students(
        &self,
    ) -> Result<QueryResult<IndependentStudent>, PowerSchoolError> {
        self.independent_students_where(json!({})).await
    }

    pub async fn independent_students_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<IndependentStudent>, PowerSchoolError> {
        let progress = Progress::new(INDEPENDENT_QUERY);
        self.typed(
            INDEPENDENT_QUERY,
            args,
            &progress,
            parse::independent_student,
        )
        .await
    }

    /// One school's (student, contact person) rows.
    pub async fn contacts(
        &self,
        school_number: i64,
    ) -> Result<QueryResult<StudentContact>, PowerSchoolError> {
        self.contacts_where(school_args(school_number)).await
    }

    pub async fn contacts_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<StudentContact>, PowerSchoolError> {
        let progress = Progress::new(CONTACTS_QUERY);
        self.typed(CONTACTS_QUERY, args, &progress, parse::contact)
            .await
    }

    /// The district's schools. An entry without a readable `school_number` is
    /// a problem, not a failure.
    pub async fn schools(&self) -> Result<QueryResult<School>, PowerSchoolError> {
        let progress = Progress::new(SCHOOLS_ENDPOINT);
        let ctx = Ctx::new(SCHOOLS_ENDPOINT, false, &progress);
        let mut url = self.inner.base.clone();
        push_segments(&mut url, &["ws", "v1", "district", "school"]);
        let body = self.call(&ctx, None, &url, Body::Get).await?;
        let entries = parse::schools(&body).map_err(|detail| PowerSchoolError::BadResponse {
            query: SCHOOLS_ENDPOINT.to_string(),
            page: None,
            detail,
        })?;
        let mut schools = Vec::new();
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        let mut duplicates = 0;
        for (index, entry) in entries.into_iter().enumerate() {
            match entry {
                Ok(school) if seen.insert(school.school_number) => schools.push(school),
                Ok(_) => duplicates += 1,
                Err(e) => problems.push(RecordProblem {
                    query: SCHOOLS_ENDPOINT.to_string(),
                    record_id: format!("school {}", index + 1),
                    field: e.field,
                    value: e.value,
                    message: e.message,
                }),
            }
        }
        schools.sort_by_key(|s| s.school_number);
        let result = QueryResult {
            query: SCHOOLS_ENDPOINT.to_string(),
            records: schools,
            problems,
            expected_count: None,
            duplicates_dropped: duplicates,
            retries: ctx.retries.load(Ordering::Relaxed),
        };
        log_problems(&result.problems);
        info!(
            query = SCHOOLS_ENDPOINT,
            records = result.records.len(),
            problems = result.problems.len(),
            retries = result.retries,
            "PowerSchool schools fetched"
        );
        Ok(result)
    }

    /// Any PowerQuery by name with any arguments, paged and de-duplicated
    /// like the typed ones, as raw columns. For spot syncs that narrow a
    /// query (`{"students_dcid": "5001"}`) and for queries without a type here.
    pub async fn run_query(
        &self,
        name: &str,
        args: Value,
    ) -> Result<RawQueryResult, PowerSchoolError> {
        let progress = Progress::new(name);
        let ctx = Ctx::new(name, true, &progress);
        let raw = self.fetch_raw(&ctx, args).await?;
        let mut records = Vec::with_capacity(raw.records.len());
        for record in raw.records {
            match record.columns {
                Ok(columns) => records.push(columns),
                Err(message) => warn!(
                    query = name,
                    page = record.page,
                    record = record.index + 1,
                    %message,
                    "PowerSchool record skipped"
                ),
            }
        }
        Ok(RawQueryResult {
            query: name.to_string(),
            records,
            expected_count: raw.expected_count,
            duplicates_dropped: raw.duplicates,
            pages: raw.pages,
            retries: ctx.retries.load(Ordering::Relaxed),
        })
    }

    /// Everything the nightly sync needs: schools, guardians, independent
    /// students, then each school's students and contacts with at most
    /// `school_concurrency` schools in flight. The first error ends the fetch;
    /// a half-fetched district must never look like a complete one.
    /// Results are sorted by key so two fetches of the same data are equal.
    pub async fn fetch_district(&self) -> Result<DistrictSnapshot, PowerSchoolError> {
        let started = Instant::now();
        let progress = Progress::new("district");
        info!(url = %self.inner.base, "PowerSchool fetch started");
        let schools = self.schools().await?;
        let guardians = self
            .typed(GUARDIANS_QUERY, json!({}), &progress, parse::guardian)
            .await?;
        let independent = self
            .typed(
                INDEPENDENT_QUERY,
                json!({}),
                &progress,
                parse::independent_student,
            )
            .await?;

        let progress_ref = &progress;
        let per_school: Vec<(QueryResult<Student>, QueryResult<StudentContact>)> =
            stream::iter(schools.records.iter().map(|s| s.school_number))
                .map(|number| async move {
                    let students = self.students_with(school_args(number), progress_ref);
                    let contacts = self.typed(
                        CONTACTS_QUERY,
                        school_args(number),
                        progress_ref,
                        parse::contact,
                    );
                    futures::try_join!(students, contacts)
                })
                .buffer_unordered(self.inner.school_concurrency)
                // Boxing erases the closure types; without it the future of a
                // whole run is not provably Send and cannot be spawned.
                .boxed()
                .try_collect()
                .await?;

        let mut snapshot = DistrictSnapshot {
            retries: schools.retries + guardians.retries + independent.retries,
            ..DistrictSnapshot::default()
        };
        snapshot.problems.extend(schools.problems);
        snapshot.problems.extend(guardians.problems);
        snapshot.problems.extend(independent.problems);
        snapshot.schools = schools.records;
        snapshot.guardians = guardians.records;
        snapshot.independent_students = independent.records;
        for (students, contacts) in per_school {
            snapshot.retries += students.retries + contacts.retries;
            snapshot.students.extend(students.records);
            snapshot.contacts.extend(contacts.records);
            snapshot.problems.extend(students.problems);
            snapshot.problems.extend(contacts.problems);
        }

        let dropped = snapshot.sort_and_dedup();
        if dropped > 0 {
            warn!(
                dropped,
                "students came back from more than one school (moved during the fetch?); kept the lowest school number"
            );
        }

        info!(
            schools = snapshot.schools.len(),
            guardians = snapshot.guardians.len(),
            students = snapshot.students.len(),
            independent_students = snapshot.independent_students.len(),
            contacts = snapshot.contacts.len(),
            problems = snapshot.problems.len(),
            retries = snapshot.retries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PowerSchool fetch finished"
        );
        Ok(snapshot)
    }

    // ---- typed layer ----

    async fn students_with(
        &self,
        args: Value,
        progress: &Progress,
    ) -> Result<QueryResult<Student>, PowerSchoolError> {
        let school = args.get("school_number").and_then(|v| match v {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        });
        self.typed(STUDENTS_QUERY, args, progress, move |c| {
            parse::student(c, school)
        })
        .await
    }

    async fn typed<T>(
        &self,
        query: &str,
        args: Value,
        progress: &Progress,
        parse_one: impl Fn(&Columns) -> Result<T, FieldError>,
    ) -> Result<QueryResult<T>, PowerSchoolError> {
        let started = Instant::now();
        let ctx = Ctx::new(query, true, progress);
        let school = args.get("school_number").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let raw = self.fetch_raw(&ctx, args).await?;
        let mut records = Vec::with_capacity(raw.records.len());
        let mut problems = Vec::new();
        for record in &raw.records {
            let outcome = match &record.columns {
                Ok(columns) => parse_one(columns).map_err(|e| (Some(columns), e)),
                Err(message) => Err((
                    None,
                    FieldError {
                        field: "(record)".to_string(),
                        value: String::new(),
                        message: message.clone(),
                    },
                )),
            };
            match outcome {
                Ok(value) => records.push(value),
                Err((columns, e)) => problems.push(RecordProblem {
                    query: query.to_string(),
                    record_id: record_id(query, columns, record.page, record.index),
                    field: e.field,
                    value: e.value,
                    message: e.message,
                }),
            }
        }
        let result = QueryResult {
            query: query.to_string(),
            records,
            problems,
            expected_count: Some(raw.expected_count),
            duplicates_dropped: raw.duplicates,
            retries: ctx.retries.load(Ordering::Relaxed),
        };
        log_problems(&result.problems);
        info!(
            query,
            school = school.as_deref().unwrap_or("-"),
            records = result.records.len(),
            problems = result.problems.len(),
            duplicates = result.duplicates_dropped,
            expected = raw.expected_count,
            pages = raw.pages,
            retries = result.retries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PowerQuery fetched"
        );
        Ok(result)
    }

    // ---- paging ----

    /// Counts, then pages through a query, keeping the first record of each
    /// key.
    ///
    /// Paging rule: pages 1..=ceil(count / page size) are fetched (page 1
    /// first, then the rest a few at a time, in order). Data can grow during
    /// the fetch, so while the last page fetched is full the next one is
    /// fetched too, until a page comes back short or empty, or brings nothing
    /// new (a server that ignores `page` must not loop us forever). If page 1
    /// comes back shorter than asked although the count says there is more,
    /// the server caps the page size; its cap is used to plan the pages.
    async fn fetch_raw(&self, ctx: &Ctx<'_>, args: Value) -> Result<RawFetch, PowerSchoolError> {
        let args = if args.is_null() { json!({}) } else { args };
        let expected = self.count(ctx, &args).await?;
        let asked = self.inner.page_size;
        let mut acc = Accumulator::new(ctx.query);

        let first = self.page(ctx, &args, 1).await?;
        let first_len = first.len() as u64;
        acc.add_page(1, first);
        let mut page_size = asked as u64;
        if first_len > 0 && first_len < page_size && first_len < expected {
            warn!(
                query = ctx.query,
                asked,
                got = first_len,
                "PowerSchool capped the page size; set powerschool.page_size to at most this district's maximum"
            );
            page_size = first_len;
        }
        let planned = expected.div_ceil(page_size).max(1);
        let planned = u32::try_from(planned).unwrap_or(u32::MAX);

        let mut last_len = first_len;
        if planned > 1 {
            let args = &args;
            let mut pages = stream::iter(2..=planned)
                .map(|p| async move { self.page(ctx, args, p).await.map(|r| (p, r)) })
                .buffered(PAGES_IN_FLIGHT)
                .boxed();
            while let Some((p, records)) = pages.try_next().await? {
                last_len = records.len() as u64;
                acc.add_page(p, records);
            }
        }
        let mut next = planned + 1;
        while last_len >= page_size {
            let records = self.page(ctx, &args, next).await?;
            last_len = records.len() as u64;
            if acc.add_page(next, records) == 0 {
                break;
            }
            next += 1;
        }

        let distinct = acc.records.len() as u64;
        if distinct != expected {
            warn!(
                query = ctx.query,
                expected,
                received = distinct,
                "PowerSchool's count and the distinct records received differ (data changed during the fetch?)"
            );
        }
        Ok(RawFetch {
            records: acc.records,
            expected_count: expected,
            duplicates: acc.duplicates,
            pages: next - 1,
        })
    }

    async fn count(&self, ctx: &Ctx<'_>, args: &Value) -> Result<u64, PowerSchoolError> {
        let mut url = self.inner.base.clone();
        push_segments(&mut url, &["ws", "schema", "query", ctx.query, "count"]);
        let body = self.call(ctx, None, &url, Body::Json(args)).await?;
        parse::count_of(&body).map_err(|detail| PowerSchoolError::BadResponse {
            query: ctx.query.to_string(),
            page: None,
            detail,
        })
    }

    async fn page(
        &self,
        ctx: &Ctx<'_>,
        args: &Value,
        page: u32,
    ) -> Result<Vec<Value>, PowerSchoolError> {
        let mut url = self.inner.base.clone();
        push_segments(&mut url, &["ws", "schema", "query", ctx.query]);
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("pagesize", &self.inner.page_size.to_string());
        let body = self.call(ctx, Some(page), &url, Body::Json(args)).await?;
        let records =
            parse::into_page_records(body).map_err(|detail| PowerSchoolError::BadResponse {
                query: ctx.query.to_string(),
                page: Some(page),
                detail,
            })?;
        bump(&self.inner.counters.pages_fetched);
        ctx.progress.add(records.len() as u64);
        Ok(records)
    }

    // ---- one request, with token and retries ----

    /// Sends one data request until it succeeds, fails for good, or runs out
    /// of attempts. A 200 counts only when its whole body is JSON: a page cut
    /// off mid-way is retried, never half-used.
    async fn call(
        &self,
        ctx: &Ctx<'_>,
        page: Option<u32>,
        url: &url::Url,
        body: Body<'_>,
    ) -> Result<Value, PowerSchoolError> {
        let inner = &*self.inner;
        let mut renewed = false;
        let mut attempt = 0;
        let mut token = self.token(None, ctx).await?;
        loop {
            attempt += 1;
            let request = match body {
                Body::Get => inner.http.get(url.clone()),
                Body::Json(args) => inner.http.post(url.clone()).json(args),
            }
            .bearer_auth(&token.value)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json");

            let failure = match request.send().await {
                Err(e) => Transient {
                    status: None,
                    error: describe_reqwest(&e),
                    retry_after: None,
                },
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        match read_json(response).await {
                            Ok(value) => return Ok(value),
                            Err(error) => Transient {
                                status: Some(status.as_u16()),
                                error,
                                retry_after: None,
                            },
                        }
                    } else if status == StatusCode::UNAUTHORIZED {
                        if renewed {
                            return Err(PowerSchoolError::Unauthorized {
                                query: ctx.query.to_string(),
                                page,
                            });
                        }
                        // An expired token is not a failed attempt.
                        renewed = true;
                        attempt -= 1;
                        bump(&inner.counters.unauthorized_renewals);
                        token = self.token(Some(token.generation), ctx).await?;
                        continue;
                    } else if status == StatusCode::NOT_FOUND && ctx.powerquery {
                        return Err(PowerSchoolError::QueryNotInstalled {
                            query: ctx.query.to_string(),
                        });
                    } else if status == StatusCode::FORBIDDEN && ctx.powerquery {
                        return Err(PowerSchoolError::AccessDenied {
                            query: ctx.query.to_string(),
                        });
                    } else if status == StatusCode::TOO_MANY_REQUESTS {
                        bump(&inner.counters.rate_limited);
                        Transient {
                            status: Some(429),
                            error: "rate limited (429)".to_string(),
                            retry_after: retry_after(&response),
                        }
                    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                        if status.is_server_error() {
                            bump(&inner.counters.server_errors);
                        }
                        Transient {
                            status: Some(status.as_u16()),
                            error: format!("server error: {}", excerpt(response).await),
                            retry_after: None,
                        }
                    } else {
                        return Err(PowerSchoolError::Rejected {
                            query: ctx.query.to_string(),
                            page,
                            status: status.as_u16(),
                            detail: excerpt(response).await,
                        });
                    }
                }
            };

            if attempt >= inner.max_attempts {
                return Err(PowerSchoolError::GaveUp {
                    query: ctx.query.to_string(),
                    page,
                    attempts: attempt,
                    last_status: failure.status,
                    last_error: failure.error,
                });
            }
            let delay = match failure.retry_after {
                Some(wait) => wait.min(inner.backoff_max),
                None => self.backoff(attempt),
            };
            bump(&inner.counters.retries);
            ctx.retries.fetch_add(1, Ordering::Relaxed);
            warn!(
                query = ctx.query,
                page = page.map(|p| p as i64).unwrap_or(-1),
                attempt,
                status = %failure.status.map_or("no HTTP answer".to_string(), |s| s.to_string()),
                error = %failure.error,
                retry_in_ms = delay.as_millis() as u64,
                "PowerSchool request failed, retrying"
            );
            tokio::time::sleep(delay).await;
            // The token may have come due while we slept.
            token = self.token(None, ctx).await?;
        }
    }

    /// Exponential from `backoff_initial`, capped at `backoff_max`, with the
    /// upper half jittered so many concurrent requests do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let exp = self
            .inner
            .backoff_initial
            .saturating_mul(1u32 << (attempt - 1).min(20));
        let ceiling = exp.min(self.inner.backoff_max);
        let floor = ceiling / 2;
        if ceiling <= floor {
            return ceiling;
        }
        let nanos = rand::thread_rng().gen_range(floor.as_nanos()..=ceiling.as_nanos());
        Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }

    // ---- the token ----

    /// The current token, fetching one when there is none or it is due.
    /// `stale` is the generation a 401 was answered to: it is replaced unless
    /// another request already did.
    async fn token(&self, stale: Option<u64>, ctx: &Ctx<'_>) -> Result<Token, PowerSchoolError> {
        let mut guard = self.inner.token.lock().await;
        if let Some(current) = guard.as_ref() {
            let refused = stale == Some(current.generation);
            let due = current.renew_at.is_some_and(|at| Instant::now() >= at);
            if !refused && !due {
                return Ok(current.clone());
            }
        }
        let fresh = self.request_token(ctx).await?;
        *guard = Some(fresh.clone());
        Ok(fresh)
    }

    /// `POST /oauth/access_token`. Retried only when the server could not
    /// answer (connection errors, timeouts, 5xx): any other refusal will not
    /// change by asking again.
    async fn request_token(&self, ctx: &Ctx<'_>) -> Result<Token, PowerSchoolError> {
        let inner = &*self.inner;
        let mut url = inner.base.clone();
        push_segments(&mut url, &["oauth", "access_token"]);
        let mut attempt = 0;
        loop {
            attempt += 1;
            bump(&inner.counters.token_requests);
            let sent = Instant::now();
            let result = inner
                .http
                .post(url.clone())
                .basic_auth(&inner.client_id, Some(inner.client_secret.expose()))
                .header(
                    CONTENT_TYPE,
                    "application/x-www-form-urlencoded;charset=UTF-8",
                )
                .header(ACCEPT, "application/json")
                .body("grant_type=client_credentials")
                .send()
                .await;
            let failure = match result {
                Err(e) => Transient {
                    status: None,
                    error: describe_reqwest(&e),
                    retry_after: None,
                },
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let value = read_json(response).await.map_err(|detail| {
                            PowerSchoolError::TokenFailed {
                                url: inner.base.to_string(),
                                detail,
                            }
                        })?;
                        let answer = parse::token_answer(&value).map_err(|detail| {
                            PowerSchoolError::TokenFailed {
                                url: inner.base.to_string(),
                                detail,
                            }
                        })?;
                        let ttl = answer
                            .expires_in
                            .map(Duration::from_secs)
                            .unwrap_or(DEFAULT_TOKEN_TTL);
                        // Short lifetimes (tests, odd servers) still get a
                        // usable token: never renew earlier than half-way.
                        // Timed from the request, as the server's clock
                        // started no earlier.
                        let margin = inner.token_refresh_margin.min(ttl / 2);
                        let renew_at = (!ttl.is_zero()).then(|| sent + ttl - margin);
                        let generation = inner.generations.fetch_add(1, Ordering::Relaxed) + 1;
                        info!(
                            expires_in_secs = ttl.as_secs(),
                            generation, "PowerSchool access token issued"
                        );
                        return Ok(Token {
                            value: answer.access_token,
                            generation,
                            renew_at,
                        });
                    }
                    let text = excerpt(response).await;
                    if status == StatusCode::UNAUTHORIZED
                        || (status == StatusCode::BAD_REQUEST && text.contains("invalid_client"))
                    {
                        return Err(PowerSchoolError::BadCredentials {
                            url: inner.base.to_string(),
                            status: status.as_u16(),
                        });
                    }
                    if !status.is_server_error() {
                        return Err(PowerSchoolError::TokenFailed {
                            url: inner.base.to_string(),
                            detail: format!("HTTP {}: {text}", status.as_u16()),
                        });
                    }
                    bump(&inner.counters.server_errors);
                    Transient {
                        status: Some(status.as_u16()),
                        error: format!("server error: {text}"),
                        retry_after: None,
                    }
                }
            };
            if attempt >= inner.max_attempts {
                return Err(PowerSchoolError::GaveUp {
                    query: format!("the token request ({TOKEN_ENDPOINT}) for {}", ctx.query),
                    page: None,
                    attempts: attempt,
                    last_status: failure.status,
                    last_error: failure.error,
                });
            }
            let delay = self.backoff(attempt);
            bump(&inner.counters.retries);
            ctx.retries.fetch_add(1, Ordering::Relaxed);
            warn!(
                attempt,
                status = %failure.status.map_or("no HTTP answer".to_string(), |s| s.to_string()),
                error = %failure.error,
                retry_in_ms = delay.as_millis() as u64,
                "PowerSchool token request failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

fn school_args(school_number: i64) -> Value {
    json!({ "school_number": school_number.to_string() })
}

fn push_segments(url: &mut url::Url, segments: &[&str]) {
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
}

/// The whole body as JSON, or why not (cut off, not JSON at all).
async fn read_json(response: reqwest::Response) -> Result<Value, String> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("the answer was cut off: {}", describe_reqwest(&e)))?;
    let bytes_len = bytes.len();
    let parse = move || {
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "the answer ({} bytes) is not complete JSON (cut off?): {e}",
                bytes.len()
            )
        })
    };
    // A page is parsed on the blocking pool, so the pages of a fetch (all
    // polled by one task) are parsed on every core, not one.
    if bytes_len >= PARSE_ELSEWHERE_BYTES {
        tokio::task::spawn_blocking(parse)
            .await
            .unwrap_or_else(|e| Err(format!("parsing the answer failed: {e}")))
    } else {
        parse()
    }
}

/// Bodies at least this big are parsed off the fetch's task.
const PARSE_ELSEWHERE_BYTES: usize = 64 * 1024;

/// The start of an error body, for a message; never the whole HTML page.
async fn excerpt(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    if short.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {short}", status.as_u16())
    }
}

/// `Retry-After` in seconds; the HTTP-date form is left to normal backoff.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// reqwest's Display hides the cause ("error sending request"); the chain
/// says what actually happened (refused, reset, timed out).
fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn log_problems(problems: &[RecordProblem]) {
    for p in problems.iter().take(PROBLEMS_LOGGED) {
        warn!(
            query = %p.query,
            record = %p.record_id,
            field = %p.field,
            value = %p.value,
            message = %p.message,
            "PowerSchool record skipped"
        );
    }
    if problems.len() > PROBLEMS_LOGGED {
        warn!(
            more = problems.len() - PROBLEMS_LOGGED,
            "more PowerSchool records skipped; see the run's problem list"
        );
    }
}

/// `dcid=5001`, `guardianid=12, studentsdcid=5001`; or the record's place
/// when its key is incomplete.
fn record_id(query: &str, columns: Option<&Columns>, page: u32, index: usize) -> String {
    let place = format!("page {page}, record {}", index + 1);
    let Some(columns) = columns else {
        return place;
    };
    let keys: &[&str] = key_columns(query).unwrap_or(&["dcid"]);
    let parts: Vec<String> = keys
        .iter()
        .filter_map(|k| columns.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    if parts.len() == keys.len() {
        parts.join(", ")
    } else if parts.is_empty() {
        place
    } else {
        format!("{place} ({})", parts.join(", "))
    }
}

struct RawRecord {
    page: u32,
    index: usize,
    columns: Result<Columns, String>,
}

struct RawFetch {
    records: Vec<RawRecord>,
    expected_count: u64,
    duplicates: u64,
    pages: u32,
}

/// Collects pages in page order and drops repeated keys.
struct Accumulator {
    keys: Option<&'static [&'static str]>,
    seen: HashSet<String>,
    records: Vec<RawRecord>,
    duplicates: u64,
}

impl Accumulator {
    fn new(query: &str) -> Self {
        Accumulator {
            keys: key_columns(query),
            seen: HashSet::new(),
            records: Vec::new(),
            duplicates: 0,
        }
    }

    /// Returns how many records of the page were new.
    fn add_page(&mut self, page: u32, records: Vec<Value>) -> usize {
        let mut new = 0;
        for (index, record) in records.into_iter().enumerate() {
            let columns = parse::record_columns(&record);
            // Queries without a known key are never de-duplicated (their rows
            // may legitimately repeat); the fingerprint only tells whether a
            // page brought anything new.
            let fingerprint = match (&columns, self.keys) {
                (Ok(c), Some(keys)) => {
                    let parts: Option<Vec<&str>> =
                        keys.iter().map(|k| c.get(*k).map(String::as_str)).collect();
                    parts.map(|p| p.join("\u{1f}"))
                }
                _ => None,
            };
            match fingerprint.map(|key| self.seen.insert(key)) {
                Some(false) => self.duplicates += 1,
                Some(true) => {
                    new += 1;
                    self.records.push(RawRecord {
                        page,
                        index,
                        columns,
                    });
                }
                None => {
                    if self.seen.insert(format!("{page}\u{1f}{record}")) {
                        new += 1;
                    }
                    self.records.push(RawRecord {
                        page,
                        index,
                        columns,
                    });
                }
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_name_the_key_or_the_place() {
        let mut c = Columns::new();
        c.insert("dcid".into(), "abc".into());
        assert_eq!(record_id(STUDENTS_QUERY, Some(&c), 3, 4), "dcid=abc");
        assert_eq!(record_id(STUDENTS_QUERY, None, 3, 4), "page 3, record 5");
        c.insert("guardianid".into(), "12".into());
        assert_eq!(
            record_id(GUARDIANS_QUERY, Some(&c), 1, 0),
            "page 1, record 1 (guardianid=12)"
        );
        c.insert("studentsdcid".into(), "5001".into());
        assert_eq!(
            record_id(GUARDIANS_QUERY, Some(&c), 1, 0),
            "guardianid=12, studentsdcid=5001"
        );
    }

    #[test]
    fn duplicates_are_dropped_by_key_only_for_known_queries() {
        let page = vec![
            json!({"dcid": "1"}),
            json!({"dcid": 1}),
            json!({"dcid": "2"}),
            json!({"name": "no key"}),
        ];
        let mut known = Accumulator::new(STUDENTS_QUERY);
        assert_eq!(known.add_page(1, page.clone()), 3);
        assert_eq!((known.records.len(), known.duplicates), (3, 1));
        assert_eq!(known.add_page(2, vec![json!({"dcid": "2"})]), 0);
        let mut unknown = Accumulator::new("org.example.other");
        unknown.add_page(1, page);
        assert_eq!((unknown.records.len(), unknown.duplicates), (4, 0));
    }
}
