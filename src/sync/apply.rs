//! Applying a plan: every write of the run in one transaction, together with
//! the run's counts, problems and audit rows. Either all of it commits or the
//! live tables stay exactly as they were.

use super::plan::{
    guardian_id_after, ConnectionChange, ConnectionChangeKind, ConnectionCounts, Plan,
};
use super::progress::RunProgress;
use super::SyncError;
use crate::rules::verdict::codes;
use crate::rules::UserRef;
use crate::store::district::{self, WriteGate};
use crate::store::write::{self, AuditRow, ConnectionWrite};
use crate::store::{runs, Doing, BATCH};
use foldhash::{HashMap, HashMapExt};
use sqlx::PgPool;

/// Where a test can make a run fail on purpose, to prove nothing is left half-written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// After every write of the run, just before the commit.
    BeforeCommit,
    /// The run panics after every write, just before the commit (the
    /// daemon must record it `failed` and not resume it).
    PanicBeforeCommit,
}

pub async fn apply(
    pool: &PgPool,
    gate: &WriteGate,
    run_id: i64,
    plan: &mut Plan,
    report: &serde_json::Value,
    fail_point: Option<FailPoint>,
    progress: Option<&RunProgress>,
) -> Result<(), SyncError> {
    let mut tx = district::begin_write(pool, gate, "starting the run's transaction", false).await?;
    apply_observed(&mut tx, run_id, plan, report, progress).await?;
    match fail_point {
        // Dropping the transaction rolls it back.
        Some(FailPoint::BeforeCommit) => return Err(SyncError::Injected("before commit")),
        #[allow(
            clippy::panic,
            reason = "a test fail point: proves a panicking run is recorded failed and not resumed"
        )]
        Some(FailPoint::PanicBeforeCommit) => {
            panic!("injected panic before commit (test fail point)")
        }
        None => {}
    }
    tx.commit().await.doing("committing the run")?;
    Ok(())
}

/// Every write of a plan on a transaction the caller commits (a run's own,
/// or an approval's, which first checks the state the plan was made from).
/// Marks the run `succeeded` on the same transaction. The plan's rows are
/// freed as they are written (see `apply_observed`).
pub async fn apply_in(
    tx: &mut write::Tx<'_>,
    run_id: i64,
    plan: &mut Plan,
    report: &serde_json::Value,
) -> Result<(), SyncError> {
    apply_observed(tx, run_id, plan, report, None).await
}

/// The rows of the live tables a plan writes (students, contacts, guardian
/// accounts, users, connections) and its problems: what the progress counts.
pub fn rows_to_write(plan: &Plan) -> u64 {
    let mirrored = plan.students.create.len()
        + plan.students.update.len()
        + plan.contacts.create.len()
        + plan.contacts.update.len()
        + plan.contacts.remove.len()
        + plan.guardian_accounts.create.len()
        + plan.guardian_accounts.update.len()
        + plan.guardian_accounts.remove.len();
    (mirrored
        + plan.new_users.len()
        + plan.user_updates.len()
        + plan.connections.len()
        + plan.problems.len()) as u64
}

/// `apply_in`, telling `progress` the rows written after each step. Each
/// kind of row is freed once written: a first sync's PowerSchool rows are
/// most of its plan, and they are not held while the users, connections and
/// audit are written. Only the plan's counts are left.
pub async fn apply_observed(
    tx: &mut write::Tx<'_>,
    run_id: i64,
    plan: &mut Plan,
    report: &serde_json::Value,
    progress: Option<&RunProgress>,
) -> Result<(), SyncError> {
    let wrote = |rows: usize| {
        if let Some(p) = progress {
            p.wrote(rows as u64);
        }
    };
    let step = std::time::Instant::now();
    // Creates and updates are disjoint (a create is a key the state did not
    // have): the creates are copied in, the updates merged.
    write::write_mirrored(tx, &plan.students.create, &plan.students.update, run_id).await?;
    wrote(plan.students.release());
    write::write_mirrored(tx, &plan.contacts.create, &plan.contacts.update, run_id).await?;
    write::delete_contacts(tx, &plan.contacts.remove).await?;
    wrote(plan.contacts.release());
    let g = &plan.guardian_accounts;
    write::write_mirrored(tx, &g.create, &g.update, run_id).await?;
    write::delete_guardian_accounts(tx, &plan.guardian_accounts.remove).await?;
    wrote(plan.guardian_accounts.release());
    let stamps = std::mem::take(&mut plan.stamps);
    if !stamps.is_empty() {
        // Every row, the first night after upgrading: about half a minute
        // at a million students, in the run's transaction.
        tracing::info!(
            rows = stamps.len(),
            "stamping {} stored rows with the digest of their synced fields (rows stored \
             without one: every row once after upgrading to this version, or rows changed \
             by hand); their synced fields do not change",
            stamps.len()
        );
        let stamped = write::stamp_digests(tx, &stamps).await?;
        tracing::info!(rows = stamped, "stamped {stamped} rows");
    }
    tracing::debug!(
        seconds = step.elapsed().as_secs_f64(),
        "applied PowerSchool rows"
    );

    let step = std::time::Instant::now();
    let new_user_ids = write::insert_users(tx, &plan.new_users, run_id).await?;
    write::update_users(tx, &plan.user_updates).await?;
    wrote(std::mem::take(&mut plan.new_users).len() + std::mem::take(&mut plan.user_updates).len());
    tracing::debug!(seconds = step.elapsed().as_secs_f64(), "applied users");

    let step = std::time::Instant::now();
    // A batch at a time: a first sync writes every connection, and their
    // write rows are never all held beside the plan they come from.
    let connections = &plan.connections;
    let write_connections = async |tx: &mut write::Tx<'_>| {
        let mut ids = HashMap::with_capacity(connections.len());
        for changes in connections.chunks(BATCH) {
            let rows = connection_writes(changes, &new_user_ids)?;
            ids.extend(write::upsert_connections(tx, &rows, run_id).await?);
        }
        let removed_ids: Vec<i64> = connections
            .iter()
            .filter(|c| c.kind == ConnectionChangeKind::Remove)
            .filter_map(|c| c.before.as_ref().map(|b| b.id))
            .collect();
        write::delete_connections(tx, &removed_ids).await?;
        Ok::<_, SyncError>(ids)
    };
    let ids = match inserts_most_connections(&plan.counts.connections) {
        true => write::with_keys_set_aside(tx, write_connections).await?.0,
        false => write_connections(tx).await?,
    };
    wrote(plan.connections.len());
    tracing::debug!(
        seconds = step.elapsed().as_secs_f64(),
        "applied connections"
    );

    // The audit keeps every change of access (a new connection, a removed
    // one, a different tier or case), with the verdicts that led to it:
    // built and appended a batch at a time, never all at once.
    let step = std::time::Instant::now();
    let mut next = 0;
    loop {
        let batch = audit_batch(plan, &new_user_ids, &ids, &mut next)?;
        if batch.is_empty() {
            break;
        }
        write::append_audit(tx, &batch, Some(run_id)).await?;
    }
    drop(ids);
    plan.connections = Vec::new();
    tracing::debug!(
        seconds = step.elapsed().as_secs_f64(),
        "appended the access audit"
    );
    write::insert_problems(tx, &plan.problems, run_id).await?;
    wrote(std::mem::take(&mut plan.problems).len());

    let counts = super::to_json(&plan.counts, "the plan's counts")?;
    runs::finish_succeeded(tx, run_id, &counts, report).await?;
    Ok(())
}

/// Whether a plan inserts so many connections (at least a batch, and at
/// least as many as it keeps, updates and removes together) that checking
/// their users in one pass afterwards beats a check per row (see
/// `store::write::with_keys_set_aside`): a district's first night.
fn inserts_most_connections(c: &ConnectionCounts) -> bool {
    c.created >= BATCH as u64 && c.created >= c.updated + c.unchanged + c.removed
}

fn user_id_of(u: UserRef, new_user_ids: &[i64]) -> Result<i64, SyncError> {
    match u {
        UserRef::Existing(id) => Ok(id),
        UserRef::New(index) => new_user_ids
            .get(index)
            .copied()
            .ok_or(SyncError::PlanUserMissing {
                index,
                created: new_user_ids.len(),
            }),
    }
}

/// The decided state of every connection of `changes` the plan creates or
/// updates.
fn connection_writes(
    changes: &[ConnectionChange],
    new_user_ids: &[i64],
) -> Result<Vec<ConnectionWrite>, SyncError> {
    changes
        .iter()
        .filter(|c| c.kind != ConnectionChangeKind::Remove)
        .map(|c| {
            Ok(ConnectionWrite {
                student_dcid: c.decision.student_dcid,
                user_id: user_id_of(c.user, new_user_ids)?,
                tier: c.decision.tier,
                case_code: c.decision.case,
                limits: c.decision.limits.clone(),
                origin: c.origin,
                present_in_powerschool: c.decision.present_in_powerschool,
                powerschool_guardian_id: guardian_id_after(&c.decision, c.before.as_deref()),
            })
        })
        .collect()
}

/// The next batch (up to `BATCH` rows) of audit rows, from position `*next`
/// of the plan's connections on: written ones whose tier or case changes
/// come in plan order, then the removed ones (a second pass, positions
/// offset by the number of connections).
fn audit_batch(
    plan: &Plan,
    new_user_ids: &[i64],
    ids: &HashMap<(i64, i64), i64>,
    next: &mut usize,
) -> Result<Vec<AuditRow>, SyncError> {
    let n = plan.connections.len();
    let mut batch = Vec::new();
    while *next < 2 * n && batch.len() < BATCH {
        let pass = *next / n;
        let Some(change) = plan.connections.get(*next % n) else {
            break;
        };
        *next += 1;
        let user_id = user_id_of(change.user, new_user_ids)?;
        if pass == 0 {
            if change.kind == ConnectionChangeKind::Remove {
                continue;
            }
            let tier_changed = change.before.as_ref().map(|b| b.tier) != Some(change.decision.tier);
            let case_changed =
                change.before.as_ref().and_then(|b| b.case) != Some(change.decision.case);
            if tier_changed || case_changed {
                let id = ids.get(&(change.decision.student_dcid, user_id)).copied();
                batch.push(audit_row(change, id, user_id)?);
            }
        } else if change.kind == ConnectionChangeKind::Remove {
            batch.push(audit_row(
                change,
                change.before.as_ref().map(|b| b.id),
                user_id,
            )?);
        }
    }
    Ok(batch)
}

/// The reasons of one audit row as sentences, serialised straight to
/// compact JSON text: only for a row the codes cannot say exactly.
#[derive(serde::Serialize)]
struct AuditReasons<'a> {
    action: ConnectionChangeKind,
    case: &'static str,
    case_letter: &'static str,
    limits: Vec<&'static str>,
    guardian_id: Option<i64>,
    verdicts: &'a [crate::rules::RuleVerdict],
}

/// One audit row: the reasons stored as codes and ids (rendered when the
/// audit is read), or as sentences when the codes cannot say them exactly.
fn audit_row(
    change: &ConnectionChange,
    connection_id: Option<i64>,
    user_id: i64,
) -> Result<AuditRow, SyncError> {
    let d = &change.decision;
    let keys = codes::RowKeys {
        student_dcid: d.student_dcid,
        user_id,
        tier_after: change.tier_after(),
        case: d.case,
    };
    // A run's decisions come coded (see `rules::Keep`); a held plan made
    // before, or a decision the codes could not say, has its verdicts.
    let (reason_codes, reasons) = match &d.coded {
        Some(coded) => match coded.for_row(&d.audit_keys(), &keys) {
            Ok(codes) => (Some(codes.to_string()), None),
            Err(Ok(decoded)) => (None, Some(prose_reasons(change, &decoded.verdicts)?)),
            Err(Err(source)) => {
                return Err(SyncError::UnreadableReasons {
                    student_dcid: d.student_dcid,
                    user_id,
                    source,
                })
            }
        },
        None => match codes::encode(&keys, d.guardian_id, &d.limits, &d.verdicts) {
            Some(codes) => (Some(codes), None),
            None => (None, Some(prose_reasons(change, &d.verdicts)?)),
        },
    };
    Ok(AuditRow {
        connection_id,
        student_dcid: d.student_dcid,
        user_id,
        tier_before: change.before.as_ref().map(|b| b.tier),
        tier_after: change.tier_after(),
        case_before: change.before.as_ref().and_then(|b| b.case),
        case_after: Some(d.case),
        reasons,
        reason_codes,
    })
}

fn prose_reasons(
    change: &ConnectionChange,
    verdicts: &[crate::rules::RuleVerdict],
) -> Result<String, SyncError> {
    let d = &change.decision;
    let reasons = AuditReasons {
        action: change.kind,
        case: d.case.as_str(),
        case_letter: d.case.letter(),
        limits: d.limits.iter().map(|l| l.as_str()).collect(),
        guardian_id: d.guardian_id,
        verdicts,
    };
    serde_json::to_string(&reasons).map_err(|source| SyncError::Serialise {
        what: "an audit row's reasons",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(created: u64, updated: u64, unchanged: u64, removed: u64) -> ConnectionCounts {
        ConnectionCounts {
            created,
            updated,
            unchanged,
            removed,
            ..Default::default()
        }
    }

    #[test]
    fn the_foreign_keys_are_set_aside_only_when_most_connections_are_new() {
        let batch = BATCH as u64;
        assert!(inserts_most_connections(&counts(batch, 0, 0, 0)));
        assert!(inserts_most_connections(&counts(3 * batch, 1, batch, 0)));
        assert!(!inserts_most_connections(&counts(batch - 1, 0, 0, 0)));
        assert!(!inserts_most_connections(&counts(batch, 0, batch, 1)));
        assert!(!inserts_most_connections(&counts(batch, batch + 1, 0, 0)));
    }
}
