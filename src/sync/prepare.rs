//! What a run reads and decides before it writes: the current state, read
//! in a read-only snapshot (during the fetch when the pool can spare the
//! connection), the plan made from it and the fetched records, and the
//! plan's safety measures. `plan` (the command) and a real run both come
//! through here.

use super::{baseline, plan, safety, Plan, SyncError};
use crate::config::Settings;
use crate::powerschool::DistrictSnapshot;
use crate::store::digest::Detail;
use crate::store::runs;
use crate::store::state::{CurrentState, StateSnapshot};
use chrono::NaiveDate;
use sqlx::PgPool;
use std::time::Instant;

/// Whether the pool can spare a connection for the state's snapshot during
/// the fetch and still serve the run's own writes (its phase, its progress)
/// meanwhile: two free connections. With fewer (a small
/// `database.max_connections`, the run lock holding one) the state is read
/// after the fetch, as the snapshot then is the only connection in use.
pub(super) fn may_read_during_fetch(pool: &PgPool) -> bool {
    let max = pool.options().get_max_connections();
    let in_use = pool
        .size()
        .saturating_sub(u32::try_from(pool.num_idle()).unwrap_or(u32::MAX));
    max.saturating_sub(in_use) >= 2
}

/// What a plan is made against, read from the database: the last full
/// run's figures for the safety check, and the current state in its
/// still-open read-only snapshot.
pub struct StateRead {
    last: Option<runs::LastFullRun>,
    last_schools: std::collections::BTreeMap<i64, plan::SchoolCounts>,
    snapshot: StateSnapshot,
    state: CurrentState,
}

/// Reads the last full run's figures, then opens the state's snapshot and
/// loads the state in it (a run reads the mirrored tables as digests, the
/// `plan` command row by row, to show what changed). The figures are read
/// first: while the snapshot is open, this path takes no other connection
/// of the pool.
pub async fn read_state(pool: &PgPool, detail: Detail) -> Result<StateRead, SyncError> {
    let last = runs::last_full_success(pool).await?;
    let last_schools = match &last {
        Some(l) => baseline::last_school_counts(pool, l.id).await?,
        None => Default::default(),
    };
    let loading = Instant::now();
    let (snapshot, state) = StateSnapshot::open(pool, detail).await?;
    tracing::debug!(
        seconds = loading.elapsed().as_secs_f64(),
        "current state read"
    );
    Ok(StateRead {
        last,
        last_schools,
        snapshot,
        state,
    })
}

/// What a run decides before it writes: the plan, its safety measures, and
/// the fingerprint of the state it was made from. `plan` (the command) and
/// a real run both come through here.
pub struct Prepared {
    pub plan: Plan,
    pub safety: safety::SafetyCheck,
    /// Taken only when the plan is held (it is stored with the held plan);
    /// empty otherwise.
    pub fingerprint: String,
    pub state: CurrentState,
}

/// Loads the state (read-only), plans and measures the plan. Writes nothing.
/// The state's snapshot stays open until the thresholds are judged, so a
/// held plan's fingerprint is of exactly the state it was made from; the
/// fingerprint (a pass over every live row) is only taken for a held plan.
/// The plan is made from a copy of `snapshot` (a run hands its own over to
/// `prepare_owned` instead).
pub async fn prepare(
    pool: &PgPool,
    settings: &Settings,
    snapshot: &DistrictSnapshot,
    today: NaiveDate,
) -> Result<Prepared, SyncError> {
    let read = read_state(pool, Detail::Rows).await?;
    prepare_owned(settings, snapshot.clone(), read, today).await
}

/// `prepare` from a state already read (see `read_state`), consuming the
/// fetched snapshot: its rows move into the plan and are freed as it is
/// made.
pub async fn prepare_owned(
    settings: &Settings,
    snapshot: DistrictSnapshot,
    read: StateRead,
    today: NaiveDate,
) -> Result<Prepared, SyncError> {
    let StateRead {
        last,
        last_schools,
        snapshot: mut read,
        mut state,
    } = read;
    let planning = Instant::now();
    let sync_settings = settings.sync.clone();
    let (mut plan, mut state) = off_the_runtime(move || {
        let plan = plan::plan_owned(snapshot, &mut state, &sync_settings, today);
        (plan, state)
    })
    .await?;
    if state.digests.is_some() && !plan.leaving.is_empty() {
        let leaving = read.students(&plan.leaving).await?;
        if leaving.len() != plan.leaving.len() {
            return Err(SyncError::LeavingStudentsMissing {
                leaving: plan.leaving.len(),
                found: leaving.len(),
            });
        }
        plan.add_leaving_rows(leaving);
    }
    if let Some(digests) = state.digests.as_mut() {
        plan.stamps = std::mem::take(&mut digests.stamps);
    }
    tracing::debug!(seconds = planning.elapsed().as_secs_f64(), "plan made");
    let safety = safety::check(
        &settings.safety,
        &plan,
        &state,
        last.as_ref(),
        &last_schools,
    );
    let fingerprint = if safety.holds() {
        read.fingerprint().await?
    } else {
        String::new()
    };
    read.close().await?;
    Ok(Prepared {
        plan,
        safety,
        fingerprint,
        state,
    })
}

/// Runs `work` (a plan: seconds of processor time on a large district) on
/// tokio's blocking threads, in the caller's span, so that the runtime's own
/// threads stay free meanwhile: the run's "still planning" heartbeat, the
/// daemon's health answers and its watchdog keep going. A panic in `work`
/// goes on in the caller, as if `work` had run there.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SyncError> {
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(done) => Ok(done),
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(SyncError::Cancelled(
                "the process was shutting down while the plan was being made".into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// On a runtime of one thread, another task runs while `work` does:
    /// `work` waits for word from that task. Run on the runtime's thread,
    /// it would wait in vain (and time out).
    #[tokio::test(flavor = "current_thread")]
    async fn other_tasks_run_while_the_plan_is_made() {
        let (told, hear) = std::sync::mpsc::channel::<()>();
        let telling = tokio::spawn(async move {
            tokio::task::yield_now().await;
            told.send(()).unwrap_or_default();
        });
        let heard = off_the_runtime(move || hear.recv_timeout(Duration::from_secs(60)).is_ok())
            .await
            .unwrap_or_default();
        telling.await.unwrap_or_default();
        assert!(heard, "the other task ran while work was waiting");
    }

    #[tokio::test]
    async fn a_panic_in_the_plan_goes_on_in_the_caller() {
        let caught = tokio::spawn(off_the_runtime(|| -> u8 { panic!("a bug in the plan") }))
            .await
            .unwrap_err();
        assert!(caught.is_panic());
        let message = caught.into_panic();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"a bug in the plan"));
    }
}
