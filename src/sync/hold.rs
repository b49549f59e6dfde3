//! Held runs from the sync's side: storing a plan that crossed a safety
//! threshold, and an admin's decision on it. `approve` applies exactly the
//! stored plan, in one transaction that first checks the live tables are
//! still those the plan was made from; `discard` drops it. Both record the
//! OS user who ran them.

use super::plan::Plan;
use super::report::{PlanPreview, RunReport};
use super::{apply, run_lock_key, SyncError};
use crate::config::Settings;
use crate::store::district::{self, WriteGate};
use crate::store::{held, state, Doing, StoreError};
use serde::Serialize;
use sqlx::PgPool;

#[allow(clippy::too_many_arguments)]
pub(super) async fn store_hold(
    pool: &PgPool,
    gate: &WriteGate,
    run_id: i64,
    plan: &[u8],
    fingerprint: &str,
    reason: &str,
    counts: &serde_json::Value,
    report: &serde_json::Value,
) -> Result<(), StoreError> {
    held::hold(
        pool,
        gate,
        run_id,
        plan,
        fingerprint,
        reason,
        counts,
        report,
    )
    .await
}

/// The OS user running this command ($USER, $LOGNAME, else `id -un`).
pub fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.trim().is_empty() {
                return u.trim().to_string();
            }
        }
    }
    std::process::Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown user".to_string())
}

fn decode(stored: &held::StoredPlan) -> Result<Plan, SyncError> {
    serde_json::from_slice(&stored.plan).map_err(|e| SyncError::BadStoredPlan {
        run_id: stored.run_id,
        message: e.to_string(),
    })
}

/// What `approve --dry-run` shows: the stored plan, why it was held, and
/// whether it would still apply.
#[derive(Debug, Clone, Serialize)]
pub struct HeldPlanView {
    pub run_id: i64,
    pub reason: String,
    /// The live tables are still those the plan was made from.
    pub still_applies: bool,
    pub preview: PlanPreview,
}

/// Reads a held run's plan and checks it against the live tables. Writes nothing.
pub async fn show(pool: &PgPool, run_id: i64) -> Result<HeldPlanView, SyncError> {
    let stored = held::load(pool, run_id).await?;
    let plan = decode(&stored)?;
    let mut conn = pool.acquire().await.doing("reading the live tables")?;
    let now = state::fingerprint(&mut conn).await?;
    let check = super::safety::SafetyCheck {
        enabled: true,
        measures: Vec::new(),
    };
    Ok(HeldPlanView {
        run_id,
        reason: stored.reason.clone(),
        still_applies: now == stored.state_fingerprint,
        preview: PlanPreview::new(&plan, None, check),
    })
}

/// Applies a held run's stored plan, as stored, if the live tables are
/// unchanged since it was made; the run becomes `succeeded`, with
/// `decided_by`. Waits for the run lock while a nightly run holds it.
pub async fn approve(
    pool: &PgPool,
    settings: &Settings,
    run_id: i64,
    decided_by: &str,
) -> Result<RunReport, SyncError> {
    let lock = crate::store::lock::wait_for_lock(pool, &run_lock_key(settings), || {
        tracing::info!("approve: a run holds the run lock; waiting for it to finish")
    })
    .await?;
    let gate = WriteGate::new(&settings.district, Some(lock.backend_pid()));
    let result = approve_locked(pool, &gate, run_id, decided_by).await;
    lock.release().await;
    result
}

async fn approve_locked(
    pool: &PgPool,
    gate: &WriteGate,
    run_id: i64,
    decided_by: &str,
) -> Result<RunReport, SyncError> {
    let stored = held::load(pool, run_id).await?;
    if let Some((newer, newer_status)) = held::newer_full_run(pool, run_id).await? {
        return Err(SyncError::Superseded {
            run_id,
            newer,
            newer_status,
        });
    }
    let mut plan = decode(&stored)?;
    let report = RunReport::from_plan(run_id, &plan);
    let report_json = super::to_json(&report, "the run's report")?;

    // The fingerprint and the writes see one snapshot; a concurrent write to
    // a row the plan touches then fails the approval instead of being lost.
    let mut tx =
        district::begin_write(pool, gate, "starting the approval's transaction", true).await?;
    // A discard racing this approval: only one of them decides the run.
    if let Err(e) = held::lock_held(&mut tx, run_id).await {
        drop(tx);
        return Err(decided_meanwhile(pool, run_id, e).await);
    }
    let now = state::fingerprint(&mut tx).await?;
    if now != stored.state_fingerprint {
        tracing::warn!(
            run_id,
            "approve refused: the live tables changed since run {run_id} was planned"
        );
        return Err(SyncError::StateChanged { run_id });
    }
    apply::apply_in(&mut tx, run_id, &mut plan, &report_json).await?;
    held::record_approval(&mut tx, run_id, decided_by).await?;
    tx.commit().await.doing("committing the approved plan")?;
    tracing::info!(
        run_id,
        decided_by,
        "run {run_id} approved by {decided_by} and applied: {}",
        super::report::one_line(&plan.counts)
    );
    Ok(report)
}

/// The error of an approval whose run was decided by someone else while it
/// waited: `NotHeld` with the run's status now (a serialization failure
/// of the row lock means exactly that).
async fn decided_meanwhile(pool: &PgPool, run_id: i64, e: StoreError) -> SyncError {
    if matches!(e, StoreError::NotHeld { .. }) || e.sqlstate().as_deref() == Some("40001") {
        if let Ok(run) = crate::store::runs::get_run(pool, run_id).await {
            return StoreError::NotHeld {
                run_id,
                status: run.status,
            }
            .into();
        }
    }
    e.into()
}

/// Drops a held run's plan; the run becomes `discarded`, with `decided_by`.
pub async fn discard(pool: &PgPool, run_id: i64, decided_by: &str) -> Result<(), SyncError> {
    held::discard(pool, run_id, decided_by).await?;
    tracing::info!(run_id, decided_by, "run {run_id} discarded by {decided_by}");
    Ok(())
}
