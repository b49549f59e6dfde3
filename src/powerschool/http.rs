//! Reading what one HTTP exchange with PowerSchool said, shared by the token
//! and the data requests: the body as JSON (or why not), a short excerpt of an
//! error body, `Retry-After`, and what a failed send actually ran into.

use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use std::time::Duration;

/// Bodies at least this big are parsed off the fetch's task.
const PARSE_ELSEWHERE_BYTES: usize = 64 * 1024;

/// Pages parsed at once, process-wide: one per core. Parsing is CPU work;
/// with many requests in flight, pages arriving together would otherwise
/// each get a blocking thread of their own, and every such thread keeps
/// its own allocator cache (64 requests in flight cost 300 MB that way).
/// A page waiting for a slot keeps its request's place in the client's
/// bound meanwhile, so on few cores the server may see fewer requests than
/// the bound allows: the fetch is then bound by parsing, not by the server.
static PARSE_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(cores)
});

/// `base` with `segments` appended as path segments (each one escaped).
pub(super) fn url_with(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Error bodies and the token answer are read up to this many bytes: an
/// excerpt or a token never needs more.
pub(super) const SMALL_BODY_BYTES: usize = 64 * 1024;

/// Why an answer's body cannot be used.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The body is larger than `limit` bytes (said so by its length, or
    /// found while reading); reading stopped there.
    TooLarge { limit: usize },
    /// Cut off, or not complete JSON.
    Broken(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge { limit } => {
                write!(f, "the answer is larger than {limit} bytes")
            }
            ReadError::Broken(detail) => f.write_str(detail),
        }
    }
}

/// The body, read chunk by chunk, refused as soon as it passes `limit`
/// bytes. A `Content-Length` above the limit is refused unread; below it, it
/// is only a hint, never trusted to size a buffer.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(ReadError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        ReadError::Broken(format!("the answer was cut off: {}", describe_reqwest(&e)))
    })? {
        if chunk.len() > limit.saturating_sub(body.len()) {
            return Err(ReadError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How a 200's body becomes data: parsed from its bytes, or found to be a
/// throttling message in a 200's clothing.
pub(super) trait Decode: Clone + Send + Sync + 'static {
    type Out: Send + 'static;
    /// Only a JSON syntax error (a body cut off) is an `Err`.
    fn decode(&self, bytes: &[u8]) -> Result<Decoded<Self::Out>, serde_json::Error>;
}

/// What a 200's body turned out to be.
pub(super) enum Decoded<T> {
    Data(T),
    /// A throttling message: the wait it asks, and the message.
    Throttled {
        wait: Option<Duration>,
        what: String,
    },
}

/// A body as a `serde_json::Value` (counts, probes, the raw pages).
#[derive(Clone, Copy)]
pub(super) struct JsonDecode;

impl Decode for JsonDecode {
    type Out = Value;
    fn decode(&self, bytes: &[u8]) -> Result<Decoded<Value>, serde_json::Error> {
        let value: Value = serde_json::from_slice(bytes)?;
        Ok(match throttled_page(&value) {
            Some(wait) => Decoded::Throttled {
                wait,
                what: value.to_string(),
            },
            None => Decoded::Data(value),
        })
    }
}

/// A 200 that is no page or count but a throttling message: the wait it asks.
pub(super) fn throttled_page(value: &Value) -> Option<Option<Duration>> {
    let object = value.as_object()?;
    if object.contains_key("record") || object.contains_key("count") {
        return None;
    }
    super::throttle::throttle_reply(&value.to_string())
}

/// The whole body (at most `limit` bytes) as JSON, or why not.
pub(super) async fn read_json(
    response: reqwest::Response,
    limit: usize,
) -> Result<Value, ReadError> {
    let bytes = read_capped(response, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| broken(bytes.len(), &e))
}

fn broken(len: usize, e: &serde_json::Error) -> ReadError {
    ReadError::Broken(format!(
        "the answer ({len} bytes) is not complete JSON (cut off?): {e}"
    ))
}

/// The whole body (at most `limit` bytes) decoded, or why not. The bytes
/// are freed as soon as they are decoded.
pub(super) async fn read_decoded<D: Decode>(
    response: reqwest::Response,
    limit: usize,
    decoder: &D,
) -> Result<Decoded<D::Out>, ReadError> {
    let bytes = read_capped(response, limit).await?;
    let bytes_len = bytes.len();
    let decoder = decoder.clone();
    let parse = move || decoder.decode(&bytes).map_err(|e| broken(bytes.len(), &e));
    // A page is parsed on the blocking pool, so the pages of a fetch (all
    // polled by one task) are parsed on every core, not one.
    if bytes_len >= PARSE_ELSEWHERE_BYTES {
        // The semaphore is never closed, so a permit always comes.
        let _slot = PARSE_SLOTS.acquire().await;
        tokio::task::spawn_blocking(parse)
            .await
            .unwrap_or_else(|e| Err(ReadError::Broken(format!("parsing the answer failed: {e}"))))
    } else {
        parse()
    }
}

/// The start of a body as text, for a message: at most `SMALL_BODY_BYTES`
/// are read, the rest is never downloaded.
pub(super) async fn text_start(mut response: reqwest::Response) -> String {
    let mut body: Vec<u8> = Vec::new();
    while body.len() < SMALL_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = SMALL_BODY_BYTES.saturating_sub(body.len());
                body.extend(chunk.iter().take(room));
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The start of an error body, for a message; never the whole HTML page.
pub(super) async fn excerpt(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let text = text_start(response).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A decoder that notes how many decodes run at once.
    #[derive(Clone, Default)]
    struct Counting {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Decode for Counting {
        type Out = ();
        fn decode(&self, _: &[u8]) -> Result<Decoded<()>, serde_json::Error> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            // Long enough for the other pages to arrive meanwhile.
            std::thread::sleep(Duration::from_millis(20));
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(Decoded::Data(()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_arriving_together_are_parsed_at_most_one_per_core_at_once() {
        let decoder = Counting::default();
        let body = vec![b' '; PARSE_ELSEWHERE_BYTES];
        let reads = (0..24).map(|_| {
            let response = reqwest::Response::from(http::Response::new(body.clone()));
            read_decoded(response, usize::MAX, &decoder)
        });
        for read in futures::future::join_all(reads).await {
            assert!(matches!(read, Ok(Decoded::Data(()))));
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let most = decoder.most.load(Ordering::SeqCst);
        assert!(
            (1..=cores).contains(&most),
            "{most} pages parsed at once on {cores} cores"
        );
    }
}
