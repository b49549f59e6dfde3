#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Each mirrored row keeps the digest of its synced fields
//! (`synced_digest`, migration 0009), so a run reads the stored rows as
//! keys and numbers. These pin what keeps that honest: a row changed by
//! anything but a run loses its digest and is compared by its text (so the
//! run puts PowerSchool's values back), rows without a digest are stamped
//! once without being changed, and a row written after it was read is not
//! stamped with the digest of its old text.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::harness::world::PowerSchoolSide;
use student_sync::store::digest::Detail;
use student_sync::store::{write, RunTrigger};
use student_sync::sync::{self, RunOptions};

const TABLES: [&str; 3] = ["students", "student_contacts", "guardian_accounts"];

/// Every mirrored row as (table, key, synced_digest, updated_at,
/// last_changed_run), in key order.
async fn rows(pool: &PgPool) -> Vec<(String, String, Option<i64>, String, Option<i64>)> {
    let mut out = Vec::new();
    for (table, key) in [
        ("students", "dcid::text"),
        ("student_contacts", "student_dcid || '/' || person_id"),
        ("guardian_accounts", "guardian_id || '/' || student_dcid"),
    ] {
        out.extend(
            sqlx::query_as::<_, (String, Option<i64>, String, Option<i64>)>(&format!(
                "SELECT {key}, synced_digest, updated_at::text, last_changed_run
                   FROM {table} ORDER BY 1"
            ))
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, d, u, r)| (table.to_string(), k, d, u, r)),
        );
    }
    out
}

/// How many rows of the mirrored tables have no digest.
async fn owed(pool: &PgPool) -> i64 {
    let mut n = 0;
    for table in TABLES {
        n += sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM {table} WHERE synced_digest IS NULL"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
    }
    n
}

/// Drops every mirrored row's digest, as the rows stood before migration
/// 0009.
async fn forget_digests(pool: &PgPool) {
    for table in TABLES {
        sqlx::query(&format!("UPDATE {table} SET synced_digest = NULL"))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// The plan a run would make of `side` against the state as it reads it.
async fn prepared(pool: &PgPool, side: &PowerSchoolSide) -> sync::Prepared {
    let fake = start_fake(side.clone(), Faults::default()).await;
    let settings = settings_for(&fake);
    let snapshot = client(&settings).fetch_district().await.unwrap();
    fake.shutdown().await;
    let today = RunOptions::now(&settings, RunTrigger::Manual).today;
    let read = sync::read_state(pool, Detail::Digests).await.unwrap();
    sync::prepare_owned(&settings, snapshot, read, today)
        .await
        .unwrap()
}

#[sqlx::test]
async fn rows_without_a_digest_are_stamped_once_and_left_as_they_are(pool: PgPool) {
    let side = fake_powerschool::generate(200, 21);
    sync_side(&pool, &side).await;
    let written = rows(&pool).await;
    assert!(written.len() > 400, "{} rows", written.len());
    assert_eq!(owed(&pool).await, 0, "a run writes each row's digest");
    assert_eq!(
        prepared(&pool, &side).await.plan.stamps.len(),
        0,
        "a row the run wrote owes nothing"
    );

    // As after upgrading: the same rows, none with a digest.
    forget_digests(&pool).await;
    assert_eq!(owed(&pool).await, written.len() as i64);
    assert_eq!(
        prepared(&pool, &side).await.plan.stamps.len(),
        written.len(),
        "every row read without a digest owes one"
    );
    let outcome = sync_side(&pool, &side).await;
    assert_mirrored_counts(&outcome.report.counts, (0, 0, 0));
    assert_eq!(
        rows(&pool).await,
        written,
        "each row stamped with the digest a run writes, its updated_at and run as they were"
    );
    assert_eq!(prepared(&pool, &side).await.plan.stamps.len(), 0);
}

#[sqlx::test]
async fn a_row_changed_by_hand_loses_its_digest_and_the_run_puts_it_back(pool: PgPool) {
    let side = fake_powerschool::generate(200, 22);
    sync_side(&pool, &side).await;
    let student = side
        .students
        .iter()
        .find(|s| s.enroll_status == 0)
        .expect("an active student");
    let (digest, last_name): (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT synced_digest, last_name FROM students WHERE dcid = $1")
            .bind(student.dcid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(digest.is_some());

    // A script renames the student and leaves the digest alone: the
    // digest no longer stands for the row, so it is dropped.
    sqlx::query("UPDATE students SET last_name = 'Edited by hand' WHERE dcid = $1")
        .bind(student.dcid)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(owed(&pool).await, 1, "only the edited row lost its digest");

    let outcome = sync_side(&pool, &side).await;
    let k = outcome.report.counts.students;
    assert_eq!((k.created, k.updated, k.removed), (0, 1, 0), "{k:?}");
    let after: (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT synced_digest, last_name FROM students WHERE dcid = $1")
            .bind(student.dcid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        after,
        (digest, last_name),
        "PowerSchool's name is back, with the digest of the row as before"
    );
    assert_eq!(owed(&pool).await, 0);
}

/// A digest comes only from a run's own writes: a row put back by hand
/// with the digest it had, or a digest set by hand, is dropped, and the
/// run compares those rows by their text.
#[sqlx::test]
async fn a_digest_written_by_anything_but_a_run_is_dropped(pool: PgPool) {
    let side = fake_powerschool::generate(200, 24);
    sync_side(&pool, &side).await;
    let dcid = side
        .students
        .iter()
        .find(|s| s.enroll_status == 0)
        .expect("an active student")
        .dcid;
    let (digest, last_name): (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT synced_digest, last_name FROM students WHERE dcid = $1")
            .bind(dcid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(digest.is_some());

    // Deleted, then copied back with another name and its old digest.
    sqlx::raw_sql(&format!(
        "CREATE TEMP TABLE kept AS SELECT * FROM students WHERE dcid = {dcid};
         UPDATE kept SET last_name = 'Copied back';
         DELETE FROM students WHERE dcid = {dcid};
         INSERT INTO students SELECT * FROM kept;"
    ))
    .execute(&mut *pool.acquire().await.unwrap())
    .await
    .unwrap();
    let after_copy: (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT synced_digest, last_name FROM students WHERE dcid = $1")
            .bind(dcid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        after_copy,
        (None, Some("Copied back".to_string())),
        "the copied row has no digest"
    );
    // A contact's digest set by hand, to any other number.
    sqlx::query(
        "UPDATE student_contacts SET synced_digest = synced_digest + 1
          WHERE (student_dcid, person_id) = (SELECT student_dcid, person_id
                   FROM student_contacts ORDER BY 1, 2 LIMIT 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(owed(&pool).await, 2, "neither digest is kept");

    let outcome = sync_side(&pool, &side).await;
    let k = outcome.report.counts.students;
    assert_eq!((k.created, k.updated, k.removed), (0, 1, 0), "{k:?}");
    let k = outcome.report.counts.contacts;
    assert_eq!((k.created, k.updated, k.removed), (0, 0, 0), "{k:?}");
    let restored: (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT synced_digest, last_name FROM students WHERE dcid = $1")
            .bind(dcid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(restored, (digest, last_name), "PowerSchool's row is back");
    assert_eq!(
        owed(&pool).await,
        0,
        "the unchanged contact is stamped again"
    );
}

/// Inside a run's transaction (marked as student-sync's own writes do), a
/// new digest is kept, but an update that leaves the digest as it was
/// drops it: the row's text may have changed without it.
#[sqlx::test]
async fn in_a_run_an_update_that_keeps_the_old_digest_drops_it(pool: PgPool) {
    let side = fake_powerschool::generate(200, 25);
    sync_side(&pool, &side).await;
    let dcids: Vec<i64> = sqlx::query_scalar("SELECT dcid FROM students ORDER BY dcid LIMIT 2")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('student_sync.writing', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE students SET last_name = 'Renamed' WHERE dcid = $1")
        .bind(dcids[0])
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE students SET last_name = 'Renamed', synced_digest = 42 WHERE dcid = $1")
        .bind(dcids[1])
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let digests: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT synced_digest FROM students WHERE dcid = ANY($1) ORDER BY dcid")
            .bind(&dcids)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(digests, vec![None, Some(42)]);
}

#[sqlx::test]
async fn a_row_written_after_it_was_read_is_not_stamped(pool: PgPool) {
    let side = fake_powerschool::generate(200, 23);
    sync_side(&pool, &side).await;
    forget_digests(&pool).await;
    let rows_owed = owed(&pool).await;
    let plan = prepared(&pool, &side).await.plan;
    assert_eq!(plan.stamps.len() as i64, rows_owed);

    // After the read, before the stamps: another writer changes a contact.
    let contact = &plan.stamps.contacts[0].key;
    sqlx::query(
        "UPDATE student_contacts SET first_name = 'Changed meanwhile'
          WHERE student_dcid = $1 AND person_id = $2",
    )
    .bind(contact.0)
    .bind(contact.1)
    .execute(&pool)
    .await
    .unwrap();

    let mut tx = pool.begin().await.unwrap();
    let stamped = write::stamp_digests(&mut tx, &plan.stamps).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stamped as i64, rows_owed - 1, "all but the changed row");
    let digest: Option<i64> = sqlx::query_scalar(
        "SELECT synced_digest FROM student_contacts WHERE student_dcid = $1 AND person_id = $2",
    )
    .bind(contact.0)
    .bind(contact.1)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(digest, None, "its text is not the one hashed: no digest");
}
