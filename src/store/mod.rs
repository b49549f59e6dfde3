//! PostgreSQL: migrations, loading the current state in bulk, writing a run's
//! changes in bulk inside one transaction, run history, problems and the
//! access audit. Nothing else in student-sync talks to the database, and this
//! module talks to nothing else.

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;
use std::time::Duration;

pub mod access;
pub mod codes;
pub mod held;
pub mod lock;
pub mod runs;
pub mod seed;
pub mod state;
pub mod write;

pub use held::{latest_held, HeldRun};
pub use runs::{RunRecord, RunStatus, RunTrigger};
pub use state::CurrentState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot reach PostgreSQL at {url}: {source}. Is it running? Start it with \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
         (or `systemctl start postgresql`), or set DATABASE_URL to the right server"
    )]
    Unreachable { url: String, source: sqlx::Error },
    #[error("cannot create the database {url}: {source}. Does the user have CREATEDB, or create it by hand")]
    Create { url: String, source: sqlx::Error },
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "database error while {doing}: {source} (nothing of a run is half-written: its \
         transaction rolled back; check that PostgreSQL is up and its log, then run again)"
    )]
    Query { doing: String, source: sqlx::Error },
    #[error("the database already holds SchoolEngage data ({what}); seed only loads a world into an empty database")]
    NotEmpty { what: String },
    #[error("world record {record}: {problem}")]
    BadSeed { record: String, problem: String },
    #[error("run {0} does not exist; `student-sync status` lists the recent runs")]
    NoSuchRun(i64),
    #[error("run {run_id} is {status}, not held: only a held run can be approved or discarded (see `student-sync status` for the run history)")]
    NotHeld { run_id: i64, status: String },
}

/// Adds what the database was doing to an sqlx error.
pub(crate) trait Doing<T> {
    fn doing(self, what: &str) -> Result<T, StoreError>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query {
            doing: what.to_string(),
            source,
        })
    }
}

/// Connects (creating the database if it does not exist) and migrates.
/// `display_url` is what error messages show: never the password.
/// Statements slower than this are logged as warnings.
const SLOW_STATEMENT: Duration = Duration::from_secs(60);

pub async fn connect(
    url: &str,
    display_url: &str,
    max_connections: u32,
) -> Result<PgPool, StoreError> {
    let exists =
        Postgres::database_exists(url)
            .await
            .map_err(|source| StoreError::Unreachable {
                url: display_url.to_string(),
                source,
            })?;
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
    let options: PgConnectOptions = url.parse().map_err(|source| StoreError::Unreachable {
        url: display_url.to_string(),
        source,
    })?;
    // A bulk INSERT of a whole district takes seconds by design; sqlx's
    // default (warn after 1 s) would cry wolf every night.
    let options = options.log_slow_statements(log::LevelFilter::Warn, SLOW_STATEMENT);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Unreachable {
            url: display_url.to_string(),
            source,
        })?;
    migrate(&pool).await?;
    Ok(pool)
}

use sqlx::Postgres;

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// Rows are written this many at a time: big enough that a 150,000-student
/// district needs few round trips, small enough to keep bind arrays modest.
pub const BATCH: usize = 10_000;
