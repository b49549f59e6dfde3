//! Reading what one HTTP exchange with PowerSchool said, shared by the token
//! and the data requests: the body as JSON (or why not), a short excerpt of an
//! error body, `Retry-After`, and what a failed send actually ran into.

use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use std::time::Duration;

/// Bodies at least this big are parsed off the fetch's task.
const PARSE_ELSEWHERE_BYTES: usize = 64 * 1024;

/// `base` with `segments` appended as path segments (each one escaped).
pub(super) fn url_with(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The whole body as JSON, or why not (cut off, not JSON at all).
pub(super) async fn read_json(response: reqwest::Response) -> Result<Value, String> {
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

/// The start of an error body, for a message; never the whole HTML page.
pub(super) async fn excerpt(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    excerpt_of(status, &text)
}

/// As `excerpt`, for a body already read.
pub(super) fn excerpt_of(status: u16, text: &str) -> String {
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    if short.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {short}")
    }
}

/// `Retry-After` in seconds; the HTTP-date form is left to normal backoff.
pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// reqwest's Display hides the cause ("error sending request"); the chain
/// says what actually happened (refused, reset, timed out).
pub(super) fn describe_reqwest(e: &reqwest::Error) -> String {
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
