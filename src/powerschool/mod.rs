//! The PowerSchool client: OAuth client credentials, PowerQuery paging with
//! retries and bounded concurrency, and parsing into typed records
//! (`records`). It speaks HTTP only; it knows nothing of the database.

mod client;
mod error;
pub mod parse;
pub mod records;

pub use client::{
    ClientStats, PowerSchoolClient, QueryResult, RawQueryResult, CONTACTS_QUERY, GUARDIANS_QUERY,
    INDEPENDENT_QUERY, SCHOOLS_ENDPOINT, STUDENTS_QUERY,
};
pub use error::PowerSchoolError;
pub use parse::{Columns, FieldError};
pub use records::*;
