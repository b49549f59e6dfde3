//! Paging through one PowerQuery so every record arrives exactly once: the
//! `/count`, page 1, the planned pages a few at a time, and the pages that
//! data grown during the fetch added; records whose key an earlier page
//! already had are dropped. Which columns make the key is the query's to say.
//!
//! Paging rule: pages 1..=ceil(count / page size) are fetched (page 1 first,
//! then the rest as many at a time as the client's bound on requests in
//! flight allows, added in order; once a full page of the size asked has
//! come back, the server is known to serve it, and later queries ask page 1
//! with the rest, a round trip less each; should that page 1 still show a
//! smaller cap, the query starts again, page 1 alone). Data can grow during the fetch,
//! so while the last page fetched is full the next one is fetched too, until
//! a page comes back short or empty, or brings nothing new (a server that
//! ignores `page` must not loop us forever). If page 1 comes back shorter than
//! asked although the count says there is more, the server caps the page
//! size: the client remembers the cap (`PageSize`), plans the pages with it
//! and asks for it from then on, on this query and every later one.
//!
//! Completeness rule: a partial answer is never used. A `/count` above
//! `powerschool.max_count` fails before any page is asked (the planned pages
//! follow the count, so a nonsense count must not be paged), and so do pages
//! past the count that keep bringing new records beyond that cap. A page that
//! comes back empty while fewer records than the count (less the tolerance)
//! have arrived stops paging and fails, naming the page. At the end, fewer
//! distinct records than the count, beyond the tolerance, fail the query.
//! The tolerance is `count_tolerance_percent` of the count or
//! `count_tolerance_records`, whichever is more: records deleted while a
//! query is paged are normal, a server that stops answering part-way is not.

use super::error::PowerSchoolError;
use super::http::{Decode, Decoded};
use super::last_counts::ceiling;
use super::page::{Failure, Key, Page, Parsed};
use super::parse;
use super::request::{Body, Transport};
use super::stats::{bump, Ctx};
use super::throttle::throttle_reply;
use crate::config::AnswerLimits;
use foldhash::{HashSet, HashSetExt};
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use tracing::warn;

/// The columns that make a record distinct; `None` never de-duplicates.
pub(super) type KeyColumns = Option<&'static [&'static str]>;

/// Records reserved up front at most, whatever `/count` says: a count is
/// believed up to `powerschool.max_count`, which is no size to allocate.
const RESERVE_AT_MOST: u64 = 1 << 20;

/// How one query's pages are read from their bytes.
pub(super) trait PageRead: Clone + Send + Sync + 'static {
    type Item: Send + 'static;
    /// Page `page`'s records; only a JSON syntax error is an `Err`.
    fn read(&self, page: u32, bytes: &[u8]) -> Result<Page<Self::Item>, serde_json::Error>;
    /// Fails when page 1 shows that the query cannot be read at all.
    fn check_first_page(
        &self,
        query: &str,
        page: &Page<Self::Item>,
    ) -> Result<(), PowerSchoolError>;
}

/// One page of `reader` as the transport decodes it.
#[derive(Clone)]
struct PageDecode<R> {
    reader: R,
    page: u32,
}

impl<R: PageRead> Decode for PageDecode<R> {
    type Out = Page<R::Item>;
    fn decode(&self, bytes: &[u8]) -> Result<Decoded<Self::Out>, serde_json::Error> {
        let page = self.reader.read(self.page, bytes)?;
        if page.maybe_message {
            // Rare: an answer without `record` or `count` may be a
            // throttling message; only then is it read a second time.
            let value: Value = serde_json::from_slice(bytes)?;
            let what = value.to_string();
            if let Some(wait) = throttle_reply(&what) {
                return Ok(Decoded::Throttled { wait, what });
            }
        }
        Ok(Decoded::Data(page))
    }
}

/// Every distinct record of one query, typed, and those that did not type.
pub(super) struct Fetched<T> {
    pub(super) records: Vec<T>,
    pub(super) failures: Vec<Failure>,
    pub(super) expected_count: u64,
    pub(super) duplicates: u64,
    pub(super) pages: u32,
}

/// How one pass over a query's pages ended.
enum Paged<T> {
    Done(Fetched<T>),
    /// Page 1, asked with the rest, showed a smaller page cap (now learned).
    CapShown,
}

/// The page size a client asks for: `powerschool.page_size` until a server
/// shows a smaller cap, then the cap, for the rest of the client's life.
pub(super) struct PageSize {
    configured: u32,
    /// The server's cap; 0 while none was seen.
    cap: AtomicU32,
    /// The largest page the server was seen to serve in full; 0 while none.
    served: AtomicU32,
}

impl PageSize {
    pub(super) fn new(configured: u32) -> Self {
        PageSize {
            configured: configured.max(1),
            cap: AtomicU32::new(0),
            served: AtomicU32::new(0),
        }
    }

    pub(super) fn current(&self) -> u32 {
        match self.cap.load(Ordering::Relaxed) {
            0 => self.configured,
            cap => cap.min(self.configured),
        }
    }

    /// Remembers that a page of `asked` records came back with `len`.
    fn saw(&self, asked: u32, len: u64) {
        if len == u64::from(asked) {
            self.served.fetch_max(asked, Ordering::Relaxed);
        }
    }

    /// Whether the server was seen to serve pages of `size` in full, so
    /// page 1 need not be asked alone to learn its cap.
    fn serves(&self, size: u32) -> bool {
        self.served.load(Ordering::Relaxed) >= size
    }

    /// Remembers a cap the server showed; logs it the first time it lowers.
    fn learn(&self, cap: u32, query: &str) {
        let before = self.current();
        if cap >= before {
            return;
        }
        let _ = self
            .cap
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                (old == 0 || cap < old).then_some(cap)
            });
        warn!(
            query,
            asked = before,
            cap,
            "PowerSchool caps its pages at {cap} records; asking for {cap} from now on \
             (set powerschool.page_size to at most this district's maximum to skip this step)"
        );
    }
}

/// One query's paging: where it goes, its arguments, how its records are
/// read and what page size it asks.
pub(super) struct Pager<'a> {
    transport: &'a Transport,
    ctx: &'a Ctx<'a>,
    args: Value,
    sizes: &'a PageSize,
    limits: &'a AnswerLimits,
    /// What the last successful run received of this query and arguments.
    last_count: Option<u64>,
}

impl<'a> Pager<'a> {
    pub(super) fn new(
        transport: &'a Transport,
        ctx: &'a Ctx<'a>,
        args: Value,
        sizes: &'a PageSize,
        limits: &'a AnswerLimits,
    ) -> Self {
        let args = if args.is_null() { json!({}) } else { args };
        Pager {
            transport,
            ctx,
            args,
            sizes,
            limits,
            last_count: None,
        }
    }

    pub(super) fn with_last_count(self, last_count: Option<u64>) -> Self {
        Pager { last_count, ..self }
    }

    /// A `/count` above `powerschool.max_count`, or far above what the last
    /// successful run received, fails before any page is asked.
    fn believe(&self, expected: u64) -> Result<(), PowerSchoolError> {
        if expected > self.limits.max_count {
            return Err(PowerSchoolError::CountTooLarge {
                query: self.ctx.query.to_string(),
                args: self.args_text(),
                count: expected,
                max: self.limits.max_count,
            });
        }
        let factor = self.limits.count_growth_factor;
        if let Some(last) = self.last_count {
            if ceiling(last, factor).is_some_and(|most| expected > most) {
                return Err(PowerSchoolError::CountFarAboveLastRun {
                    query: self.ctx.query.to_string(),
                    args: self.args_text(),
                    count: expected,
                    last,
                    factor,
                });
            }
        }
        Ok(())
    }

    /// Counts, then pages through the query, keeping the first record of
    /// each key (see the paging rule above). Each page is typed as it
    /// arrives and its bytes freed; at most `window()` parsed pages wait to
    /// be added, so only the accumulated records grow.
    pub(super) async fn fetch<R: PageRead>(
        &self,
        reader: &R,
    ) -> Result<Fetched<R::Item>, PowerSchoolError> {
        let expected = self.count().await?;
        self.believe(expected)?;
        // Page 1 goes alone only while the server's cap is unknown: its
        // length tells the page size the server serves. If page 1, asked
        // with the rest, still shows a smaller cap (a query the server caps
        // apart from the others), the query is paged again, page 1 alone.
        let mut with_the_rest = self.sizes.serves(self.sizes.current());
        loop {
            match self.pages(reader, expected, with_the_rest).await? {
                Paged::Done(fetched) => return Ok(fetched),
                Paged::CapShown => with_the_rest = false,
            }
        }
    }

    /// The pages of a query counted `expected`, page 1 with the rest or
    /// alone. With the rest, it stops at page 1 when that shows a cap.
    async fn pages<R: PageRead>(
        &self,
        reader: &R,
        expected: u64,
        with_the_rest: bool,
    ) -> Result<Paged<R::Item>, PowerSchoolError> {
        let mut acc = Accumulator::new(expected);
        let asked = self.sizes.current();
        let (page_size, from, mut last_len) = if with_the_rest {
            (asked, 1, 0)
        } else {
            let first = self.page(reader, 1, asked).await?;
            let first_len = first.records.len() as u64;
            self.not_empty_too_soon(1, first_len, &acc, expected)?;
            reader.check_first_page(self.ctx.query, &first)?;
            acc.add_page(first.records);
            let served = self.page_size_served(asked, first_len, expected);
            (served, 2, first_len)
        };
        let planned = expected.div_ceil(u64::from(page_size)).max(1);
        let planned = u32::try_from(planned).unwrap_or(u32::MAX);

        if planned >= from {
            let mut pages = stream::iter(from..=planned)
                .map(|p| async move { self.page(reader, p, page_size).await.map(|r| (p, r)) })
                .buffered(self.window())
                .boxed();
            while let Some((p, page)) = pages.try_next().await? {
                if p == 1 {
                    reader.check_first_page(self.ctx.query, &page)?;
                    let len = page.records.len() as u64;
                    if self.page_size_served(page_size, len, expected) < page_size {
                        return Ok(Paged::CapShown);
                    }
                }
                last_len = page.records.len() as u64;
                acc.add_page(page.records);
                self.not_empty_too_soon(p, last_len, &acc, expected)?;
            }
        }
        let mut next = planned + 1;
        while last_len >= u64::from(page_size) {
            // Data that keeps growing past the cap is a server fault too.
            let received = acc.received();
            if received > self.limits.max_count {
                return Err(PowerSchoolError::TooManyRecords {
                    query: self.ctx.query.to_string(),
                    args: self.args_text(),
                    received,
                    max: self.limits.max_count,
                });
            }
            let page = self.page(reader, next, page_size).await?;
            last_len = page.records.len() as u64;
            if acc.add_page(page.records) == 0 {
                break;
            }
            next += 1;
        }

        let distinct = acc.received();
        let tolerated = self.tolerated(expected);
        if distinct.saturating_add(tolerated) < expected {
            return Err(PowerSchoolError::FewerThanCounted {
                query: self.ctx.query.to_string(),
                args: self.args_text(),
                received: distinct,
                expected,
                tolerated,
            });
        }
        if distinct != expected {
            warn!(
                query = self.ctx.query,
                expected,
                received = distinct,
                "PowerSchool's count and the distinct records received differ (data changed during the fetch?)"
            );
        }
        Ok(Paged::Done(Fetched {
            records: acc.records,
            failures: acc.failures,
            expected_count: expected,
            duplicates: acc.duplicates,
            pages: next - 1,
        }))
    }

    /// Pages of this query asked at once: as many as the client may have
    /// on the server (`powerschool.max_requests_in_flight`, lower once
    /// throttled). The limiter, shared by every query, is what bounds the
    /// server's load; this only lets a query alone (the guardians' hundreds
    /// of pages, once the schools are done) use all of it.
    fn window(&self) -> usize {
        usize::try_from(self.transport.limiter.limit())
            .unwrap_or(1)
            .max(1)
    }

    /// The arguments as an error message names them.
    fn args_text(&self) -> String {
        match self.args.as_object() {
            Some(map) if map.is_empty() => "no arguments".to_string(),
            _ => format!("arguments {}", self.args),
        }
    }

    /// How many records fewer than the count are accepted (see the
    /// completeness rule above).
    fn tolerated(&self, expected: u64) -> u64 {
        let share = expected as f64 * self.limits.count_tolerance_percent / 100.0;
        // `as` saturates; the share is finite and not negative.
        (share.floor() as u64).max(self.limits.count_tolerance_records)
    }

    /// Fails when page `page` came back empty (`len` 0) although the records
    /// received so far are short of the count beyond the tolerance.
    fn not_empty_too_soon<T>(
        &self,
        page: u32,
        len: u64,
        acc: &Accumulator<T>,
        expected: u64,
    ) -> Result<(), PowerSchoolError> {
        let received = acc.received();
        if len > 0 || received.saturating_add(self.tolerated(expected)) >= expected {
            return Ok(());
        }
        Err(PowerSchoolError::EmptyPageBeforeEnd {
            query: self.ctx.query.to_string(),
            args: self.args_text(),
            page,
            received,
            expected,
        })
    }

    /// The page size the server actually serves: the one asked, unless page 1
    /// came back shorter although the count says there is more (then it is
    /// the server's cap, remembered for the later pages and queries).
    fn page_size_served(&self, asked: u32, first_len: u64, expected: u64) -> u32 {
        if first_len > 0 && first_len < u64::from(asked) && first_len < expected {
            // Shorter than `asked`, so it fits.
            let cap = first_len as u32;
            self.sizes.learn(cap, self.ctx.query);
            return cap;
        }
        asked
    }

    async fn count(&self) -> Result<u64, PowerSchoolError> {
        let ctx = self.ctx;
        let url = self
            .transport
            .url(&["ws", "schema", "query", ctx.query, "count"]);
        let body = self
            .transport
            .call(ctx, None, &url, Body::Json(&self.args))
            .await?;
        let total = parse::count_of(&body).map_err(|detail| PowerSchoolError::BadResponse {
            query: ctx.query.to_string(),
            page: None,
            detail,
        })?;
        ctx.progress.counted(ctx.query, total);
        Ok(total)
    }

    async fn page<R: PageRead>(
        &self,
        reader: &R,
        page: u32,
        size: u32,
    ) -> Result<Page<R::Item>, PowerSchoolError> {
        let ctx = self.ctx;
        let mut url = self.transport.url(&["ws", "schema", "query", ctx.query]);
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("pagesize", &size.to_string());
        let decoder = PageDecode {
            reader: reader.clone(),
            page,
        };
        let parsed = self
            .transport
            .call_with(ctx, Some(page), &url, Body::Json(&self.args), &decoder)
            .await?;
        if let Err(detail) = &parsed.shape {
            return Err(PowerSchoolError::BadResponse {
                query: ctx.query.to_string(),
                page: Some(page),
                detail: detail.clone(),
            });
        }
        bump(&self.transport.counters.pages_fetched);
        self.sizes.saw(size, parsed.records.len() as u64);
        ctx.progress
            .add_page(ctx.query, parsed.records.len() as u64);
        Ok(parsed)
    }
}

/// Collects pages in page order and drops repeated keys: the typed records
/// and the failures are all that grows during a fetch.
struct Accumulator<T> {
    seen: HashSet<Key>,
    records: Vec<T>,
    failures: Vec<Failure>,
    duplicates: u64,
}

impl<T> Accumulator<T> {
    fn new(expected: u64) -> Self {
        let reserve = usize::try_from(expected.min(RESERVE_AT_MOST)).unwrap_or(0);
        Accumulator {
            // Sized once: the guardians' query keys a district's every
            // Parent Portal row (1.5 million at a million students).
            seen: HashSet::with_capacity(reserve),
            records: Vec::with_capacity(reserve),
            failures: Vec::new(),
            duplicates: 0,
        }
    }

    /// Distinct records so far, typed or not.
    fn received(&self) -> u64 {
        (self.records.len() + self.failures.len()) as u64
    }

    /// Returns how many records of the page were new. Records without a key
    /// (queries without one, or a key column NULL) are never dropped.
    fn add_page(&mut self, records: Vec<Parsed<T>>) -> usize {
        let mut new = 0;
        for record in records {
            if let Some(key) = record.key {
                if !self.seen.insert(key) {
                    self.duplicates += 1;
                    continue;
                }
            }
            new += 1;
            match record.outcome {
                Ok(value) => self.records.push(value),
                Err(failure) => self.failures.push(failure),
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerschool::page::Parsed;

    fn parsed(key: Option<Key>, value: u32) -> Parsed<u32> {
        Parsed {
            key,
            outcome: Ok(value),
        }
    }

    #[test]
    fn duplicates_are_dropped_by_key_only_for_records_with_one() {
        let k = |i| Some(Key::Ints(i, 0));
        let page = vec![
            parsed(k(1), 1),
            parsed(k(1), 2),
            parsed(k(2), 3),
            parsed(None, 4),
        ];
        let mut acc = Accumulator::new(10);
        assert_eq!(acc.add_page(page), 3);
        assert_eq!((acc.records.clone(), acc.duplicates), (vec![1, 3, 4], 1));
        assert_eq!(acc.add_page(vec![parsed(k(2), 5)]), 0);
        assert_eq!(acc.add_page(vec![parsed(None, 6)]), 1, "no key: always new");
        assert_eq!(acc.received(), 4);
    }
}
