//! The OAuth client-credentials token every data request carries: fetched on
//! first use, shared by all concurrent requests, renewed shortly before it
//! expires and once when a request is refused with 401. The token request is
//! retried by the same policy as the data requests, but only when the server
//! could not answer (connection errors, timeouts, 5xx): any other refusal will
//! not change by asking again.

use super::error::PowerSchoolError;
use super::http::{describe_reqwest, excerpt, read_json, url_with, SMALL_BODY_BYTES};
use super::parse;
use super::retry::{Failure, RetryPolicy, Subject, Transient};
use super::stats::{bump, Counters, Ctx};
use crate::config::{PowerSchoolSettings, Secret};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::info;

const TOKEN_ENDPOINT: &str = "/oauth/access_token";
/// What a real server says when `expires_in` is missing or unreadable.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3599);
/// The longest lifetime a token is trusted for, whatever `expires_in` says
/// (a server may send nonsense such as 2^64 - 1): renewed at least daily.
pub(super) const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone)]
pub(super) struct Token {
    pub(super) value: String,
    /// Lets a caller that got a 401 tell whether someone already renewed.
    pub(super) generation: u64,
    /// None: the server gave no usable lifetime (`expires_in` 0), so the
    /// token is kept until a call is refused with 401.
    renew_at: Option<Instant>,
    /// The lifetime the server gave (`expires_in`), for `doctor`.
    pub(super) lifetime: Duration,
}

/// The credentials, the cached token and how to get a new one.
pub(super) struct Tokens {
    http: reqwest::Client,
    /// The server, as named in errors.
    base: url::Url,
    endpoint: url::Url,
    pub(super) client_id: String,
    client_secret: Secret,
    refresh_margin: Duration,
    policy: RetryPolicy,
    /// Held while a token is fetched, so concurrent callers wait for one
    /// token call instead of each making their own.
    current: tokio::sync::Mutex<Option<Token>>,
    generations: AtomicU64,
}

impl Tokens {
    pub(super) fn new(
        http: reqwest::Client,
        settings: &PowerSchoolSettings,
        policy: RetryPolicy,
    ) -> Self {
        Tokens {
            http,
            base: settings.url.clone(),
            endpoint: url_with(&settings.url, &["oauth", "access_token"]),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            refresh_margin: settings.token_refresh_margin,
            policy,
            current: tokio::sync::Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// The current token, fetching one when there is none or it is due.
    /// `stale` is the generation a 401 was answered to: it is replaced unless
    /// another request already did.
    pub(super) async fn current(
        &self,
        stale: Option<u64>,
        ctx: &Ctx<'_>,
        counters: &Counters,
    ) -> Result<Token, PowerSchoolError> {
        let mut guard = self.current.lock().await;
        if let Some(current) = guard.as_ref() {
            let refused = stale == Some(current.generation);
            let due = current.renew_at.is_some_and(|at| Instant::now() >= at);
            if !refused && !due {
                return Ok(current.clone());
            }
        }
        let fresh = self
            .policy
            .run(
                Subject::Token {
                    endpoint: TOKEN_ENDPOINT,
                },
                ctx,
                counters,
                || self.request(counters),
            )
            .await?;
        *guard = Some(fresh.clone());
        Ok(fresh)
    }

    /// One `POST /oauth/access_token`.
    async fn request(&self, counters: &Counters) -> Result<Token, Failure> {
        bump(&counters.token_requests);
        let sent = Instant::now();
        let response = self
            .http
            .post(self.endpoint.clone())
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .header(ACCEPT, "application/json")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| Failure::Transient(Transient::unanswered(describe_reqwest(&e))))?;
        let status = response.status();
        if status.is_success() {
            let value = read_json(response, SMALL_BODY_BYTES)
                .await
                .map_err(|e| self.failed(e.to_string()))?;
            return Ok(self.issued(&value, sent)?);
        }
        Err(self.refused(status, excerpt(response).await, counters))
    }

    /// Why a token request that was not answered with a token failed: bad
    /// credentials and other refusals are final, only 5xx is retried.
    fn refused(&self, status: StatusCode, text: String, counters: &Counters) -> Failure {
        if status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::BAD_REQUEST && text.contains("invalid_client"))
        {
            return Failure::Final(PowerSchoolError::BadCredentials {
                url: self.base.to_string(),
                status: status.as_u16(),
            });
        }
        if !status.is_server_error() {
            return Failure::Final(self.failed(format!("HTTP {}: {text}", status.as_u16())));
        }
        bump(&counters.server_errors);
        Failure::Transient(Transient::answered(
            status.as_u16(),
            format!("server error: {text}"),
        ))
    }

    /// The token in a 200 answer, due for renewal before it expires.
    fn issued(&self, answer: &serde_json::Value, sent: Instant) -> Result<Token, PowerSchoolError> {
        let answer = parse::token_answer(answer).map_err(|detail| self.failed(detail))?;
        let ttl = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_TTL)
            .min(MAX_TOKEN_TTL);
        // Short lifetimes (tests, odd servers) still get a usable token:
        // never renew earlier than half-way. Timed from the request, as the
        // server's clock started no earlier.
        let margin = self.refresh_margin.min(ttl / 2);
        // Checked: a renewal time past what the clock can hold means "keep
        // it until refused", never a panic.
        let renew_at = if ttl.is_zero() {
            None
        } else {
            sent.checked_add(ttl.saturating_sub(margin))
        };
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        info!(
            expires_in_secs = ttl.as_secs(),
            generation, "PowerSchool access token issued"
        );
        Ok(Token {
            value: answer.access_token,
            generation,
            renew_at,
            lifetime: ttl,
        })
    }

    fn failed(&self, detail: String) -> PowerSchoolError {
        PowerSchoolError::TokenFailed {
            url: self.base.to_string(),
            detail,
        }
    }
}
