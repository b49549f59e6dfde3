//! Applying a plan: every write of the run in one transaction, together with
//! the run's counts, problems and audit rows. Either all of it commits or the
//! live tables stay exactly as they were.

use super::plan::{guardian_id_after, ConnectionChange, ConnectionChangeKind, Plan};
use super::SyncError;
use crate::rules::UserRef;
use crate::store::write::{self, AuditRow, ConnectionWrite};
use crate::store::{runs, Doing};
use sqlx::PgPool;

/// Where a test can make a run fail on purpose, to prove nothing is left half-written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// After every write of the run, just before the commit.
    BeforeCommit,
}

pub async fn apply(
    pool: &PgPool,
    run_id: i64,
    plan: &Plan,
    report: &serde_json::Value,
    fail_point: Option<FailPoint>,
) -> Result<(), SyncError> {
    let mut tx = pool.begin().await.doing("starting the run's transaction")?;
    apply_in(&mut tx, run_id, plan, report).await?;
    if fail_point == Some(FailPoint::BeforeCommit) {
        // Dropping the transaction rolls it back.
        return Err(SyncError::Injected("before commit"));
    }
    tx.commit().await.doing("committing the run")?;
    Ok(())
}

/// Every write of a plan on a transaction the caller commits (a run's own,
/// or an approval's, which first checks the state the plan was made from).
/// Marks the run `succeeded` on the same transaction.
pub async fn apply_in(
    tx: &mut write::Tx<'_>,
    run_id: i64,
    plan: &Plan,
    report: &serde_json::Value,
) -> Result<(), SyncError> {
    write::upsert_students(tx, &plan.students.create, run_id).await?;
    write::upsert_students(tx, &plan.students.update, run_id).await?;
    write::upsert_contacts(tx, &plan.contacts.create, run_id).await?;
    write::upsert_contacts(tx, &plan.contacts.update, run_id).await?;
    write::delete_contacts(tx, &plan.contacts.remove).await?;
    write::upsert_guardian_accounts(tx, &plan.guardian_accounts.create, run_id).await?;
    write::upsert_guardian_accounts(tx, &plan.guardian_accounts.update, run_id).await?;
    write::delete_guardian_accounts(tx, &plan.guardian_accounts.remove).await?;

    let new_user_ids = write::insert_users(tx, &plan.new_users, run_id).await?;
    write::update_users(tx, &plan.user_updates).await?;
    let user_id = |u: UserRef| match u {
        UserRef::Existing(id) => id,
        UserRef::New(i) => new_user_ids[i],
    };

    let (removals, writes): (Vec<&ConnectionChange>, Vec<&ConnectionChange>) = plan
        .connections
        .iter()
        .partition(|c| c.kind == ConnectionChangeKind::Remove);
    let rows: Vec<ConnectionWrite> = writes
        .iter()
        .map(|c| ConnectionWrite {
            student_dcid: c.decision.student_dcid,
            user_id: user_id(c.user),
            tier: c.decision.tier.as_str().to_string(),
            case_code: c.decision.case.as_str().to_string(),
            limits: c
                .decision
                .limits
                .iter()
                .map(|l| l.as_str().to_string())
                .collect(),
            origin: c.origin.as_str().to_string(),
            present_in_powerschool: c.decision.present_in_powerschool,
            powerschool_guardian_id: guardian_id_after(&c.decision, c.before.as_ref()),
        })
        .collect();
    let ids = write::upsert_connections(tx, &rows, run_id).await?;
    let removed_ids: Vec<i64> = removals
        .iter()
        .filter_map(|c| c.before.as_ref().map(|b| b.id))
        .collect();
    write::delete_connections(tx, &removed_ids).await?;

    // The audit keeps every change of access (a new connection, a removed
    // one, a different tier or case), with the verdicts that led to it.
    let mut audit = Vec::new();
    for (change, id) in writes.iter().zip(&ids) {
        let tier_changed =
            change.before.as_ref().map(|b| b.tier.as_str()) != Some(change.decision.tier.as_str());
        let case_changed = change.before.as_ref().and_then(|b| b.case_code.as_deref())
            != Some(change.decision.case.as_str());
        if tier_changed || case_changed {
            audit.push(audit_row(change, Some(*id), user_id(change.user)));
        }
    }
    for change in &removals {
        audit.push(audit_row(
            change,
            change.before.as_ref().map(|b| b.id),
            user_id(change.user),
        ));
    }
    write::append_audit(tx, &audit, Some(run_id)).await?;
    write::insert_problems(tx, &plan.problems, run_id).await?;

    let counts = serde_json::to_value(&plan.counts).expect("plan counts serialise");
    runs::finish_succeeded(tx, run_id, &counts, report).await?;
    Ok(())
}

fn audit_row(change: &ConnectionChange, connection_id: Option<i64>, user_id: i64) -> AuditRow {
    let d = &change.decision;
    AuditRow {
        connection_id,
        student_dcid: d.student_dcid,
        user_id,
        tier_before: change.before.as_ref().map(|b| b.tier.clone()),
        tier_after: change.tier_after().map(|t| t.as_str().to_string()),
        case_before: change.before.as_ref().and_then(|b| b.case_code.clone()),
        case_after: Some(d.case.as_str().to_string()),
        reasons: serde_json::json!({
            "action": change.kind,
            "case": d.case.as_str(),
            "case_letter": d.case.letter(),
            "limits": d.limits.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "guardian_id": d.guardian_id,
            "verdicts": d.verdicts,
        }),
    }
}
