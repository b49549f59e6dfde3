//! PostgreSQL: migrations, loading the current state in bulk, writing a run's
//! changes in bulk inside one transaction, run history, the district's
//! advisory locks, problems and the access audit. Nothing else in
//! student-sync talks to the database, and this module talks to nothing else.

pub mod access;
pub mod baseline;
pub mod codes;
mod copy_out;
mod database;
pub mod digest;
pub mod district;
pub mod held;
pub mod lock;
pub mod progress;
pub mod prune;
pub mod runs;
pub mod scope;
pub mod seed;
pub mod state;
pub mod write;

pub use database::{
    begin_repeatable_read, connect, connect_to, connect_waiting, drop_database_if_exists,
    is_transient, migrate, ping,
};
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
         transaction rolled back; {advice})",
        advice = query_advice(source)
    )]
    Query { doing: String, source: sqlx::Error },
    /// A lock statement failed: no run's data is involved.
    #[error(
        "database error while {doing}: {source} (check that PostgreSQL is up and its log; \
         `student-sync status` shows who holds the locks)"
    )]
    Lock { doing: String, source: sqlx::Error },
    #[error("the database already holds SchoolEngage data ({what}); seed only loads a world into an empty database")]
    NotEmpty { what: String },
    /// A connection itself failed (a ping, a lock's session); whoever
    /// asked says what the connection was for.
    #[error("{0}")]
    Connection(sqlx::Error),
    #[error("world record {record}: {problem}")]
    BadSeed { record: String, problem: String },
    #[error("run {0} does not exist; `student-sync status` lists the recent runs")]
    NoSuchRun(i64),
    #[error("run {run_id} is {status}, not held: only a held run can be approved or discarded (see `student-sync status` for the run history)")]
    NotHeld { run_id: i64, status: RunStatus },
    #[error(
        "this database belongs to district {recorded:?}, but the settings say district \
         {configured:?}: two districts must never share one database. Point database.url \
         (DATABASE_URL) at {configured:?}'s own database, or fix the `district` setting \
         (STUDENT_SYNC_DISTRICT) if {recorded:?} is this district's name"
    )]
    WrongDistrict {
        recorded: String,
        configured: String,
    },
    #[error(
        "the run lock's session (PostgreSQL backend pid {backend_pid}) no longer holds it, so \
         another process may be running: nothing was applied. Check `student-sync status` \
         and run again"
    )]
    RunLockLost { backend_pid: i32 },
    #[error(
        "run {0} is held but its stored plan is missing; `student-sync discard {0}` drops \
         the run, and the next run plans again"
    )]
    HeldPlanMissing(i64),
    #[error(
        "writing {table}: {key} is already in the table, although the state the run read \
         at its start did not hold it: something else wrote to {table} during the run \
         (another student-sync on this database, or a hand edit). Nothing was applied \
         (the run's transaction rolled back); find that writer (`student-sync status` \
         shows who holds the run lock), then run again"
    )]
    WrittenMeanwhile { table: &'static str, key: String },
    #[error(
        "reading {table}: a stored row (its first column reads {key}) cannot be read: a \
         column's type, a NULL or a value outside the allowed codes is not what \
         student-sync's migrations made (was the table changed by hand?). Nothing was \
         written. Compare `\\d {table}` in psql with the migrations of this version, put \
         the table or the row back, then run again"
    )]
    UnreadableRow { table: String, key: String },
    #[error(
        "a connection this run wrote names a user that is not in users: {detail} The run \
         checked every connection when it put back the foreign key {key} of connections \
         (set aside while it inserted most connections). Nothing was applied (the run's \
         transaction rolled back). The user was most likely deleted in SchoolEngage while \
         the run was planning; run again (`student-sync run --now`), and the run plans without \
         it. If it repeats, report it with the run's log"
    )]
    ConnectionWithoutUser { key: String, detail: String },
    #[error(
        "creating user {email}: PostgreSQL did not return the new user's id, so nothing \
         was applied (the run's transaction rolled back); run again, and report it if it repeats"
    )]
    UserIdMissing { email: String },
    #[error(
        "access audit row {id} (student {student_dcid}, user {user_id}): {source}. The row \
         was not written by this version of student-sync; read it with `psql` \
         (SELECT * FROM access_audit WHERE id = {id}) and report it"
    )]
    BadAuditCodes {
        id: i64,
        student_dcid: i64,
        user_id: i64,
        source: crate::rules::verdict::codes::CodesError,
    },
    #[error(
        "run_problems row {id} (kind {kind}) has no message and not the facts its kind is \
         worded from; this version of student-sync cannot word it. Read it with `psql` \
         (SELECT * FROM run_problems WHERE id = {id}), or use the student-sync version that \
         wrote it"
    )]
    BadProblem { id: i64, kind: String },
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

/// What to do about a failed statement, by PostgreSQL's SQLSTATE where it
/// tells more than "look at the log".
fn query_advice(e: &sqlx::Error) -> &'static str {
    let code = e.as_database_error().and_then(|d| d.code());
    match code.as_deref() {
        Some("42501") => {
            "the database user student-sync connects as lacks a privilege this needs: grant \
             it the privilege PostgreSQL names (it owns its tables when it created them), \
             then run again"
        }
        Some("42P01" | "42703" | "42883") => {
            "a table, column or function is not what this version expects: student-sync \
             brings its schema up to date when it starts, so it was changed by hand since, \
             or another student-sync version shares this database; undo the hand change \
             (compare with a fresh database that this version created), then run again; if \
             nothing was changed, this is a bug: report it with this message"
        }
        Some("57014") => {
            "PostgreSQL cancelled the statement: it ran longer than \
             `database.statement_timeout_secs` (raise it), or someone cancelled it \
             (PostgreSQL's log says who); then run again"
        }
        Some("40001" | "40P01") => {
            "another session's transaction conflicted with this one (a deadlock is in \
             PostgreSQL's log, with the other session); the daemon retries such conflicts \
             by itself: run again if it keeps failing"
        }
        Some("55P03") => {
            "another session held a lock this needs for longer than \
             `database.lock_timeout_secs`: `student-sync status` shows the runs' locks, \
             PostgreSQL's `pg_locks` and `pg_stat_activity` who holds a table's or a row's; \
             run again once it is released (or raise the setting)"
        }
        Some("25006") => {
            "the database is read-only here (a standby?): point `database.url` at the \
             primary"
        }
        Some(c) if c.starts_with("53") => {
            "PostgreSQL ran out of a resource (disk, memory or connections; its log says \
             which): free some, then run again"
        }
        _ => "check that PostgreSQL is up and its log, then run again",
    }
}

/// This machine's name, as run rows and lock sessions record it.
pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
}

/// Rows are written this many at a time: big enough that a 150,000-student
/// district needs few round trips, small enough to keep bind arrays modest.
pub const BATCH: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// `sql`'s error as a run would report it, after `setup`, in one
    /// transaction (rolled back, with anything `setup` made).
    async fn reported(pool: &sqlx::PgPool, setup: &str, sql: &str) -> String {
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(setup).execute(&mut *tx).await.unwrap();
        let failed = sqlx::raw_sql(sql).execute(&mut *tx).await.doing("testing");
        tx.rollback().await.unwrap();
        failed.unwrap_err().to_string()
    }

    /// A REPEATABLE READ transaction updates a row another session changed
    /// after its snapshot (40001), as a run would report it.
    async fn serialization_failure(pool: &sqlx::PgPool) -> String {
        let row = "INSERT INTO users (email) VALUES ('conflict@example.org')";
        sqlx::raw_sql(row).execute(pool).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        let snapshot =
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM users";
        sqlx::raw_sql(snapshot).execute(&mut *tx).await.unwrap();
        let update = |name: &str| {
            format!("UPDATE users SET first_name = '{name}' WHERE email = 'conflict@example.org'")
        };
        sqlx::raw_sql(&update("B")).execute(pool).await.unwrap();
        let failed = sqlx::raw_sql(&update("A")).execute(&mut *tx).await;
        tx.rollback().await.unwrap();
        failed.doing("testing").unwrap_err().to_string()
    }

    /// Two transactions each wait for the row the other holds: PostgreSQL
    /// ends one of them (40P01), as a run would report it.
    async fn deadlock(pool: &sqlx::PgPool) -> String {
        let rows = "INSERT INTO users (email) VALUES ('one@example.org'), ('two@example.org')";
        sqlx::raw_sql(rows).execute(pool).await.unwrap();
        let lock =
            |email: &str| format!("UPDATE users SET first_name = 'x' WHERE email = '{email}'");
        let (mut first, mut second) = (pool.begin().await.unwrap(), pool.begin().await.unwrap());
        sqlx::raw_sql(&lock("one@example.org"))
            .execute(&mut *first)
            .await
            .unwrap();
        sqlx::raw_sql(&lock("two@example.org"))
            .execute(&mut *second)
            .await
            .unwrap();
        let (a, b) = (lock("two@example.org"), lock("one@example.org"));
        let (one, two) = tokio::join!(
            sqlx::raw_sql(&a).execute(&mut *first),
            sqlx::raw_sql(&b).execute(&mut *second),
        );
        let failed: Vec<String> = [one, two]
            .into_iter()
            .filter_map(|r| r.doing("testing").err().map(|e| e.to_string()))
            .collect();
        first.rollback().await.unwrap();
        second.rollback().await.unwrap();
        assert_eq!(failed.len(), 1, "exactly one side is ended: {failed:?}");
        failed.concat()
    }

    #[sqlx::test]
    async fn a_failed_statement_s_advice_follows_postgresql_s_error_code(pool: sqlx::PgPool) {
        let slow = reported(
            &pool,
            "SET LOCAL statement_timeout = 10",
            "SELECT pg_sleep(5)",
        )
        .await;
        assert!(slow.contains("raise it"), "{slow}");
        assert!(slow.contains("database.statement_timeout_secs"), "{slow}");

        let changed = reported(&pool, "", "SELECT no_such_column FROM users").await;
        assert!(
            changed.contains("not what this version expects"),
            "{changed}"
        );

        // Roles are the server's, not the test database's: this one is
        // made and dropped inside the rolled-back transaction.
        let role = format!("student_sync_advice_{}", std::process::id());
        let setup = format!("CREATE ROLE {role}; SET LOCAL ROLE {role}");
        let denied = reported(&pool, &setup, "SELECT count(*) FROM users").await;
        assert!(denied.contains("lacks a privilege"), "{denied}");

        let standby = reported(
            &pool,
            "SET LOCAL transaction_read_only = on",
            "INSERT INTO users (email) VALUES ('a@example.org')",
        )
        .await;
        assert!(
            standby.contains("point `database.url` at the primary"),
            "{standby}"
        );

        // Another session holds the table: the wait gives up at once.
        let mut holder = pool.begin().await.unwrap();
        sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *holder)
            .await
            .unwrap();
        let locked = reported(
            &pool,
            "SET LOCAL lock_timeout = 50",
            "SELECT count(*) FROM users",
        )
        .await;
        holder.rollback().await.unwrap();
        assert!(locked.contains("database.lock_timeout_secs"), "{locked}");

        // A sort that must spill to disk, with no disk allowed (class 53).
        let resources = reported(
            &pool,
            "SET LOCAL work_mem = '64kB'; SET LOCAL temp_file_limit = 1",
            "SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC) s",
        )
        .await;
        assert!(resources.contains("ran out of a resource"), "{resources}");

        let conflict = serialization_failure(&pool).await;
        assert!(conflict.contains("the daemon retries"), "{conflict}");
        let deadlock = deadlock(&pool).await;
        assert!(deadlock.contains("the daemon retries"), "{deadlock}");

        let other = reported(&pool, "", "SELECT 1 / 0").await;
        assert!(
            other.contains("check that PostgreSQL is up and its log"),
            "{other}"
        );
        for message in [
            &slow, &changed, &denied, &standby, &locked, &resources, &conflict, &deadlock, &other,
        ] {
            assert!(message.contains("transaction rolled back"), "{message}");
        }
    }
}
