//! The one retry policy of the PowerSchool client, for the token request and
//! for every data request alike (driven by `backon`): which failures get
//! another attempt (the caller says, as `Failure::Transient`), how long to
//! wait (exponential from `powerschool.backoff_initial`, capped at
//! `powerschool.backoff_max`, the upper half jittered, or the server's
//! `Retry-After` when it sent one), how many attempts (`powerschool.max_attempts`),
//! the warning logged before each retry, and the error given up with.

use super::error::PowerSchoolError;
use super::stats::{bump, Counters, Ctx};
use crate::config::PowerSchoolSettings;
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tracing::warn;

/// Why one attempt failed in a way another attempt may fix.
#[derive(Debug)]
pub(super) struct Transient {
    pub(super) status: Option<u16>,
    pub(super) error: String,
    /// What the server asked us to wait (429 `Retry-After`, "wait N seconds").
    pub(super) retry_after: Option<Duration>,
}

impl Transient {
    /// A failure with no HTTP answer and no wish from the server.
    pub(super) fn unanswered(error: String) -> Self {
        Transient {
            status: None,
            error,
            retry_after: None,
        }
    }

    /// A failure the server answered with `status`.
    pub(super) fn answered(status: u16, error: String) -> Self {
        Transient {
            status: Some(status),
            error,
            retry_after: None,
        }
    }

    fn status_text(&self) -> String {
        self.status
            .map_or("no HTTP answer".to_string(), |s| s.to_string())
    }
}

/// How one attempt ended when it did not succeed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Another attempt may succeed.
    Transient(Transient),
    /// Asking again will not change the answer.
    Final(PowerSchoolError),
}

impl From<PowerSchoolError> for Failure {
    fn from(error: PowerSchoolError) -> Self {
        Failure::Final(error)
    }
}

/// What is being retried, for the retry warning and the gave-up error.
#[derive(Debug, Clone, Copy)]
pub(super) enum Subject {
    /// `POST /oauth/access_token`, on behalf of the query in the `Ctx`.
    Token { endpoint: &'static str },
    /// A data request of the query in the `Ctx`: a page, or the count or
    /// single request (`None`).
    Request { page: Option<u32> },
}

impl Subject {
    fn log_retry(self, ctx: &Ctx<'_>, attempt: u32, failure: &Transient, delay: Duration) {
        let retry_in_ms = delay.as_millis() as u64;
        match self {
            Subject::Token { .. } => warn!(
                attempt,
                status = %failure.status_text(),
                error = %failure.error,
                retry_in_ms,
                "PowerSchool token request failed, retrying"
            ),
            Subject::Request { page } => warn!(
                query = ctx.query,
                page = page.map(|p| p as i64).unwrap_or(-1),
                attempt,
                status = %failure.status_text(),
                error = %failure.error,
                retry_in_ms,
                "PowerSchool request failed, retrying"
            ),
        }
    }

    fn gave_up(self, ctx: &Ctx<'_>, attempts: u32, last: Transient) -> PowerSchoolError {
        let (query, page) = match self {
            Subject::Token { endpoint } => (
                format!("the token request ({endpoint}) for {}", ctx.query),
                None,
            ),
            Subject::Request { page } => (ctx.query.to_string(), page),
        };
        PowerSchoolError::GaveUp {
            query,
            page,
            attempts,
            last_status: last.status,
            last_error: last.error,
        }
    }
}

/// The configured attempts and delays; cheap to copy into each part.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    max_attempts: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    /// The longest wait a server's request to wait is granted.
    throttle_max_wait: Duration,
}

impl RetryPolicy {
    pub(super) fn new(settings: &PowerSchoolSettings) -> Self {
        RetryPolicy {
            max_attempts: settings.max_attempts.max(1),
            backoff_initial: settings.backoff_initial,
            backoff_max: settings.backoff_max.max(settings.backoff_initial),
            throttle_max_wait: settings.throttle_max_wait,
        }
    }

    /// Exponential from `backoff_initial`, capped at `backoff_max`, with the
    /// upper half jittered so many concurrent requests do not retry in step:
    /// backon's jitter adds up to the delay itself, so half of each step
    /// jittered by up to as much again is the upper half of the full step.
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(self.backoff_initial / 2)
            .with_max_delay(self.backoff_max / 2)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }

    /// The wait before the next attempt: what the server asked (`Retry-After`
    /// or "wait N seconds", capped at `throttle_max_wait`) when it asked, else
    /// the backoff's; none when the attempts are used up.
    fn delay_after(&self, failure: &Failure, planned: Option<Duration>) -> Option<Duration> {
        let planned = planned?;
        match failure {
            Failure::Transient(Transient {
                retry_after: Some(wait),
                ..
            }) => Some((*wait).min(self.throttle_max_wait)),
            _ => Some(planned),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of
    /// attempts. Each retry is counted (client-wide and on the query) and
    /// logged; running out ends in `PowerSchoolError::GaveUp` with the last
    /// failure.
    pub(super) async fn run<T, Fut>(
        &self,
        subject: Subject,
        ctx: &Ctx<'_>,
        counters: &Counters,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, PowerSchoolError>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        let attempts = AtomicU32::new(0);
        let outcome = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            attempt()
        })
        .retry(self.backoff())
        .when(|failure| matches!(failure, Failure::Transient(_)))
        .adjust(|failure, planned| self.delay_after(failure, planned))
        .notify(|failure, delay| {
            if let Failure::Transient(transient) = failure {
                bump(&counters.retries);
                bump(&ctx.retries);
                let attempt = attempts.load(Ordering::Relaxed);
                subject.log_retry(ctx, attempt, transient, delay);
            }
        })
        .await;
        match outcome {
            Ok(value) => Ok(value),
            Err(Failure::Final(error)) => Err(error),
            Err(Failure::Transient(last)) => {
                Err(subject.gave_up(ctx, attempts.load(Ordering::Relaxed), last))
            }
        }
    }

    /// The planned waits, one per retry (for tests of the policy's shape).
    #[cfg(test)]
    fn planned_delays(&self) -> Vec<Duration> {
        use backon::BackoffBuilder;
        self.backoff().build().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::Progress;
    use super::*;
    use std::time::Instant;

    fn policy(attempts: u32, initial_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            backoff_initial: Duration::from_millis(initial_ms),
            backoff_max: Duration::from_millis(max_ms),
            throttle_max_wait: Duration::from_secs(20),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_in_the_upper_half() {
        let slack = Duration::from_micros(1);
        for _ in 0..50 {
            let delays = policy(8, 100, 1000).planned_delays();
            assert_eq!(delays.len(), 7, "one wait per retry");
            for (i, delay) in delays.iter().enumerate() {
                let ceiling = Duration::from_millis(100 << i).min(Duration::from_millis(1000));
                assert!(
                    *delay + slack >= ceiling / 2 && *delay <= ceiling + slack,
                    "retry {}: {delay:?} not within {:?}..={ceiling:?}",
                    i + 1,
                    ceiling / 2
                );
            }
        }
        assert!(policy(1, 100, 1000).planned_delays().is_empty());
    }

    #[test]
    fn a_requested_wait_replaces_the_backoff_capped_at_the_throttle_maximum() {
        let p = policy(4, 100, 1000);
        let planned = Some(Duration::from_millis(150));
        let asked = |secs| {
            Failure::Transient(Transient {
                retry_after: Some(Duration::from_secs(secs)),
                ..Transient::answered(429, "rate limited (429)".to_string())
            })
        };
        assert_eq!(p.delay_after(&asked(0), planned), Some(Duration::ZERO));
        assert_eq!(
            p.delay_after(&asked(30), planned),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            p.delay_after(&asked(3), planned),
            Some(Duration::from_secs(3))
        );
        let plain = Failure::Transient(Transient::answered(500, "server error".to_string()));
        assert_eq!(p.delay_after(&plain, planned), planned);
        assert_eq!(p.delay_after(&asked(0), None), None, "attempts used up");
    }

    #[tokio::test]
    async fn gives_up_after_the_attempts_and_never_retries_a_final_failure() {
        let progress = Progress::new("test");
        let ctx = Ctx::new("org.example.query", true, &progress);
        let counters = Counters::default();
        let started = Instant::now();
        let err = policy(4, 1, 2)
            .run::<(), _>(
                Subject::Request { page: Some(2) },
                &ctx,
                &counters,
                || async {
                    Err(Failure::Transient(Transient::answered(
                        503,
                        "server error".into(),
                    )))
                },
            )
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        match &err {
            PowerSchoolError::GaveUp {
                query,
                page,
                attempts,
                last_status,
                ..
            } => assert_eq!(
                (query.as_str(), *page, *attempts, *last_status),
                ("org.example.query", Some(2), 4, Some(503))
            ),
            other => panic!("expected GaveUp, got {other:?}"),
        }
        assert!(err.to_string().contains("powerschool.url"), "{err}");
        assert_eq!((ctx.retries(), counters.snapshot().retries), (3, 3));

        let calls = AtomicU32::new(0);
        let err = policy(4, 1, 2)
            .run::<(), _>(
                Subject::Token { endpoint: "/t" },
                &ctx,
                &counters,
                || async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err(Failure::Final(PowerSchoolError::TokenFailed {
                        url: "http://ps".into(),
                        detail: "HTTP 400".into(),
                    }))
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, PowerSchoolError::TokenFailed { .. }),
            "{err:?}"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
