//! Being a polite client: how many data requests are on the server at once,
//! and what a throttling reply looks like. A district can set a minimum
//! interval between a plugin's requests; PowerSchool then answers "too many
//! requests, wait N seconds" (with an undocumented status). The retry policy
//! waits as asked; after every `LOWER_AFTER` throttled replies the client
//! halves its requests in flight (never below one) for the rest of its life.
//! Also here: the readable message of a 401 that names a missing permission.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::warn;

/// Throttled replies that halve the requests in flight.
const LOWER_AFTER: u64 = 3;
/// A server's message is quoted at most this long.
const MESSAGE_CHARS: usize = 200;

/// The client-wide bound on data requests in flight.
pub(super) struct Limiter {
    permits: Semaphore,
    limit: AtomicUsize,
    /// Permits still to be retired after a lowering (they were in use).
    debt: Mutex<usize>,
    throttled: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// One request's place; dropping it frees the place (or retires it).
pub(super) struct Slot<'a> {
    limiter: &'a Limiter,
    permit: Option<SemaphorePermit<'a>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(permit) = self.permit.take() {
            let mut debt = self.limiter.debt.lock().unwrap_or_else(|e| e.into_inner());
            if *debt > 0 {
                *debt -= 1;
                permit.forget();
            }
        }
    }
}

impl Limiter {
    pub(super) fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Limiter {
            permits: Semaphore::new(limit),
            limit: AtomicUsize::new(limit),
            debt: Mutex::new(0),
            throttled: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        }
    }

    /// Waits for a place among the requests in flight.
    pub(super) async fn slot(&self) -> Slot<'_> {
        // The semaphore is never closed, so `ok()` is always a permit.
        let permit = self.permits.acquire().await.ok();
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        Slot {
            limiter: self,
            permit,
        }
    }

    /// Counts a throttled reply; every `LOWER_AFTER`th halves the limit.
    pub(super) fn throttled(&self, query: &str) {
        let count = self.throttled.fetch_add(1, Ordering::Relaxed) + 1;
        if !count.is_multiple_of(LOWER_AFTER) {
            return;
        }
        let mut debt = self.debt.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.limit.load(Ordering::Relaxed);
        let new = (old / 2).max(1);
        if new == old {
            return;
        }
        self.limit.store(new, Ordering::Relaxed);
        *debt += old - new;
        let retired = self.permits.forget_permits(*debt);
        *debt -= retired;
        warn!(
            query,
            throttled = count,
            from = old,
            to = new,
            "PowerSchool keeps throttling student-sync: fewer requests at once for the rest of this run"
        );
    }

    pub(super) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed) as u64
    }

    pub(super) fn throttled_count(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    pub(super) fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::Relaxed)
    }
}

/// What a throttling reply asks: `Some(Some(wait))` for "wait N seconds",
/// `Some(None)` for "too many requests" without a number, `None` when the
/// text is not a throttling reply.
pub(super) fn throttle_reply(text: &str) -> Option<Option<Duration>> {
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some((_, after_wait)) = rest.split_once("wait") {
        rest = after_wait;
        let after = rest.trim_start_matches([' ', ':', '\t']);
        let unit = after.trim_start_matches(|c: char| c.is_ascii_digit());
        let digits = after.strip_suffix(unit).unwrap_or_default();
        let unit = unit.trim_start();
        if !digits.is_empty() && unit.starts_with("sec") {
            return digits.parse().ok().map(|n| Some(Duration::from_secs(n)));
        }
    }
    lower.contains("too many requests").then_some(None)
}

/// The message of a 401 that names a missing permission (e.g. `{"errorMessage":
/// {"message": "Plugin is missing required accessLevelV1Api READ permission"}}`),
/// without control characters and at most `MESSAGE_CHARS` long; None for a
/// 401 that does not (an expired token).
pub(super) fn permission_message(body: &str) -> Option<String> {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(json) => [
            "/errorMessage/message",
            "/errorMessage",
            "/message",
            "/error_description",
            "/error",
        ]
        .iter()
        .find_map(|p| json.pointer(p).and_then(|v| v.as_str()).map(str::to_string))?,
        // A short plain-text answer may say it too; an HTML page is not read.
        Err(_) if body.len() <= 1000 && !body.trim_start().starts_with('<') => body.to_string(),
        Err(_) => return None,
    };
    if !text.to_ascii_lowercase().contains("permission") {
        return None;
    }
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut short: String = clean.chars().take(MESSAGE_CHARS).collect();
    if short.len() < clean.len() {
        short.push('…');
    }
    Some(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_replies_and_their_waits() {
        let secs = |n| Some(Some(Duration::from_secs(n)));
        assert_eq!(throttle_reply("Too many requests, wait 5 seconds"), secs(5));
        assert_eq!(
            throttle_reply(r#"{"message":"too many requests, please wait: 12 sec"}"#),
            secs(12)
        );
        assert_eq!(throttle_reply("Too Many Requests"), Some(None));
        assert_eq!(throttle_reply("wait for it"), None);
        assert_eq!(
            throttle_reply(r#"{"message":"Internal Server Error"}"#),
            None
        );
    }

    #[test]
    fn permission_messages_are_read_and_cleaned() {
        let body = r#"{"errorMessage":{"message":"Plugin is missing required accessLevelV1Api READ permission"}}"#;
        assert_eq!(
            permission_message(body).as_deref(),
            Some("Plugin is missing required accessLevelV1Api READ permission")
        );
        assert_eq!(
            permission_message(r#"{"error":"invalid_token","message":"expired bearer token"}"#),
            None
        );
        assert_eq!(permission_message("<html>permission</html>"), None);
        let long = format!(r#"{{"message":"no permission\u0007{}"}}"#, "x".repeat(500));
        let m = permission_message(&long).unwrap();
        assert!(m.starts_with("no permission x"), "{m}");
        assert_eq!(m.chars().count(), MESSAGE_CHARS + 1);
    }

    #[tokio::test]
    async fn throttling_halves_the_limit_down_to_one() {
        let limiter = Limiter::new(4);
        let held = [
            limiter.slot().await,
            limiter.slot().await,
            limiter.slot().await,
        ];
        for _ in 0..3 {
            limiter.throttled("q");
        }
        assert_eq!(limiter.limit(), 2);
        drop(held);
        assert_eq!(
            limiter.permits.available_permits(),
            2,
            "places in use when the limit fell are retired as they come back"
        );
        for _ in 0..6 {
            limiter.throttled("q");
        }
        assert_eq!(
            (limiter.limit(), limiter.permits.available_permits()),
            (1, 1)
        );
        assert_eq!((limiter.throttled_count(), limiter.max_in_flight()), (9, 3));
    }
}
