//! The PowerSchool client: OAuth client credentials, PowerQuery paging with
//! retries and bounded concurrency, and parsing into typed records
//! (`records`). It speaks HTTP only; it knows nothing of the database.
//!
//! OWNED BY THE CLIENT HELPER.

pub mod records;

pub use records::*;
