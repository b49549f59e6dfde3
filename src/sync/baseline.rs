//! What the last successful full run saw, read for tonight's run: its
//! per-school counts for the safety limits, and what each query received
//! for the counts' ceilings (`powerschool.count_growth_factor`).

use super::{plan, SyncError};
use crate::powerschool::{
    LastCounts, PowerSchoolClient, CONTACTS_QUERY, GUARDIANS_QUERY, STUDENTS_QUERY,
};
use crate::store::runs;
use sqlx::PgPool;
use std::sync::Arc;

/// The per-school counts run `run_id` kept; none when it kept none or they
/// cannot be read (then the per-school limits are not judged tonight).
pub(super) async fn last_school_counts(
    pool: &PgPool,
    run_id: i64,
) -> Result<std::collections::BTreeMap<i64, plan::SchoolCounts>, SyncError> {
    let Some(stored) = crate::store::baseline::per_school_counts(pool, run_id).await? else {
        return Ok(Default::default());
    };
    Ok(serde_json::from_value(stored).unwrap_or_else(|e| {
        tracing::warn!(run_id, error = %e, "the per-school counts of run {run_id} cannot be read; the per-school safety limits are not judged tonight");
        Default::default()
    }))
}

/// `client`, failing any query whose `/count` is far above what the last
/// successful full run received (the guardians, and per school the students
/// and contacts); `client` itself on a first night.
pub(super) async fn believing_last_run(
    pool: &PgPool,
    client: &PowerSchoolClient,
) -> Result<PowerSchoolClient, SyncError> {
    let Some(last) = runs::last_full_success(pool).await? else {
        return Ok(client.clone());
    };
    let mut counts = LastCounts::default();
    if let Some(guardians) = last.guardians.and_then(|g| u64::try_from(g).ok()) {
        counts.insert(GUARDIANS_QUERY, None, guardians);
    }
    for (school, c) in last_school_counts(pool, last.id).await? {
        counts.insert(STUDENTS_QUERY, Some(school), c.students);
        counts.insert(CONTACTS_QUERY, Some(school), c.contacts);
    }
    Ok(client.with_last_counts(Arc::new(counts)))
}
