//! Bulk writes for one run, all on the run's transaction. The big tables
//! are written by streaming rows with `COPY` into a temporary staging table
//! and then one set-based `INSERT … ON CONFLICT` per table; the audit and the
//! problems are copied straight in. Deletes and user writes take whole
//! columns as arrays (`UNNEST`) in batches of `BATCH` rows. Either way a
//! district of 150,000 students costs a few dozen round trips, not hundreds
//! of thousands. Callers pass only rows that are new or changed: an
//! unchanged row is never written, so its `updated_at` stays.
//!
//! - `copy`: the COPY text encoding and the staging of rows;
//! - `mirrored`: the rows PowerSchool owns (students, contacts, guardian accounts);
//! - `users`: the users a run creates and the synced fields of existing ones;
//! - `connections`: the connections and their removal;
//! - `foreign_keys`: the foreign keys of `connections`, set aside while a
//!   run inserts most of them (a first night) and checked in one pass after;
//! - `audit`: the access audit;
//! - `problems`: the run's problems, rule findings stored as facts.

use sqlx::{Postgres, Transaction};

mod copy;

mod audit;
mod connections;
mod foreign_keys;
mod mirrored;
mod problems;
mod users;

pub use audit::{append_audit, AuditRow};
pub use connections::{delete_connections, upsert_connections, ConnectionWrite};
pub use foreign_keys::{with_keys_set_aside, KeyChecks};
pub use mirrored::{
    delete_contacts, delete_guardian_accounts, stamp_digests, write_mirrored, MirroredRow,
    MirroredTable,
};
pub use problems::{insert_problems, ProblemRow, StoredFacts, MESSAGE_CHARS};
pub use users::{insert_users, update_users, NewUserRow, UserUpdate};

pub type Tx<'a> = Transaction<'a, Postgres>;
