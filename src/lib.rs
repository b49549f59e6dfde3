//! student-sync: copies students, guardians and their relationships from
//! PowerSchool into SchoolEngage every night, and decides what each guardian
//! may do there.
//!
//! # Layout
//!
//! The modules in the order the data flows through one run:
//!
//! - [`config`]: typed settings from the file and the environment (and the
//!   tier matrix), validated once at start.
//! - [`powerschool`]: the district's server: OAuth token, one request with
//!   the retry policy, paging, and the typed records of each PowerQuery.
//! - [`rules`]: the access decision table as pure functions: facts in, a
//!   decision with its reasons out (no I/O, no async).
//! - [`store`]: every SQL statement: migrations, loading the current state,
//!   bulk writes, run history, advisory locks, the access audit.
//! - [`sync`]: one run: fetch → plan → safety check → apply in one
//!   transaction, and its report; also `plan`, approve/discard and spot syncs.
//! - [`daemon`]: the nightly service: schedule, start-up decision, signals,
//!   health and metrics.
//! - [`cli`]: the command line: arguments and wiring only.
//! - [`harness`]: not part of the nightly run: the test worlds, the fake
//!   PowerSchool and seeding, for the tests, the demo and the benchmark.

/// `as_str` for the enums whose spellings a strum `IntoStaticStr` derive
/// defines (the database, the settings and the reports all use them).
macro_rules! static_str {
    ($($kind:ty),+ $(,)?) => {$(
        impl $kind {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    )+};
}

pub mod cli;
pub mod config;
pub mod daemon;
pub mod harness;
pub mod powerschool;
pub mod rules;
pub mod store;
pub mod sync;
