//! What the last successful full run saw, for the safety thresholds that
//! compare tonight's answer with it (kept in the run's `counts`).

use super::{Doing, StoreError};
use sqlx::PgPool;

/// The per-school counts (`counts.per_school`) stored with run `run_id`, as
/// stored; `None` when that run kept none (a run of an older version).
pub async fn per_school_counts(
    pool: &PgPool,
    run_id: i64,
) -> Result<Option<serde_json::Value>, StoreError> {
    let value: Option<Option<serde_json::Value>> =
        sqlx::query_scalar("SELECT counts->'per_school' FROM sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(pool)
            .await
            .doing("reading the per-school counts of the last successful run")?;
    Ok(value.flatten())
}
