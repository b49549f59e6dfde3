//! Waiting for the district's run lock (a PostgreSQL session advisory lock)
//! outside the daemon: `approve` and `spot` take the same lock as a nightly
//! run, so they never interleave with one. The key texts live here so the
//! daemon and the sync agree on them; this holds it on a connection
//! taken out of the pool, so the lock lives exactly as long as that
//! connection.

use super::{Doing, StoreError};
use sqlx::{Connection, PgConnection, PgPool};

/// The text whose `hashtext` keys the district's run lock: held around every
/// run (nightly, `run --now`, `sync --once`, `approve`, `spot`).
pub fn run_lock_key(district: &str) -> String {
    format!("student-sync-run:{district}")
}

/// The text keying the lock the active daemon holds for its whole life.
pub fn leader_lock_key(district: &str) -> String {
    format!("student-sync:{district}")
}

/// A held run lock; dropping it closes the connection, which releases it.
pub struct RunLock {
    conn: PgConnection,
}

impl RunLock {
    /// Releases the lock at once.
    pub async fn release(self) {
        let _ = self.conn.close().await;
    }
}

/// Takes the lock keyed `hashtext(key_text)`, waiting as long as another
/// session holds it; `on_wait` is called once before waiting.
pub async fn wait_for_lock(
    pool: &PgPool,
    key_text: &str,
    on_wait: impl FnOnce(),
) -> Result<RunLock, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .doing("opening the connection that holds the run lock")?
        .detach();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(key_text)
        .fetch_one(&mut conn)
        .await
        .doing("trying the run lock")?;
    if !got {
        on_wait();
        sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
            .bind(key_text)
            .execute(&mut conn)
            .await
            .doing("waiting for the run lock")?;
    }
    Ok(RunLock { conn })
}
