//! The access audit a run appends beside its writes: every change of a
//! guardian's access with its reasons (as codes, see `rules::verdict::codes`),
//! in one COPY. The run's problems are in `problems`.

use super::copy::{copy_in, copy_row};
use super::Tx;
use crate::rules::{AccessTier, ConnectionCase};
use crate::store::StoreError;
use serde::Serialize;

/// One append to the access audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub connection_id: Option<i64>,
    pub student_dcid: i64,
    pub user_id: i64,
    pub tier_before: Option<AccessTier>,
    pub tier_after: Option<AccessTier>,
    pub case_before: Option<ConnectionCase>,
    pub case_after: Option<ConnectionCase>,
    /// The reasons as sentences, JSON text (`jsonb`): only for a row the
    /// codes cannot say exactly (`reason_codes` is then `None`).
    pub reasons: Option<String>,
    /// The reasons as codes and ids (`rules::verdict::codes`), JSON text;
    /// rendered into sentences when the audit is read.
    pub reason_codes: Option<String>,
}

/// Appends rows to the access audit (one `COPY`); callers build and append
/// them a batch at a time.
pub async fn append_audit(
    tx: &mut Tx<'_>,
    rows: &[AuditRow],
    run_id: Option<i64>,
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    copy_in(
        tx,
        "COPY access_audit (connection_id, student_dcid, user_id, tier_before, tier_after,
                            case_before, case_after, reasons, reason_codes, run_id) FROM STDIN",
        &[rows],
        move |out, r: &AuditRow| {
            copy_row!(out; r.connection_id, r.student_dcid, r.user_id, r.tier_before,
                r.tier_after, r.case_before, r.case_after, r.reasons, r.reason_codes, run_id)
        },
        "appending to the access audit",
    )
    .await
}
