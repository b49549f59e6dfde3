//! PostgreSQL session advisory locks, each on a connection of its own (not
//! from the pool, whose connections come and go): the lock lives exactly as
//! long as that connection, so a process that dies, however it dies, lets go
//! of it. The connection's `application_name` says who holds it, which
//! `status` and a waiting standby show from `pg_locks` + `pg_stat_activity`.

use super::signals::Shutdown;
use super::{db_err, DaemonError};
use crate::config::Settings;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::fmt;
use std::str::FromStr;

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
            LockKind::Leader => crate::store::lock::leader_lock_key(district),
            LockKind::Run => crate::store::lock::run_lock_key(district),
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
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string());
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
}

impl HeldLock {
    /// Is the session (and so the lock) still there?
    pub async fn check(&mut self) -> Result<(), sqlx::Error> {
        self.conn.ping().await
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

async fn open(settings: &Settings, application_name: &str) -> Result<PgConnection, DaemonError> {
    let options = PgConnectOptions::from_str(settings.database.connect_url().expose())
        .map_err(db_err("reading the database URL for the lock connection"))?
        .application_name(application_name)
        .disable_statement_logging();
    PgConnection::connect_with(&options)
        .await
        .map_err(db_err("opening the connection that holds the lock"))
}

/// Takes the lock, waiting as long as it takes (or until a stop). When
/// someone else holds it, `on_wait` is told who before the wait starts.
pub async fn acquire(
    settings: &Settings,
    pool: &PgPool,
    kind: LockKind,
    application_name: &str,
    shutdown: &mut Shutdown,
    on_wait: impl FnOnce(Option<LockHolder>),
) -> Result<Acquired, DaemonError> {
    let key = kind.key_text(&settings.district);
    let mut conn = open(settings, application_name).await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(&key)
        .fetch_one(&mut conn)
        .await
        .map_err(db_err("trying the advisory lock"))?;
    if got {
        return Ok(Acquired::Held(HeldLock { conn }));
    }
    let holder = holders(pool, &settings.district)
        .await
        .ok()
        .and_then(|all| all.into_iter().find(|h| h.lock == kind));
    on_wait(holder);
    // pg_advisory_lock returns the moment the holder's session ends, so a
    // standby takes over without polling delay.
    let wait = sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(&key)
        .execute(&mut conn);
    tokio::select! {
        r = wait => {
            r.map_err(db_err("waiting for the advisory lock"))?;
            Ok(Acquired::Held(HeldLock { conn }))
        }
        _ = shutdown.requested() => {
            // The query is abandoned mid-flight: drop the connection rather
            // than reuse it.
            drop(conn);
            Ok(Acquired::Stopped)
        }
    }
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
pub async fn holders(pool: &PgPool, district: &str) -> Result<Vec<LockHolder>, DaemonError> {
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
        .map_err(db_err("reading who holds the advisory locks"))?;
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
