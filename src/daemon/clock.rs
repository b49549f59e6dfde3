//! Time as the daemon loop sees it, injectable so tests can drive the loop
//! through several nights (and clock changes) without waiting for midnight.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

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

    fn sleep_until(&self, when: DateTime<Utc>) -> impl Future<Output = ()> + Send {
        async move {
            loop {
                let left = match (when - Utc::now()).to_std() {
                    Ok(left) if !left.is_zero() => left,
                    _ => return,
                };
                tokio::time::sleep(left.min(MAX_NAP)).await;
            }
        }
    }
}
