//! The connection to PostgreSQL itself: connecting (creating the database
//! and migrating it), checking that it answers, dropping the demo's database,
//! and opening a transaction at the isolation level a caller needs.

use super::{Doing, StoreError};
use crate::config::DatabaseSettings;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Transaction};
use std::time::Duration;

/// Statements slower than this are logged as warnings.
const SLOW_STATEMENT: Duration = Duration::from_secs(60);

/// The time limits every connection of the pool sets when it opens.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// `statement_timeout` (zero: none).
    pub statement_timeout: Duration,
    /// `lock_timeout` (zero: none).
    pub lock_timeout: Duration,
    /// The server's TCP keepalive idle time for the connection.
    pub keepalive: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            statement_timeout: Duration::from_secs(900),
            lock_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(60),
        }
    }
}

impl SessionLimits {
    pub fn of(database: &DatabaseSettings) -> Self {
        SessionLimits {
            statement_timeout: database.statement_timeout,
            lock_timeout: database.lock_timeout,
            keepalive: database.keepalive,
        }
    }

    /// The settings as connection parameters: sent when the connection
    /// opens, so every connection of the pool has them, also after a
    /// reconnect.
    fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        let ms = |d: Duration| d.as_millis().to_string();
        let idle = self.keepalive.as_secs().max(1);
        options.options([
            ("statement_timeout", ms(self.statement_timeout)),
            ("lock_timeout", ms(self.lock_timeout)),
            ("tcp_keepalives_idle", idle.to_string()),
            ("tcp_keepalives_interval", (idle / 4).max(1).to_string()),
            ("tcp_keepalives_count", "4".to_string()),
        ])
    }
}

/// Connects to the configured database: [`connect`] with its URL, the URL
/// shown in errors (never the password), its pool size and time limits.
pub async fn connect_to(database: &DatabaseSettings) -> Result<PgPool, StoreError> {
    connect_limited(
        database.connect_url().expose(),
        &database.display_url(),
        database.max_connections,
        SessionLimits::of(database),
    )
    .await
}

/// [`connect_to`], waiting for a database that does not answer yet (a
/// server starting or failing over): each failed attempt is logged once,
/// with the wait before the next (1 s, doubling up to 60 s). Gives up only
/// when `stop` resolves (None) or on an error waiting will not fix.
pub async fn connect_waiting(
    database: &DatabaseSettings,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Option<PgPool>, StoreError> {
    tokio::pin!(stop);
    let mut wait = Duration::from_secs(1);
    let mut attempt = 1u32;
    loop {
        let error = match connect_to(database).await {
            Ok(pool) => return Ok(Some(pool)),
            // Refused, reset, starting up, timed out: worth waiting for. A
            // wrong password or a missing role is not.
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(
            attempt,
            wait_seconds = wait.as_secs(),
            "waiting for the database (attempt {attempt} failed, next in {} s): {error}",
            wait.as_secs()
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => return Ok(None),
        }
        wait = (wait * 2).min(Duration::from_secs(60));
        attempt += 1;
    }
}

/// Connects (creating the database if it does not exist) and migrates.
/// `display_url` is what error messages show: never the password.
pub async fn connect(
    url: &str,
    display_url: &str,
    max_connections: u32,
) -> Result<PgPool, StoreError> {
    connect_limited(url, display_url, max_connections, SessionLimits::default()).await
}

async fn connect_limited(
    url: &str,
    display_url: &str,
    max_connections: u32,
    limits: SessionLimits,
) -> Result<PgPool, StoreError> {
    let unreachable = |source| StoreError::Unreachable {
        url: display_url.to_string(),
        source,
    };
    let exists = Postgres::database_exists(url).await.map_err(unreachable)?;
    if !exists {
        tracing::info!(
            database = display_url,
            "database does not exist: creating it"
        );
        Postgres::create_database(url)
            .await
            .map_err(|source| StoreError::Create {
                url: display_url.to_string(),
                source,
            })?;
    }
    let options: PgConnectOptions = url.parse().map_err(unreachable)?;
    // A bulk INSERT of a whole district takes seconds by design; sqlx's
    // default (warn after 1 s) would cry wolf every night.
    let options = limits
        .apply(options)
        .log_slow_statements(log::LevelFilter::Warn, SLOW_STATEMENT);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(unreachable)?;
    migrate(&pool).await?;
    Ok(pool)
}

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// Drops the database at `url` if it exists, so that the next [`connect`]
/// creates it afresh (the demo starts from an empty database every time).
pub async fn drop_database_if_exists(url: &str, display_url: &str) -> Result<(), StoreError> {
    if Postgres::database_exists(url).await.unwrap_or(false) {
        Postgres::drop_database(url)
            .await
            .map_err(|source| StoreError::Create {
                url: display_url.to_string(),
                source,
            })?;
    }
    Ok(())
}

/// Does the database answer?
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(StoreError::Connection)
}

/// Begins a `REPEATABLE READ` transaction: every statement in it sees one
/// snapshot, and a concurrent write to a row it writes fails it instead of
/// being lost. `doing` says what the transaction is for, in errors.
pub async fn begin_repeatable_read(
    pool: &PgPool,
    doing: &str,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await.doing(doing)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .doing(doing)?;
    Ok(tx)
}

/// Whether a database error is one that passes (the server restarting or
/// failing over, a connection cut, a serialization conflict or deadlock):
/// SQLSTATE class 08, 57P01..57P03, 40001, 40P01, or the connection itself
/// failing (I/O, the pool timing out or closed under us).
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
        }),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

impl StoreError {
    /// Whether trying the same work again later may succeed (see [`is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { source, .. }
            | StoreError::Query { source, .. }
            | StoreError::Lock { source, .. }
            | StoreError::Connection(source) => is_transient(source),
            _ => false,
        }
    }

    /// The SQLSTATE of the database error behind this one, if any.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            StoreError::Query { source, .. }
            | StoreError::Lock { source, .. }
            | StoreError::Connection(source) => source
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_errors_are_told_from_lasting_ones() {
        let reset = || {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            ))
        };
        assert!(is_transient(&reset()));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        let query = StoreError::Query {
            doing: "x".into(),
            source: reset(),
        };
        assert!(query.is_transient());
        assert!(!StoreError::NoSuchRun(1).is_transient());
        assert!(!StoreError::WrongDistrict {
            recorded: "a".into(),
            configured: "b".into(),
        }
        .is_transient());
    }
}
