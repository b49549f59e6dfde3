//! How a run, a hold, an approval or a spot sync fails: one error for the
//! sync stage, each message naming what failed and what to do about it.

use crate::powerschool::PowerSchoolError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("fetching from PowerSchool failed: {0}")]
    PowerSchool(#[from] PowerSchoolError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("failure injected {0} (test fail point)")]
    Injected(&'static str),
    #[error("the run was cancelled: {0}")]
    Cancelled(String),
    /// The plan crossed a safety threshold: stored, not applied; the run's
    /// status is `held`. Not a failure of the run, but nothing changed.
    #[error(
        "run {run_id} was HELD for approval and changed nothing: {reason}. \
         See what it would change with `student-sync approve {run_id} --dry-run`, \
         then apply it with `student-sync approve {run_id}` or drop it with \
         `student-sync discard {run_id}`"
    )]
    Held { run_id: i64, reason: String },
    #[error(
        "run {run_id} cannot be approved: the database changed since its plan was made \
         (another run, a spot sync or SchoolEngage itself wrote to the live tables), so \
         the plan no longer describes what it would do. Discard it \
         (`student-sync discard {run_id}`) and start a new run (`student-sync sync --once`)"
    )]
    StateChanged { run_id: i64 },
    #[error(
        "run {run_id} cannot be approved: run {newer} is newer and {newer_status}; approving \
         the older plan would put older PowerSchool data back. Discard run {run_id}"
    )]
    Superseded {
        run_id: i64,
        newer: i64,
        newer_status: String,
    },
    #[error("the stored plan of run {run_id} cannot be read ({message}); it was stored by another version of student-sync. Discard it and start a new run")]
    BadStoredPlan { run_id: i64, message: String },
    #[error("spot sync: {0}")]
    Spot(String),
    #[error(
        "the run passed its deadline of {limit} (sync.run_deadline_mins, \
         STUDENT_SYNC_SYNC_RUN_DEADLINE_MINS) and was stopped in phase {phase}: nothing was \
         applied. Look at why it was slow (PowerSchool pages hanging? the database waiting \
         on a lock?), or raise sync.run_deadline_mins if the district's runs really take this long"
    )]
    Deadline { limit: String, phase: String },
    #[error(
        "the run panicked: {0}. This is a bug in student-sync (please report it with the \
         log); nothing was applied, and the run is not resumed automatically"
    )]
    Panicked(String),
    #[error(
        "cannot write {what} as JSON: {source}. This is a bug in student-sync (please report \
         it with the log); nothing was applied"
    )]
    Serialise {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(
        "the plan refers to new user number {index}, but only {created} users were created. \
         This is a bug in student-sync (please report it with the log); nothing was applied"
    )]
    PlanUserMissing { index: usize, created: usize },
    #[error(
        "{leaving} students leave the sync set, but the database snapshot the plan was          made in holds only {found} of them. This is a bug in student-sync (please report          it with the log); nothing was applied"
    )]
    LeavingStudentsMissing { leaving: usize, found: usize },
    /// Never stored half-said: an audit row without its reasons is worse
    /// than a run that stops.
    #[error(
        "the reasons decided for student {student_dcid} and user {user_id} cannot be read          back from their codes ({source}), so they cannot go to the access audit. This is a          bug in student-sync (please report it with the log); nothing was applied"
    )]
    UnreadableReasons {
        student_dcid: i64,
        user_id: i64,
        source: crate::rules::verdict::codes::CodesError,
    },
}

/// `value` as JSON, or the error naming `what` could not be written.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(
    value: &T,
    what: &'static str,
) -> Result<serde_json::Value, SyncError> {
    serde_json::to_value(value).map_err(|source| SyncError::Serialise { what, source })
}

impl SyncError {
    /// A database error that passes (restart, failover, conflict): the run
    /// is worth trying again.
    pub fn is_transient_database(&self) -> bool {
        matches!(self, SyncError::Store(e) if e.is_transient())
    }
}
