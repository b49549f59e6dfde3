//! The PowerSchool client: OAuth client credentials, PowerQuery paging with
//! retries and bounded concurrency, and parsing into typed records
//! (`records`). It speaks HTTP only; it knows nothing of the database.
//!
//! The parts, in the order a request flows: `queries` (what is asked and how
//! its records are typed), `paging` (the count and the pages), `request` (one
//! data request with its token and retries), `token` (the OAuth token),
//! `retry` (the one retry policy both use), `http` (reading an answer), and
//! `client` (the handle tying them together); `page` (with `page_de`) types
//! each page's records straight from its bytes, `readers` says how each
//! query's pages are read; `stats` counts along the way,
//! `throttle` bounds the requests in flight and reads throttling replies,
//! and `columns` reads the guardian query through its candidate columns.

mod client;
pub mod columns;
mod error;
mod http;
mod last_counts;
mod page;
mod page_de;
#[cfg(test)]
mod page_tests;
mod paging;
pub mod parse;
pub mod plugin;
pub mod probe;
mod queries;
mod readers;
pub mod records;
mod request;
mod retry;
mod stats;
mod throttle;
mod token;

pub use client::PowerSchoolClient;
pub use error::PowerSchoolError;
pub use last_counts::LastCounts;
pub use parse::{Columns, FieldError};
pub use queries::{
    QueryResult, RawQueryResult, CONTACTS_QUERY, GUARDIANS_QUERY, INDEPENDENT_QUERY, SCHOOLS_QUERY,
    STUDENTS_QUERY,
};
pub use records::*;
pub use stats::{ClientStats, FetchObserver};
