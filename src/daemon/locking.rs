//! How the daemon and `run --now` take the district's locks and keep the
//! district lock: naming themselves, saying who they wait for, stopping the
//! wait on a stop request, and noticing when the district lock's connection
//! goes. The locks themselves are `store::lock`.

use super::signals::Shutdown;
use super::DaemonError;
use crate::config::Settings;
use crate::store::lock::{self, Acquired, HeldLock, LockHolder, LockKind};
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::oneshot;

/// How often the district lock's connection is checked.
const LOCK_CHECK: Duration = Duration::from_secs(15);

/// Takes the district's `kind` lock on a session named `me` (see
/// `lock::application_name`), waiting as long as it takes; `on_wait` hears
/// who holds it first. None when a stop was requested while waiting.
pub async fn take(
    settings: &Settings,
    pool: &PgPool,
    kind: LockKind,
    me: &str,
    shutdown: &mut Shutdown,
    on_wait: impl FnOnce(String),
) -> Result<Option<HeldLock>, DaemonError> {
    let acquired = lock::acquire(
        settings.database.connect_url().expose(),
        pool,
        &settings.district,
        kind,
        me,
        shutdown.requested(),
        |holder| on_wait(holder_text(holder.as_ref())),
    )
    .await?;
    Ok(match acquired {
        Acquired::Held(l) => Some(l),
        Acquired::Stopped => None,
    })
}

fn holder_text(holder: Option<&LockHolder>) -> String {
    holder
        .map(|h| h.to_string())
        .unwrap_or_else(|| "another session (it could not be identified)".to_string())
}

/// Holds the district lock on its own task, checking its connection; tells
/// the loop if it goes (PostgreSQL restarted, network cut) — another
/// instance may then be active. Sending on the returned sender releases it.
pub fn keep(mut lock: HeldLock) -> (oneshot::Sender<()>, oneshot::Receiver<String>) {
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (lost_tx, lost_rx) = oneshot::channel::<String>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop_rx => {
                    lock.release().await;
                    return;
                }
                _ = tokio::time::sleep(LOCK_CHECK) => {
                    if let Err(e) = lock.check().await {
                        let _ = lost_tx.send(e.to_string());
                        return;
                    }
                }
            }
        }
    });
    (stop_tx, lost_rx)
}
