//! The fake's HTTP side: OAuth client-credentials tokens, PowerQuery pages
//! and counts, `/ws/v1` refused as on PowerSchool 25.2, and the switches that
//! make it answer like a real server (throttling, a page-size cap, queries
//! not installed) or a failing one (faults on PowerQuery pages).

use super::counters::{bump, Counters};
use super::data::{parse_args, Dataset, QueryKind, Selection};
use super::render::apply_override;
use super::{FakeCredentials, Faults};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use base64::Engine;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A real server's token lifetime.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3599);
/// PowerSchool's page size when the request names none.
const DEFAULT_PAGE_SIZE: usize = 100;

pub(crate) struct Shared {
    pub(super) data: Dataset,
    credentials: FakeCredentials,
    pub(super) faults: Faults,
    /// Overrides by query, so a page only looks at its own.
    overrides: HashMap<QueryKind, Vec<(usize, String, serde_json::Value)>>,
    tokens: Mutex<HashMap<String, Instant>>,
    token_uses: Mutex<HashMap<String, u64>>,
    pub(crate) counters: Counters,
    /// How many PowerQuery pages have reached the fault stage; the n-th one's
    /// fate depends only on n and the seed, whatever the concurrency.
    fault_ordinal: AtomicU64,
    /// PowerQuery page and count requests past authentication, for
    /// `throttle_every`.
    throttle_ordinal: AtomicU64,
}

impl Shared {
    pub(crate) fn new(data: Dataset, credentials: FakeCredentials, faults: Faults) -> Shared {
        let mut overrides: HashMap<QueryKind, Vec<_>> = HashMap::new();
        for o in &faults.overrides {
            if let Some(kind) = QueryKind::from_name(&o.query) {
                overrides.entry(kind).or_default().push((
                    o.record_index,
                    o.field.clone(),
                    o.value.clone(),
                ));
            }
        }
        Shared {
            data,
            credentials,
            faults,
            overrides,
            tokens: Mutex::new(HashMap::new()),
            token_uses: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            fault_ordinal: AtomicU64::new(0),
            throttle_ordinal: AtomicU64::new(0),
        }
    }

    pub(crate) fn student_count(&self) -> usize {
        self.data.student_count
    }

    fn token_ttl(&self) -> Duration {
        self.faults.token_ttl.unwrap_or(DEFAULT_TOKEN_TTL)
    }

    /// None when the request carries a valid unexpired Bearer token.
    pub(super) fn check_bearer(&self, headers: &HeaderMap) -> Option<Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let reason = match token {
            None => "missing bearer token",
            Some(t) => {
                let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
                match tokens.get(t) {
                    None => "unknown bearer token",
                    Some(expiry) if Instant::now() >= *expiry => "expired bearer token",
                    Some(_) if self.used_up(t) => "expired bearer token (used up)",
                    Some(_) => return None,
                }
            }
        };
        tracing::debug!(reason, "fake PowerSchool: 401");
        bump(&self.counters.answered_401);
        Some(json_value(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid_token", "message": reason}),
        ))
    }

    /// With `Faults::token_uses`: counts one use of `token`, true when it
    /// had none left.
    fn used_up(&self, token: &str) -> bool {
        let Some(limit) = self.faults.token_uses else {
            return false;
        };
        let mut uses = self
            .token_uses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let used = uses.entry(token.to_string()).or_insert(0);
        if *used >= limit {
            return true;
        }
        *used += 1;
        false
    }

    fn decide_fault(&self) -> PageFault {
        let n = self.fault_ordinal.fetch_add(1, Ordering::Relaxed);
        let f = &self.faults;
        let a = u64::from(f.fail_first);
        let b = a + u64::from(f.rate_limit_first);
        let c = b + u64::from(f.truncate_first);
        if n < a {
            return PageFault::Error;
        }
        if n < b {
            return PageFault::RateLimit;
        }
        if n < c {
            return PageFault::Truncate;
        }
        if f.error_rate <= 0.0 && f.rate_limit_rate <= 0.0 && f.truncate_rate <= 0.0 {
            return PageFault::None;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(splitmix64(f.seed ^ splitmix64(n)));
        let (r1, r2, r3): (f64, f64, f64) = (rng.gen(), rng.gen(), rng.gen());
        if r1 < f.error_rate {
            PageFault::Error
        } else if r2 < f.rate_limit_rate {
            PageFault::RateLimit
        } else if r3 < f.truncate_rate {
            PageFault::Truncate
        } else {
            PageFault::None
        }
    }

    fn always_fails(&self, kind: QueryKind) -> bool {
        self.faults
            .always_fail_queries
            .iter()
            .any(|q| q == kind.name())
    }

    fn server_error(&self, why: &str) -> Response {
        bump(&self.counters.answered_500);
        json_value(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"message": format!("Internal Server Error ({why})")}),
        )
    }
}

enum PageFault {
    None,
    Error,
    RateLimit,
    Truncate,
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/access_token", post(token))
        .route("/ws/v1/{*resource}", any(v1_locked))
        .route("/ws/schema/query/{name}", post(query_page))
        .route("/ws/schema/query/{name}/count", post(query_count))
        .fallback(|| async {
            json_value(
                StatusCode::NOT_FOUND,
                serde_json::json!({"message": "Not Found"}),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            super::schema::answer,
        ))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

fn json_value(status: StatusCode, body: serde_json::Value) -> Response {
    json_response(status, body.to_string())
}

fn bad_request(message: String) -> Response {
    json_value(
        StatusCode::BAD_REQUEST,
        serde_json::json!({"message": message}),
    )
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    bump(&s.counters.token_requests);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let ok = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => {
            id == s.credentials.client_id && secret == s.credentials.client_secret
        }
        None => false,
    };
    if !ok {
        tracing::debug!("fake PowerSchool: token refused (bad client credentials)");
        bump(&s.counters.answered_401);
        return json_value(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid_client",
                "error_description": "Bad client credentials"}),
        );
    }
    let grant_ok = url::form_urlencoded::parse(&body)
        .any(|(k, v)| k == "grant_type" && v == "client_credentials");
    if !grant_ok {
        return json_value(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "unsupported_grant_type"}),
        );
    }
    let ttl = s.token_ttl();
    let token = format!("{:032x}", rand::thread_rng().gen::<u128>());
    s.tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(token.clone(), Instant::now() + ttl);
    tracing::debug!(
        ttl_ms = ttl.as_millis() as u64,
        "fake PowerSchool: token issued"
    );
    json_value(
        StatusCode::OK,
        serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": s.faults.token_expires_in.clone().unwrap_or_else(|| ttl.as_secs().to_string()),
        }),
    )
}

/// PowerSchool 25.2 and later refuse `/ws/v1` to a plugin without
/// `accessLevelV1Api="READ"`, valid token or not.
async fn v1_locked(State(s): State<Arc<Shared>>) -> Response {
    bump(&s.counters.v1_requests);
    bump(&s.counters.answered_401);
    json_value(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({"errorMessage": {
            "message": "Plugin is missing required accessLevelV1Api READ permission"
        }}),
    )
}

/// Auth, query lookup and arguments, common to pages and counts. The error
/// is the answer itself, sent at once, so its size does not matter.
#[allow(clippy::result_large_err)]
fn prepare(
    s: &Shared,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(QueryKind, Selection, Option<i64>), Response> {
    if let Some(r) = s.check_bearer(headers) {
        return Err(r);
    }
    if let Some(r) = s.throttle() {
        return Err(r);
    }
    if s.faults.missing_queries.iter().any(|q| q == name) {
        return Err(json_value(
            StatusCode::NOT_FOUND,
            serde_json::json!({"message": format!("Query {name} not found")}),
        ));
    }
    let kind = QueryKind::from_name(name).ok_or_else(|| {
        tracing::debug!(query = name, "fake PowerSchool: unknown query");
        json_value(
            StatusCode::NOT_FOUND,
            serde_json::json!({"message": format!("Named query not found: {name}")}),
        )
    })?;
    let body: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| bad_request(format!("the request body is not valid JSON: {e}")))?
    };
    let args = parse_args(kind, &body).map_err(bad_request)?;
    Ok((kind, s.data.select(kind, &args), args.school_number()))
}

async fn query_count(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bump(&s.counters.count_requests);
    let _in_flight = s.counters.in_flight(&name);
    let (kind, selection, school) = match prepare(&s, &name, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if s.always_fails(kind) {
        return s.server_error("always_fail_queries");
    }
    let count = s.counted(&name, school, selection.len());
    tracing::debug!(query = name, count, "fake PowerSchool: count");
    json_value(StatusCode::OK, serde_json::json!({ "count": count }))
}

fn parse_paging(params: &HashMap<String, String>) -> Result<(usize, usize), String> {
    let page = match params.get("page") {
        None => 1,
        Some(p) => p
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("page must be an integer starting at 1, got {p:?}"))?,
    };
    let size = match params.get("pagesize") {
        None => DEFAULT_PAGE_SIZE,
        Some(p) => p
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("pagesize must be a non-negative integer, got {p:?}"))?,
    };
    Ok((page, size))
}

async fn query_page(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bump(&s.counters.page_requests);
    let _in_flight = s.counters.in_flight(&name);
    let (kind, selection, school) = match prepare(&s, &name, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (page, size) = match parse_paging(&params) {
        Ok(x) => x,
        Err(e) => return bad_request(e),
    };
    let size = match s.faults.page_size_cap {
        Some(cap) if size == 0 || size > cap => {
            bump(&s.counters.capped_pages);
            cap
        }
        _ => size,
    };
    if !s.faults.page_latency.is_zero() {
        tokio::time::sleep(s.faults.page_latency).await;
    }
    let truncate = match s.page_fault(kind, &name, page) {
        Ok(truncate) => truncate,
        Err(answer) => return answer,
    };
    let records = match s.emptied(school) {
        true => 0..0,
        false => page_records(selection.len(), page, size),
    };
    let mut body = s.page_body(kind, &selection, records.clone(), page);
    s.counters
        .records_served
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    if truncate {
        bump(&s.counters.truncated);
        cut_in_half(&mut body);
        tracing::debug!(
            query = name,
            page,
            "fake PowerSchool: injected truncated body"
        );
    } else {
        tracing::debug!(
            query = name,
            page,
            pagesize = size,
            records = records.len(),
            "fake PowerSchool: page"
        );
    }
    json_response(StatusCode::OK, body)
}

impl Shared {
    /// Every `throttle_every`th PowerQuery request is told to wait.
    fn throttle(&self) -> Option<Response> {
        let every = u64::from(self.faults.throttle_every);
        let n = self.throttle_ordinal.fetch_add(1, Ordering::Relaxed) + 1;
        if every == 0 || !n.is_multiple_of(every) {
            return None;
        }
        bump(&self.counters.throttled);
        let status = self
            .faults
            .throttle_status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let wait = self.faults.throttle_wait_secs;
        tracing::debug!(n, wait, "fake PowerSchool: throttled");
        Some(json_value(
            status,
            serde_json::json!({"message": format!("Too many requests, wait {wait} seconds")}),
        ))
    }

    /// The fault switches' verdict on one page request: an always-failing
    /// query or page and an injected 500 or 429 are the answer itself (Err,
    /// sent at once, so its size does not matter); Ok says whether the page
    /// is to be cut off mid-JSON.
    #[allow(clippy::result_large_err)]
    fn page_fault(&self, kind: QueryKind, name: &str, page: usize) -> Result<bool, Response> {
        if self.always_fails(kind) {
            return Err(self.server_error("always_fail_queries"));
        }
        if self
            .faults
            .always_fail_pages
            .iter()
            .any(|&p| p as usize == page)
        {
            return Err(self.server_error("always_fail_pages"));
        }
        match self.decide_fault() {
            PageFault::Error => {
                tracing::debug!(query = name, page, "fake PowerSchool: injected 500");
                Err(self.server_error("injected fault"))
            }
            PageFault::RateLimit => {
                tracing::debug!(query = name, page, "fake PowerSchool: injected 429");
                bump(&self.counters.answered_429);
                let mut r = json_value(
                    StatusCode::TOO_MANY_REQUESTS,
                    serde_json::json!({"message": "Too Many Requests"}),
                );
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(self.faults.retry_after_secs),
                );
                Err(r)
            }
            PageFault::Truncate => Ok(true),
            PageFault::None => Ok(false),
        }
    }

    /// The page's JSON: the query name, the selected records in `records`
    /// (with any planted overrides), and the `@extensions` field.
    fn page_body(
        &self,
        kind: QueryKind,
        selection: &Selection,
        records: Range<usize>,
        page: usize,
    ) -> String {
        let mut body = String::with_capacity(64 + records.len() * 256);
        body.push_str("{\"name\":");
        body.push_str(&serde_json::Value::from(kind.name()).to_string());
        if !records.is_empty() {
            body.push_str(",\"record\":[");
            let selected =
                records.filter_map(|i| Some((i, self.data.record(kind, selection.get(i))?)));
            for (n, (i, record)) in selected.enumerate() {
                if n > 0 {
                    body.push(',');
                }
                match self.planted(kind, i, record) {
                    Some(planted) => body.push_str(&planted),
                    None => body.push_str(record),
                }
            }
            body.push(']');
        } else if page.is_multiple_of(2) {
            // Servers differ on an empty page: `record` missing or empty.
            body.push_str(",\"record\":[]");
        }
        body.push_str(",\"@extensions\":");
        body.push_str(&serde_json::Value::from(kind.extensions()).to_string());
        body.push('}');
        body
    }

    /// The `i`-th selected record with the test's overrides for it planted,
    /// in the order they were given; None when it has none.
    fn planted(&self, kind: QueryKind, i: usize, record: &str) -> Option<String> {
        let mut planted: Option<String> = None;
        let overrides = self.overrides.get(&kind);
        for (_, field, value) in overrides.iter().flat_map(|o| o.iter()).filter(|o| o.0 == i) {
            let base = planted.as_deref().unwrap_or(record);
            planted = Some(apply_override(base, field, value));
        }
        planted
    }
}

/// Which of the `total` selected records a page holds. Page size 0 means
/// everything on page 1 and nothing after.
fn page_records(total: usize, page: usize, size: usize) -> Range<usize> {
    if size == 0 {
        return if page == 1 { 0..total } else { total..total };
    }
    let start = (page - 1).saturating_mul(size).min(total);
    start..start.saturating_add(size).min(total)
}

/// Cuts a page's body off mid-JSON, at a character boundary.
fn cut_in_half(body: &mut String) {
    let mut cut = body.len() / 2;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body.truncate(cut);
}
