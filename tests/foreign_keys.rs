#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The foreign keys of `connections`, set aside while a run inserts most
//! connections (`store::write::ForeignKeysAside`): put back exactly as they
//! were, still refusing a connection without its user, and left alone when
//! their locks do not come.

use sqlx::PgPool;
use std::time::Duration;
use student_sync::store::write::ForeignKeysAside;

const WAIT: Duration = Duration::from_secs(5);

/// The foreign keys of connections, as (name, definition), seen by `conn`.
async fn keys(conn: &mut sqlx::PgConnection) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = 'connections'::regclass AND contype = 'f' ORDER BY conname",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn add_connection(
    conn: &mut sqlx::PgConnection,
    user_id: i64,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO connections (student_dcid, user_id, tier, origin) \
         VALUES (1, $1, 'full', 'powerschool')",
    )
    .bind(user_id)
    .execute(conn)
    .await
}

async fn add_user(pool: &PgPool) -> i64 {
    sqlx::query_scalar("INSERT INTO users (email) VALUES ('parent@example.org') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn the_keys_set_aside_are_put_back_as_they_were(pool: PgPool) {
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    assert_eq!(
        before.len(),
        1,
        "connections has its key to users: {before:?}"
    );
    let user = add_user(&pool).await;

    let mut tx = pool.begin().await.unwrap();
    let aside = ForeignKeysAside::set_aside(&mut tx, WAIT).await.unwrap();
    let aside = aside.expect("nothing else holds the tables: the keys are set aside");
    assert!(keys(&mut tx).await.is_empty(), "no key while set aside");
    add_connection(&mut tx, user).await.unwrap();
    aside.put_back(&mut tx).await.unwrap();
    assert_eq!(keys(&mut tx).await, before);
    tx.commit().await.unwrap();

    // Back and working: a connection without its user is refused.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(keys(&mut conn).await, before);
    let refused = add_connection(&mut conn, user + 1000).await.unwrap_err();
    assert!(
        refused.to_string().contains("connections_user_id_fkey"),
        "{refused}"
    );
}

#[sqlx::test]
async fn a_connection_without_its_user_fails_when_the_keys_are_put_back(pool: PgPool) {
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    let mut tx = pool.begin().await.unwrap();
    let aside = ForeignKeysAside::set_aside(&mut tx, WAIT).await.unwrap();
    let aside = aside.expect("the keys are set aside");
    add_connection(&mut tx, 424_242).await.unwrap();
    let failed = aside.put_back(&mut tx).await.unwrap_err().to_string();
    assert!(failed.contains("connections_user_id_fkey"), "{failed}");
    assert!(
        failed.contains("names a user that is not in users"),
        "{failed}"
    );
    assert!(
        failed.contains("(user_id)=(424242)"),
        "the message names the user: {failed}"
    );
    tx.rollback().await.unwrap();

    // Rolled back: the key is there, the connection is not.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(keys(&mut conn).await, before);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM connections")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test]
async fn the_keys_stay_when_their_locks_do_not_come(pool: PgPool) {
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    // SchoolEngage reading connections in an open transaction.
    let mut reader = pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM connections")
        .execute(&mut *reader)
        .await
        .unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '60s'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let aside = ForeignKeysAside::set_aside(&mut tx, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(
        aside.is_none(),
        "the reader holds connections: the keys stay"
    );
    // The transaction goes on as it was: its lock timeout, the keys, and
    // the per-row check.
    let timeout: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(timeout, "1min");
    assert_eq!(keys(&mut tx).await, before);
    let refused = add_connection(&mut tx, 424_242).await.unwrap_err();
    assert!(
        refused.to_string().contains("connections_user_id_fkey"),
        "{refused}"
    );
    tx.rollback().await.unwrap();
    reader.rollback().await.unwrap();
}

#[sqlx::test]
async fn a_table_without_keys_has_none_to_set_aside(pool: PgPool) {
    sqlx::query("ALTER TABLE connections DROP CONSTRAINT connections_user_id_fkey")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let aside = ForeignKeysAside::set_aside(&mut tx, WAIT).await.unwrap();
    assert!(aside.is_none());
    // The transaction is usable.
    assert!(keys(&mut tx).await.is_empty());
    tx.commit().await.unwrap();
}
