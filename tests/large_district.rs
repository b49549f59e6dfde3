#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! A district with more connections than one write batch (`store::BATCH`):
//! the connections are staged and upserted a batch at a time, and the run
//! still writes each one once, audits each one with its own connection's id,
//! and a second night finds nothing to change. Its first night inserts every
//! connection, so it also sets the key to users aside and puts it back.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::harness::fake_powerschool;
use student_sync::harness::world::World;
use student_sync::store::BATCH;
use student_sync::sync;

#[sqlx::test]
async fn connections_beyond_one_batch_are_each_written_and_audited_once(pool: PgPool) {
    let world = World {
        powerschool: fake_powerschool::generate(10_000, 5),
        ..World::default()
    };
    let (fake, settings, options) = world_setup(&world).await;
    let ps = client(&settings);
    let key_before = users_key(&pool).await;
    let first = sync::run_once(&pool, &settings, &ps, &options)
        .await
        .unwrap();
    // A first night inserts every connection: the key to users was set
    // aside and put back (a new constraint), exactly as it was.
    let key_after_first = users_key(&pool).await;
    assert_ne!(key_after_first.0, key_before.0, "the key was put back anew");
    assert_eq!(key_after_first.1, key_before.1);
    let created = first.report.counts.connections.created;
    assert!(
        created > BATCH as u64,
        "the district needs more than one batch: {created} connections"
    );

    let (stored, distinct_pairs): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (student_dcid, user_id)) FROM connections")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored as u64, created);
    assert_eq!(distinct_pairs, stored);

    // One audit row per connection, naming that connection's own id.
    let (audited, matching): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(c.id) FROM access_audit a
         LEFT JOIN connections c ON c.id = a.connection_id
              AND c.student_dcid = a.student_dcid AND c.user_id = a.user_id
         WHERE a.run_id = $1",
    )
    .bind(first.run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited as u64, created);
    assert_eq!(matching, audited);

    let second = sync::run_once(&pool, &settings, &ps, &options)
        .await
        .unwrap();
    let c = &second.report.counts.connections;
    assert_eq!((c.created, c.updated, c.removed), (0, 0, 0));
    assert_eq!(c.unchanged, created);
    // A night that inserts nothing leaves the key alone.
    assert_eq!(users_key(&pool).await, key_after_first);
    fake.shutdown().await;
}

/// The oid and definition of the foreign key from connections to users.
async fn users_key(pool: &PgPool) -> (i64, String) {
    sqlx::query_as(
        "SELECT oid::bigint, pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = 'connections'::regclass AND contype = 'f'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The same first night while SchoolEngage has a transaction open on
/// users: the run does not wait for it, keeps the key (each connection is
/// checked as it is written), and writes every connection.
#[sqlx::test]
async fn a_first_night_beside_a_busy_users_table_keeps_the_key_and_writes_everything(pool: PgPool) {
    let world = World {
        powerschool: fake_powerschool::generate(10_000, 5),
        ..World::default()
    };
    let (fake, settings, options) = world_setup(&world).await;
    let key_before = users_key(&pool).await;
    let mut reader = pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM users")
        .execute(&mut *reader)
        .await
        .unwrap();
    let first = sync::run_once(&pool, &settings, &client(&settings), &options)
        .await
        .unwrap();
    reader.rollback().await.unwrap();
    let created = first.report.counts.connections.created;
    assert!(created > BATCH as u64, "{created} connections");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM connections").await as u64,
        created
    );
    assert_eq!(
        users_key(&pool).await,
        key_before,
        "the key stayed as it was"
    );
    fake.shutdown().await;
}
