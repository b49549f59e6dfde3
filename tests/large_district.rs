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
//! and a second night finds nothing to change.

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
    let first = sync::run_once(&pool, &settings, &ps, &options)
        .await
        .unwrap();
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
    fake.shutdown().await;
}
