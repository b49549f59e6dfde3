//! Paging through one PowerQuery so every record arrives exactly once: the
//! `/count`, page 1, the planned pages a few at a time, and the pages that
//! data grown during the fetch added; records whose key an earlier page
//! already had are dropped. Which columns make the key is the query's to say.
//!
//! Paging rule: pages 1..=ceil(count / page size) are fetched (page 1 first,
//! then the rest a few at a time, in order). Data can grow during the fetch,
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

use super::columns::Reading;
use super::error::PowerSchoolError;
use super::last_counts::ceiling;
use super::parse::{self, Columns};
use super::request::{Body, Transport};
use super::stats::{bump, Ctx};
use crate::config::AnswerLimits;
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use tracing::warn;

/// Pages of one query requested at once. Small on purpose: with several
/// schools in flight, each running two queries, a district server sees at
/// most `school_concurrency * 2 * PAGES_IN_FLIGHT` requests.
pub(super) const PAGES_IN_FLIGHT: usize = 3;

/// The columns that make a record distinct; `None` never de-duplicates.
pub(super) type KeyColumns = Option<&'static [&'static str]>;

pub(super) struct RawRecord {
    pub(super) page: u32,
    pub(super) index: usize,
    pub(super) columns: Result<Columns, String>,
}

pub(super) struct RawFetch {
    pub(super) records: Vec<RawRecord>,
    pub(super) expected_count: u64,
    pub(super) duplicates: u64,
    pub(super) pages: u32,
}

/// The page size a client asks for: `powerschool.page_size` until a server
/// shows a smaller cap, then the cap, for the rest of the client's life.
pub(super) struct PageSize {
    configured: u32,
    /// The server's cap; 0 while none was seen.
    cap: AtomicU32,
}

impl PageSize {
    pub(super) fn new(configured: u32) -> Self {
        PageSize {
            configured: configured.max(1),
            cap: AtomicU32::new(0),
        }
    }

    pub(super) fn current(&self) -> u32 {
        match self.cap.load(Ordering::Relaxed) {
            0 => self.configured,
            cap => cap.min(self.configured),
        }
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
    reading: Reading<'a>,
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
        reading: Reading<'a>,
        limits: &'a AnswerLimits,
    ) -> Self {
        let args = if args.is_null() { json!({}) } else { args };
        Pager {
            transport,
            ctx,
            args,
            sizes,
            reading,
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
    /// each key (see the paging rule above).
    pub(super) async fn fetch(&self, keys: KeyColumns) -> Result<RawFetch, PowerSchoolError> {
        let expected = self.count().await?;
        self.believe(expected)?;
        let mut acc = Accumulator::new(keys, self.reading);

        let asked = self.sizes.current();
        let first = self.page(1, asked).await?;
        let first_len = first.len() as u64;
        self.not_empty_too_soon(1, first_len, &acc, expected)?;
        self.reading.check_first_page(self.ctx.query, &first)?;
        acc.add_page(1, first);
        let page_size = self.page_size_served(asked, first_len, expected);
        let planned = expected.div_ceil(u64::from(page_size)).max(1);
        let planned = u32::try_from(planned).unwrap_or(u32::MAX);

        let mut last_len = first_len;
        if planned > 1 {
            let mut pages = stream::iter(2..=planned)
                .map(|p| async move { self.page(p, page_size).await.map(|r| (p, r)) })
                .buffered(PAGES_IN_FLIGHT)
                .boxed();
            while let Some((p, records)) = pages.try_next().await? {
                last_len = records.len() as u64;
                acc.add_page(p, records);
                self.not_empty_too_soon(p, last_len, &acc, expected)?;
            }
        }
        let mut next = planned + 1;
        while last_len >= u64::from(page_size) {
            // Data that keeps growing past the cap is a server fault too.
            let received = acc.records.len() as u64;
            if received > self.limits.max_count {
                return Err(PowerSchoolError::TooManyRecords {
                    query: self.ctx.query.to_string(),
                    args: self.args_text(),
                    received,
                    max: self.limits.max_count,
                });
            }
            let records = self.page(next, page_size).await?;
            last_len = records.len() as u64;
            if acc.add_page(next, records) == 0 {
                break;
            }
            next += 1;
        }

        let distinct = acc.records.len() as u64;
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
        Ok(RawFetch {
            records: acc.records,
            expected_count: expected,
            duplicates: acc.duplicates,
            pages: next - 1,
        })
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
    fn not_empty_too_soon(
        &self,
        page: u32,
        len: u64,
        acc: &Accumulator<'_>,
        expected: u64,
    ) -> Result<(), PowerSchoolError> {
        let received = acc.records.len() as u64;
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

    async fn page(&self, page: u32, size: u32) -> Result<Vec<Value>, PowerSchoolError> {
        let ctx = self.ctx;
        let mut url = self.transport.url(&["ws", "schema", "query", ctx.query]);
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("pagesize", &size.to_string());
        let body = self
            .transport
            .call(ctx, Some(page), &url, Body::Json(&self.args))
            .await?;
        let records =
            parse::into_page_records(body).map_err(|detail| PowerSchoolError::BadResponse {
                query: ctx.query.to_string(),
                page: Some(page),
                detail,
            })?;
        bump(&self.transport.counters.pages_fetched);
        ctx.progress.add_page(ctx.query, records.len() as u64);
        Ok(records)
    }
}

/// Collects pages in page order and drops repeated keys.
struct Accumulator<'a> {
    keys: KeyColumns,
    reading: Reading<'a>,
    seen: HashSet<String>,
    records: Vec<RawRecord>,
    duplicates: u64,
}

impl<'a> Accumulator<'a> {
    fn new(keys: KeyColumns, reading: Reading<'a>) -> Self {
        Accumulator {
            keys,
            reading,
            seen: HashSet::new(),
            records: Vec::new(),
            duplicates: 0,
        }
    }

    /// Returns how many records of the page were new.
    fn add_page(&mut self, page: u32, records: Vec<Value>) -> usize {
        let mut new = 0;
        for (index, record) in records.into_iter().enumerate() {
            let columns = self.reading.columns(&record);
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
            let is_new = match fingerprint {
                Some(key) => {
                    if !self.seen.insert(key) {
                        self.duplicates += 1;
                        continue;
                    }
                    true
                }
                None => self.seen.insert(format!("{page}\u{1f}{record}")),
            };
            if is_new {
                new += 1;
            }
            self.records.push(RawRecord {
                page,
                index,
                columns,
            });
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_by_key_only_for_known_queries() {
        let page = vec![
            json!({"dcid": "1"}),
            json!({"dcid": 1}),
            json!({"dcid": "2"}),
            json!({"name": "no key"}),
        ];
        let mut known = Accumulator::new(Some(&["dcid"]), Reading::AsSent);
        assert_eq!(known.add_page(1, page.clone()), 3);
        assert_eq!((known.records.len(), known.duplicates), (3, 1));
        assert_eq!(known.add_page(2, vec![json!({"dcid": "2"})]), 0);
        let mut unknown = Accumulator::new(None, Reading::AsSent);
        unknown.add_page(1, page);
        assert_eq!((unknown.records.len(), unknown.duplicates), (4, 0));
    }
}
