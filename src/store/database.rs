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

/// Connects to the configured database: [`connect`] with its URL, the URL
/// shown in errors (never the password) and its pool size.
pub async fn connect_to(database: &DatabaseSettings) -> Result<PgPool, StoreError> {
    connect(
        database.connect_url().expose(),
        &database.display_url(),
        database.max_connections,
    )
    .await
}

/// Connects (creating the database if it does not exist) and migrates.
/// `display_url` is what error messages show: never the password.
pub async fn connect(
    url: &str,
    display_url: &str,
    max_connections: u32,
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
    let options = options.log_slow_statements(log::LevelFilter::Warn, SLOW_STATEMENT);
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
