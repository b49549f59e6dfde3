//! student-sync: copies students, guardians and their relationships from
//! PowerSchool into SchoolEngage every night, and decides what each guardian
//! may do there. The modules follow the data's way through one run:
//! config → powerschool (fetch) → store/sync (stage, reconcile) → rules →
//! store (commit), with the daemon scheduling runs and the fake PowerSchool
//! standing in for a district's server in tests, the demo and benchmarks.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod harness;
pub mod powerschool;
pub mod rules;
pub mod store;
pub mod sync;
