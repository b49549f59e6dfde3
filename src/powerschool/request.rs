//! One data request to PowerSchool, whole: it carries the current token, is
//! sent again with a new token once when refused with 401, and is retried by
//! the client's one retry policy when the failure is one another attempt may
//! fix (no answer, timeout, 5xx, 408, 429, a 200 whose body is cut off). A 200
//! counts only when its whole body is JSON: a page cut off mid-way is retried,
//! never half-used.

use super::error::PowerSchoolError;
use super::http::{
    describe_reqwest, excerpt_of, read_decoded, retry_after, text_start, url_with, Decode, Decoded,
    JsonDecode, ReadError,
};
use super::retry::{Failure, RetryPolicy, Subject, Transient};
use super::stats::{bump, Counters, Ctx};
use super::throttle::{permission_message, throttle_reply, Limiter};
use super::token::{Token, Tokens};
use crate::config::PowerSchoolSettings;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a request sends.
#[derive(Clone, Copy)]
pub(super) enum Body<'a> {
    /// A GET; no query of the sync uses one since the schools moved to a
    /// PowerQuery, but read-only diagnostic calls (schema probes) do.
    #[allow(dead_code)]
    Get,
    Json(&'a Value),
}

/// How one answer to a data request is taken.
enum Answer<T> {
    Data(T),
    /// 401: the token was refused.
    Unauthorized,
    Failed(Failure),
}

/// How many idle connections to PowerSchool the pool keeps open. Measured
/// at 150,000 students and 64 requests in flight: keeping them all, a first
/// sync peaked about 9 MB higher (its resident size); keeping 16, a fetch opened 83 connections
/// instead of about 70 (4 kept: 346, a new TLS handshake for every third
/// page).
const IDLE_CONNECTIONS_KEPT: usize = 16;

/// The HTTP connection pool, the token and the retry policy: everything a
/// data request needs, shared by every query of a client.
pub(super) struct Transport {
    http: reqwest::Client,
    pub(super) base: url::Url,
    pub(super) tokens: Tokens,
    policy: RetryPolicy,
    pub(super) counters: Counters,
    /// Data requests in flight, client-wide; lowered when throttled.
    pub(super) limiter: Limiter,
    /// `powerschool.max_page_bytes`: the largest page or count answer read.
    max_body_bytes: usize,
}

impl Transport {
    pub(super) fn new(settings: &PowerSchoolSettings) -> Result<Self, PowerSchoolError> {
        let mut builder = reqwest::Client::builder();
        // A loopback server (the only one plain http:// may reach) is never
        // reached through a proxy: HTTP(S)_PROXY would carry the token and
        // the records in clear to another machine.
        if crate::config::is_loopback_ip(settings.url.host()) {
            builder = builder.no_proxy();
        }
        let http = builder
            .use_rustls_tls()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(30)))
            // A redirect here is a login page or a wrong URL; following it
            // would turn a clear status into an unreadable HTML answer.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("student-sync/", env!("CARGO_PKG_VERSION")))
            // Each idle connection keeps its buffers: after a fetch at 64
            // requests in flight a heap profile found 10 MB of them at a
            // run's peak, which comes later, in the plan (see
            // `IDLE_CONNECTIONS_KEPT`).
            .pool_max_idle_per_host(IDLE_CONNECTIONS_KEPT)
            .build()
            .map_err(|e| PowerSchoolError::Setup {
                url: settings.url.to_string(),
                message: e.to_string(),
            })?;
        let policy = RetryPolicy::new(settings);
        Ok(Transport {
            tokens: Tokens::new(http.clone(), settings, policy),
            http,
            base: settings.url.clone(),
            policy,
            counters: Counters::default(),
            limiter: Limiter::new(settings.max_requests_in_flight),
            max_body_bytes: settings.answer_limits.max_page_bytes,
        })
    }

    /// The server's URL with `segments` appended to its path.
    pub(super) fn url(&self, segments: &[&str]) -> url::Url {
        url_with(&self.base, segments)
    }

    /// Sends one data request until it succeeds, fails for good, or runs out
    /// of attempts; its answer as JSON.
    pub(super) async fn call(
        &self,
        ctx: &Ctx<'_>,
        page: Option<u32>,
        url: &url::Url,
        body: Body<'_>,
    ) -> Result<Value, PowerSchoolError> {
        self.call_with(ctx, page, url, body, &JsonDecode).await
    }

    /// As `call`, the answer decoded by `decoder` straight from its bytes.
    pub(super) async fn call_with<D: Decode>(
        &self,
        ctx: &Ctx<'_>,
        page: Option<u32>,
        url: &url::Url,
        body: Body<'_>,
        decoder: &D,
    ) -> Result<D::Out, PowerSchoolError> {
        // One renewal per request, across all its attempts.
        let renewed = AtomicBool::new(false);
        self.policy
            .run(Subject::Request { page }, ctx, &self.counters, || {
                self.attempt(ctx, page, url, body, &renewed, decoder)
            })
            .await
    }

    /// One attempt: the request with the current token, and once per request
    /// again with a new one when the token is refused. An expired token is
    /// not a failed attempt.
    async fn attempt<D: Decode>(
        &self,
        ctx: &Ctx<'_>,
        page: Option<u32>,
        url: &url::Url,
        body: Body<'_>,
        renewed: &AtomicBool,
        decoder: &D,
    ) -> Result<D::Out, Failure> {
        // The token may have come due while we slept before this attempt.
        let mut token = self.tokens.current(None, ctx, &self.counters).await?;
        loop {
            match self.send(ctx, page, url, body, &token, decoder).await {
                Answer::Data(value) => return Ok(value),
                Answer::Failed(failure) => return Err(failure),
                Answer::Unauthorized if renewed.swap(true, Ordering::Relaxed) => {
                    return Err(Failure::Final(PowerSchoolError::Unauthorized {
                        query: ctx.query.to_string(),
                        page,
                    }));
                }
                Answer::Unauthorized => {
                    bump(&self.counters.unauthorized_renewals);
                    token = self
                        .tokens
                        .current(Some(token.generation), ctx, &self.counters)
                        .await?;
                }
            }
        }
    }

    async fn send<D: Decode>(
        &self,
        ctx: &Ctx<'_>,
        page: Option<u32>,
        url: &url::Url,
        body: Body<'_>,
        token: &Token,
        decoder: &D,
    ) -> Answer<D::Out> {
        let request = match body {
            Body::Get => self.http.get(url.clone()),
            Body::Json(args) => self.http.post(url.clone()).json(args),
        }
        .bearer_auth(&token.value)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/json");
        // Held until the answer is read and judged.
        let _slot = self.limiter.slot().await;
        match request.send().await {
            Err(e) => Answer::Failed(Failure::Transient(Transient::unanswered(describe_reqwest(
                &e,
            )))),
            Ok(response) => self.judge(ctx, page, response, decoder).await,
        }
    }

    /// What an answer means: data, a refused token, a throttling reply, a
    /// failure worth another attempt, or one that asking again will not change.
    async fn judge<D: Decode>(
        &self,
        ctx: &Ctx<'_>,
        page: Option<u32>,
        response: reqwest::Response,
        decoder: &D,
    ) -> Answer<D::Out> {
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            return match read_decoded(response, self.max_body_bytes, decoder).await {
                Ok(Decoded::Data(data)) => Answer::Data(data),
                Ok(Decoded::Throttled { wait, what }) => self.throttled(ctx, code, wait, what),
                // Asking again brings the same oversized answer.
                Err(ReadError::TooLarge { limit }) => {
                    Answer::Failed(Failure::Final(PowerSchoolError::AnswerTooLarge {
                        query: ctx.query.to_string(),
                        page,
                        limit,
                    }))
                }
                Err(ReadError::Broken(error)) => {
                    Answer::Failed(Failure::Transient(Transient::answered(code, error)))
                }
            };
        }
        let header_wait = retry_after(&response);
        let text = text_start(response).await;
        if let Some(wait) = throttle_reply(&text) {
            return self.throttled(ctx, code, wait.or(header_wait), excerpt_of(code, &text));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return self.throttled(ctx, code, header_wait, "rate limited (429)".to_string());
        }
        let failure = if status == StatusCode::UNAUTHORIZED {
            match permission_message(&text) {
                Some(message) => Failure::Final(PowerSchoolError::PermissionMissing {
                    query: ctx.query.to_string(),
                    page,
                    message,
                }),
                None => return Answer::Unauthorized,
            }
        } else if status == StatusCode::NOT_FOUND && ctx.powerquery {
            Failure::Final(PowerSchoolError::QueryNotInstalled {
                query: ctx.query.to_string(),
            })
        } else if status == StatusCode::FORBIDDEN && ctx.powerquery {
            Failure::Final(PowerSchoolError::AccessDenied {
                query: ctx.query.to_string(),
            })
        } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            if status.is_server_error() {
                bump(&self.counters.server_errors);
            }
            let error = format!("server error: {}", excerpt_of(code, &text));
            Failure::Transient(Transient::answered(code, error))
        } else {
            Failure::Final(PowerSchoolError::Rejected {
                query: ctx.query.to_string(),
                page,
                status: code,
                detail: excerpt_of(code, &text),
            })
        };
        Answer::Failed(failure)
    }

    /// A throttling reply: counted (lowering the requests in flight when it
    /// keeps happening) and retried after the wait the server asked for.
    fn throttled<T>(
        &self,
        ctx: &Ctx<'_>,
        status: u16,
        wait: Option<Duration>,
        what: String,
    ) -> Answer<T> {
        if status == StatusCode::TOO_MANY_REQUESTS.as_u16() {
            bump(&self.counters.rate_limited);
        }
        self.limiter.throttled(ctx.query);
        Answer::Failed(Failure::Transient(Transient {
            retry_after: wait,
            ..Transient::answered(status, format!("throttled: {what}"))
        }))
    }
}
