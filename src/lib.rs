//! student-sync: copies students, guardians and their relationships from
//! PowerSchool into SchoolEngage every night, and decides what each guardian
//! may do there. The modules follow the data's way through one run:
//! config → powerschool (fetch) → store/sync (stage, reconcile) → rules →
//! store (commit), with the daemon scheduling runs and the fake PowerSchool
//! standing in for a district's server in tests, the demo and benchmarks.

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
