#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! One writer, provably; the database may blink; transport (issue 12,
//! points 7, 8, 9): real PostgreSQL, the fake PowerSchool over real HTTP.
//! - a database records the district it belongs to, and refuses another's;
//! - every write holds the database's writer lock and checks the run lock
//!   again right before applying;
//! - approve and discard racing: exactly one wins;
//! - a run whose connection is terminated by the server mid-run is tried
//!   again and succeeds;
//! - a loopback PowerSchool is never reached through a proxy.

mod common;

use common::*;
use sqlx::PgPool;
use std::time::Duration;
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::harness::world::PowerSchoolSide;
use student_sync::store::district::{self, WRITER_LOCK_KEY};
use student_sync::store::StoreError;
use student_sync::sync::{self, SyncError};

fn small() -> PowerSchoolSide {
    fake_powerschool::generate(120, 5)
}

async fn statuses(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT id, status FROM sync_runs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The backend pids waiting (not granted) for an advisory lock in this database.
async fn waiting_for_advisory_lock(pool: &PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks
         WHERE locktype = 'advisory' AND NOT granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY pid",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Polls until `n` sessions wait for an advisory lock; their pids.
async fn until_waiting(pool: &PgPool, n: usize) -> Vec<i32> {
    for _ in 0..1200 {
        let pids = waiting_for_advisory_lock(pool).await;
        if pids.len() >= n {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} sessions never waited for the writer lock");
}

#[sqlx::test]
async fn a_second_districts_settings_on_the_same_database_are_refused(pool: PgPool) {
    let fake = start_fake(small(), Faults::default()).await;
    let mut north = settings_for(&fake);
    north.district = "north".into();
    sync::run_once(&pool, &north, &client(&north), &options(&north))
        .await
        .expect("the first district's run succeeds");
    assert_eq!(
        district::recorded(&pool).await.unwrap().as_deref(),
        Some("north"),
        "the first write records the district"
    );
    let live = fingerprint(&pool).await;
    let runs_before = statuses(&pool).await;

    let mut south = north.clone();
    south.district = "south".into();
    let err = sync::run_once(&pool, &south, &client(&south), &options(&south))
        .await
        .expect_err("another district's settings are refused");
    let text = err.to_string();
    assert!(
        matches!(err, SyncError::Store(StoreError::WrongDistrict { .. })),
        "{text}"
    );
    assert!(
        text.contains("\"north\"") && text.contains("\"south\""),
        "{text}"
    );
    assert!(text.contains("database.url"), "names the fix: {text}");
    assert_eq!(fingerprint(&pool).await, live, "nothing was written");
    assert_eq!(statuses(&pool).await, runs_before, "not even a run row");
    assert!(district::check(&pool, "south").await.is_err());
    district::check(&pool, "north").await.unwrap();

    // The write path refuses it too, whatever leads there.
    let gate = district::WriteGate::new("south", None);
    let Err(err) = district::begin_write(&pool, &gate, "a test write", false).await else {
        panic!("the writer gate refuses another district");
    };
    assert!(matches!(err, StoreError::WrongDistrict { .. }), "{err}");
    fake.shutdown().await;
}

#[sqlx::test]
async fn a_run_that_lost_its_run_lock_applies_nothing(pool: PgPool) {
    let fake = start_fake(small(), Faults::default()).await;
    let settings = settings_for(&fake);
    let live = fingerprint(&pool).await;
    let mut opts = options(&settings);
    // A session that holds no run lock (as after the lock's connection died).
    let me: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    opts.run_lock_backend = Some(me);
    let err = sync::run_once(&pool, &settings, &client(&settings), &opts)
        .await
        .expect_err("the run lock is checked again before applying");
    assert!(
        matches!(err, SyncError::Store(StoreError::RunLockLost { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert_eq!(fingerprint(&pool).await, live);
    let runs = statuses(&pool).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "failed");
    fake.shutdown().await;
}

/// Night 1 applies the district; night 2's PowerSchool returns no students
/// and is held. Returns the held run's id.
async fn held_run(pool: &PgPool) -> (i64, student_sync::config::Settings) {
    let fake = start_fake(small(), Faults::default()).await;
    let settings = settings_for(&fake);
    sync::run_once(pool, &settings, &client(&settings), &options(&settings))
        .await
        .expect("night 1 succeeds");
    fake.shutdown().await;
    let mut empty = small();
    empty.students.clear();
    let fake = start_fake(empty, Faults::default()).await;
    let settings = settings_for(&fake);
    let run_id =
        match sync::run_once(pool, &settings, &client(&settings), &options(&settings)).await {
            Err(SyncError::Held { run_id, .. }) => run_id,
            other => panic!("expected a hold, got {:?}", other.map(|o| o.run_id)),
        };
    fake.shutdown().await;
    (run_id, settings)
}

#[sqlx::test]
async fn approve_and_discard_racing_exactly_one_wins(pool: PgPool) {
    let (run_id, settings) = held_run(&pool).await;
    // The test holds the writer lock, so both commands reach it and wait:
    // released, they race for the run.
    let mut blocker = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let approve = {
        let pool = pool.clone();
        let settings = settings.clone();
        tokio::spawn(async move { sync::hold::approve(&pool, &settings, run_id, "approver").await })
    };
    let discard = {
        let pool = pool.clone();
        tokio::spawn(async move { sync::hold::discard(&pool, run_id, "discarder").await })
    };
    until_waiting(&pool, 2).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let approved = approve.await.unwrap();
    let discarded = discard.await.unwrap();
    assert_eq!(
        u8::from(approved.is_ok()) + u8::from(discarded.is_ok()),
        1,
        "exactly one wins: approve {:?}, discard {:?}",
        approved.as_ref().map(|_| ()),
        discarded
    );
    let (status, decided_by): (String, Option<String>) =
        sqlx::query_as("SELECT status, decided_by FROM sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let loser = if approved.is_ok() {
        assert_eq!(
            (status.as_str(), decided_by.as_deref()),
            ("succeeded", Some("approver"))
        );
        discarded.unwrap_err()
    } else {
        assert_eq!(
            (status.as_str(), decided_by.as_deref()),
            ("discarded", Some("discarder"))
        );
        approved.err().unwrap()
    };
    assert!(
        matches!(loser, SyncError::Store(StoreError::NotHeld { .. })),
        "the loser is told the run is no longer held: {loser}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM held_plans").await, 0);
}

#[sqlx::test]
async fn a_run_whose_connection_is_terminated_mid_run_is_retried_and_succeeds(pool: PgPool) {
    let fake = start_fake(small(), Faults::default()).await;
    let mut settings = settings_for(&fake);
    settings.database.retry_backoff = Duration::from_millis(10);
    settings.database.transient_retries = 2;
    // Hold the writer lock, so the run stops at its apply phase, waiting.
    let mut blocker = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let run = {
        let pool = pool.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            sync::run_once(&pool, &settings, &client(&settings), &options(&settings)).await
        })
    };
    let waiting = until_waiting(&pool, 1).await;
    let phase: String = sqlx::query_scalar("SELECT phase FROM sync_runs ORDER BY id DESC LIMIT 1")
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    assert_eq!(phase, "applying", "the run waits in its apply phase");
    // The server ends the run's connection, as a restart or failover would.
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(waiting[0])
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    assert!(terminated);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(WRITER_LOCK_KEY)
        .execute(&mut *blocker)
        .await
        .unwrap();
    drop(blocker);
    let outcome = run.await.unwrap().expect("the run is retried and succeeds");
    let runs = statuses(&pool).await;
    assert_eq!(runs, vec![(outcome.run_id, "succeeded".to_string())]);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM students").await,
        count(
            &pool,
            "SELECT count(*) FROM students WHERE last_changed_run IS NOT NULL"
        )
        .await
    );
    assert!(count(&pool, "SELECT count(*) FROM students").await > 100);
    // The district was fetched twice, once per attempt: one attempt counts
    // the schools, guardian and independent queries and two per school.
    let schools = count(&pool, "SELECT count(DISTINCT school_number) FROM students").await;
    let per_attempt = 3 + 2 * u64::try_from(schools).unwrap();
    let stats = fake.stats();
    assert!(stats.count_requests >= 2 * per_attempt, "{stats:?}");
    fake.shutdown().await;
}

#[tokio::test]
async fn a_loopback_powerschool_is_never_reached_through_a_proxy() {
    // A "proxy" that counts who connects to it.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = proxy.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ] {
        std::env::set_var(var, &proxy_url);
    }
    let fake = start_fake(small(), Faults::default()).await;
    let settings = settings_for(&fake);
    let guardians = client(&settings)
        .guardians()
        .await
        .expect("fetched directly");
    assert!(!guardians.records.is_empty());
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    fake.shutdown().await;
}
