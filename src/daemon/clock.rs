//! Time as the daemon loop sees it, injectable so tests can drive the loop
//! through several nights (and clock changes) without waiting for midnight.
//! The real daemon uses [`SchedulerClock`], whose waits are
//! tokio-cron-scheduler jobs.

use super::DaemonError;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves at (or just after) `when` by this clock.
    fn sleep_until(&self, when: DateTime<Utc>) -> impl Future<Output = ()> + Send;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The longest single sleep. tokio sleeps on the monotonic clock, which stops
/// while a machine is suspended and ignores a wall-clock correction; waking
/// at least once a minute to look at the wall clock keeps the fire on time.
const MAX_NAP: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, when: DateTime<Utc>) {
        loop {
            let left = match (when - Utc::now()).to_std() {
                Ok(left) if !left.is_zero() => left,
                _ => return,
            };
            tokio::time::sleep(left.min(MAX_NAP)).await;
        }
    }
}

/// How late a tokio-cron-scheduler wake-up may be before the wall clock
/// fires instead (the scheduler looks at its jobs every 500 ms).
const BACKSTOP: Duration = Duration::from_secs(2);

/// The daemon's production clock: every wake-up for a scheduled fire is a
/// one-shot job on a tokio-cron-scheduler `JobScheduler`, so the firing goes
/// through tokio-cron-scheduler; the instant is computed by
/// [`next_fire`](super::schedule::next_fire) from the configured cron read in
/// the chrono-tz zone (see `schedule.rs` for why tokio-cron-scheduler's own
/// repeating cron job is not used: it freezes the UTC offset at creation).
///
/// The scheduler compares its ticks with the wall clock (every 500 ms), so a
/// suspended machine or a clock step still fires at the right wall time.
#[derive(Clone)]
pub struct SchedulerClock {
    scheduler: JobScheduler,
}

impl SchedulerClock {
    pub async fn start() -> Result<SchedulerClock, DaemonError> {
        let scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
        scheduler.start().await.map_err(scheduler_error)?;
        Ok(SchedulerClock { scheduler })
    }
}

fn scheduler_error(e: JobSchedulerError) -> DaemonError {
    DaemonError::Internal(format!(
        "the tokio-cron-scheduler job scheduler cannot start ({e:?}); restart the daemon"
    ))
}

/// Removes a one-shot job whose wait was abandoned (a stop request), so a
/// dropped wait never fires later.
struct RemoveOnDrop {
    scheduler: JobScheduler,
    id: Option<uuid::Uuid>,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let scheduler = self.scheduler.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = scheduler.remove(&id).await;
                });
            }
        }
    }
}

impl Clock for SchedulerClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, when: DateTime<Utc>) -> impl Future<Output = ()> + Send {
        let scheduler = self.scheduler.clone();
        async move {
            let left = (when - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if !left.is_zero() {
                let (tx, rx) = oneshot::channel::<()>();
                let tx = std::sync::Mutex::new(Some(tx));
                let job = Job::new_one_shot_at_instant_async(
                    std::time::Instant::now() + left,
                    move |_id, _scheduler| {
                        let tx = tx.lock().ok().and_then(|mut t| t.take());
                        Box::pin(async move {
                            if let Some(tx) = tx {
                                let _ = tx.send(());
                            }
                        })
                    },
                );
                let added = match job {
                    Ok(job) => scheduler.add(job).await.ok(),
                    Err(_) => None,
                };
                match added {
                    Some(id) => {
                        let _guard = RemoveOnDrop {
                            scheduler: scheduler.clone(),
                            id: Some(id),
                        };
                        // Backstop: tokio-cron-scheduler's actors report
                        // their own failures only in its logs; were a
                        // wake-up lost there, the night's run still starts,
                        // on the wall clock, a moment late.
                        let backstop =
                            when + chrono::Duration::from_std(BACKSTOP).unwrap_or_default();
                        tokio::select! {
                            _ = rx => {}
                            _ = SystemClock.sleep_until(backstop) => {
                                tracing::warn!(
                                    %when,
                                    "tokio-cron-scheduler did not fire the wake-up for {when}; firing on the wall clock"
                                );
                            }
                        }
                    }
                    None => {
                        tracing::warn!(
                            "tokio-cron-scheduler refused the wake-up job; waiting on the wall clock instead"
                        );
                    }
                }
            }
            // The scheduler keeps whole seconds and may fire a little early;
            // and without it this is the fallback. Never return before `when`.
            SystemClock.sleep_until(when).await
        }
    }
}
