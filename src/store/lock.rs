//! The district's two PostgreSQL session advisory locks, for everyone who
//! takes them: the *district* lock the active daemon holds for its whole
//! life, and the *run* lock held around every run (nightly, `run --now`,
//! `sync --once`, `approve`, `spot`), so that runs never interleave.
//!
//! A lock is held on a connection of its own: it lives exactly as long as
//! that connection, so a process that dies, however it dies, lets go of it.
//! The daemon names its connection (`application_name`), which `status` and
//! a waiting standby show from `pg_locks` + `pg_stat_activity`.

use super::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::fmt;
use std::future::Future;
use std::str::FromStr;

/// The text whose `hashtext` keys the district's run lock: held around every
/// run (nightly, `run --now`, `sync --once`, `approve`, `spot`).
pub fn run_lock_key(district: &str) -> String {
    format!("student-sync-run:{district}")
}

/// The text keying the lock the active daemon holds for its whole life.
pub fn leader_lock_key(district: &str) -> String {
    format!("student-sync:{district}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// Held by the active daemon for its whole life.
    Leader,
    /// Held around each run.
    Run,
}

impl LockKind {
    /// The text whose `hashtext` is the lock key.
    pub fn key_text(self, district: &str) -> String {
        match self {
            LockKind::Leader => leader_lock_key(district),
            LockKind::Run => run_lock_key(district),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            LockKind::Leader => "district lock",
            LockKind::Run => "run lock",
        }
    }
}

/// A session holding one of the locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub lock: LockKind,
    /// The PostgreSQL backend pid (not the holder's own pid, which is in
    /// `application_name`).
    pub backend_pid: i32,
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    pub connected_since: Option<DateTime<Utc>>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.application_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => write!(f, "{name:?}")?,
            None => f.write_str("an unnamed session")?,
        }
        write!(f, " (PostgreSQL backend pid {}", self.backend_pid)?;
        if let Some(addr) = &self.client_addr {
            write!(f, ", client {addr}")?;
        }
        if let Some(since) = &self.connected_since {
            write!(
                f,
                ", connected since {}",
                since.format("%Y-%m-%d %H:%M:%S UTC")
            )?;
        }
        f.write_str(")")
    }
}

/// `student-sync <role> <host> <pid>`, as the lock's `application_name`.
pub fn application_name(role: &str) -> String {
    let host = super::hostname().unwrap_or_else(|| "unknown-host".to_string());
    // PostgreSQL keeps 63 bytes of it.
    let mut name = format!("student-sync {role} {host} {}", std::process::id());
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// A held lock; dropping it closes the connection, which releases the lock.
pub struct HeldLock {
    conn: PgConnection,
    /// The PostgreSQL backend pid of the session holding it.
    backend_pid: i32,
}

/// The run lock as `approve`, `spot` and `sync --once` hold it.
pub type RunLock = HeldLock;

impl HeldLock {
    /// Is the session (and so the lock) still there?
    pub async fn check(&mut self) -> Result<(), StoreError> {
        self.conn.ping().await.map_err(StoreError::Connection)
    }

    /// The PostgreSQL backend pid of the session that holds the lock: a
    /// write checks, right before it applies, that this session still
    /// holds the run lock (see `district::WriteGate`).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// Closes the connection politely, releasing the lock at once.
    pub async fn release(self) {
        let _ = self.conn.close().await;
    }
}

/// What waiting for a lock ended with.
pub enum Acquired {
    Held(HeldLock),
    /// A stop was requested while waiting.
    Stopped,
}

/// Takes the district's `kind` lock on a connection of its own named
/// `application_name`, waiting as long as it takes or until `stop` resolves.
/// When someone else holds it, `on_wait` is told who before the wait starts.
pub async fn acquire(
    connect_url: &str,
    pool: &PgPool,
    district: &str,
    kind: LockKind,
    application_name: &str,
    stop: impl Future<Output = ()>,
    on_wait: impl FnOnce(Option<LockHolder>),
) -> Result<Acquired, StoreError> {
    let options = PgConnectOptions::from_str(connect_url)
        .map_err(lock_error(
            "reading the database URL for the lock connection",
        ))?
        .application_name(application_name)
        .disable_statement_logging();
    let conn = PgConnection::connect_with(&options)
        .await
        .map_err(lock_error("opening the connection that holds the lock"))?;
    let before_waiting = async {
        let holder = holders(pool, district)
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|h| h.lock == kind));
        on_wait(holder);
    };
    take(conn, &kind.key_text(district), kind, before_waiting, stop).await
}

/// Takes the run lock keyed `hashtext(key_text)` on a connection taken out
/// of the pool, waiting as long as another session holds it; `on_wait` is
/// called once before waiting.
pub async fn wait_for_lock(
    pool: &PgPool,
    key_text: &str,
    on_wait: impl FnOnce(),
) -> Result<RunLock, StoreError> {
    let conn = pool
        .acquire()
        .await
        .map_err(lock_error("opening the connection that holds the run lock"))?
        .detach();
    let before_waiting = async { on_wait() };
    match take(
        conn,
        key_text,
        LockKind::Run,
        before_waiting,
        std::future::pending(),
    )
    .await?
    {
        Acquired::Held(lock) => Ok(lock),
        Acquired::Stopped => unreachable!("a pending stop never resolves"),
    }
}

/// Tries the lock on `conn`; when it is taken, runs `before_waiting` and
/// waits for it, giving up (and dropping the connection) if `stop` resolves.
async fn take(
    mut conn: PgConnection,
    key_text: &str,
    kind: LockKind,
    before_waiting: impl Future<Output = ()>,
    stop: impl Future<Output = ()>,
) -> Result<Acquired, StoreError> {
    // The lock's own session waits as long as it takes: no statement or lock
    // time limit of the pool applies to it.
    for unlimited in ["SET statement_timeout = 0", "SET lock_timeout = 0"] {
        sqlx::query(unlimited)
            .execute(&mut conn)
            .await
            .map_err(|e| lock_error(&format!("preparing the {}", kind.describe()))(e))?;
    }
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(key_text)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| lock_error(&format!("trying the {}", kind.describe()))(e))?;
    let backend_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| lock_error(&format!("preparing the {}", kind.describe()))(e))?;
    if got {
        return Ok(Acquired::Held(HeldLock { conn, backend_pid }));
    }
    before_waiting.await;
    // pg_advisory_lock returns the moment the holder's session ends, so a
    // standby takes over without polling delay.
    let wait = sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(key_text)
        .execute(&mut conn);
    tokio::select! {
        r = wait => {
            r.map_err(|e| lock_error(&format!("waiting for the {}", kind.describe()))(e))?;
        }
        // The query is abandoned mid-flight: the connection is dropped
        // rather than reused.
        _ = stop => return Ok(Acquired::Stopped),
    }
    Ok(Acquired::Held(HeldLock { conn, backend_pid }))
}

/// Whether the session `backend_pid` holds the district's run lock now.
pub async fn holds_run_lock(
    conn: &mut PgConnection,
    district: &str,
    backend_pid: i32,
) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid = $2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid::bigint = ((hashtext($1)::bigint >> 32) & 4294967295)
              AND l.objid::bigint = (hashtext($1)::bigint & 4294967295))",
    )
    .bind(run_lock_key(district))
    .bind(backend_pid)
    .fetch_one(&mut *conn)
    .await
    .map_err(lock_error("checking that the run lock is still held"))
}

const HOLDERS: &str = "
    SELECT k.kind, l.pid, a.client_addr::text, a.application_name, a.backend_start
    FROM (VALUES ('leader', hashtext($1)::bigint), ('run', hashtext($2)::bigint)) AS k (kind, key)
    JOIN pg_locks l
      ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND l.classid::bigint = ((k.key >> 32) & 4294967295)
     AND l.objid::bigint = (k.key & 4294967295)
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    ORDER BY k.kind";

/// Who holds the district's locks now (leader first).
pub async fn holders(pool: &PgPool, district: &str) -> Result<Vec<LockHolder>, StoreError> {
    type Row = (
        String,
        i32,
        Option<String>,
        Option<String>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(HOLDERS)
        .bind(LockKind::Leader.key_text(district))
        .bind(LockKind::Run.key_text(district))
        .fetch_all(pool)
        .await
        .map_err(lock_error("reading who holds the advisory locks"))?;
    Ok(rows
        .into_iter()
        .map(|(kind, pid, addr, name, since)| LockHolder {
            lock: if kind == "leader" {
                LockKind::Leader
            } else {
                LockKind::Run
            },
            backend_pid: pid,
            client_addr: addr,
            application_name: name,
            connected_since: since,
        })
        .collect())
}

/// Whether some session holds the district's run lock now.
pub async fn run_lock_held(pool: &PgPool, district: &str) -> Result<bool, StoreError> {
    Ok(holders(pool, district)
        .await?
        .iter()
        .any(|h| h.lock == LockKind::Run))
}

/// Names what the lock was doing in an sqlx error (see `StoreError::Lock`).
fn lock_error(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |source| StoreError::Lock {
        doing: what.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_error_names_the_lock_and_the_fix_and_claims_no_rollback() {
        let e = lock_error("waiting for the run lock")(sqlx::Error::PoolTimedOut);
        let text = e.to_string();
        assert!(text.contains("waiting for the run lock"), "{text}");
        assert!(text.contains("`student-sync status`"), "{text}");
        assert!(!text.contains("rolled back"), "{text}");
    }
}
