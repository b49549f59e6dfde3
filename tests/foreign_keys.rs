#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The foreign key from `connections` to `users`, set aside while a run
//! inserts most connections (`store::write::with_keys_set_aside`): put back
//! exactly as it was, still refusing a connection without its user, and
//! left alone (the per-row check kept) whenever setting it aside could
//! hold SchoolEngage up or check less than before.

use sqlx::{PgConnection, PgPool};
use student_sync::store::write::{with_keys_set_aside, KeyChecks, Tx};
use student_sync::store::StoreError;

/// The foreign keys of connections, as (name, definition), seen by `conn`.
async fn keys(conn: &mut PgConnection) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = 'connections'::regclass AND contype = 'f' ORDER BY conname",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn add_connection(
    conn: &mut PgConnection,
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

async fn execute(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

async fn drop_key(pool: &PgPool) {
    execute(
        pool,
        "ALTER TABLE connections DROP CONSTRAINT connections_user_id_fkey",
    )
    .await;
}

/// The district's own key instead of the migrations' (`constraint`: its
/// name and definition).
async fn replace_key(pool: &PgPool, constraint: &str) {
    drop_key(pool).await;
    execute(
        pool,
        &format!("ALTER TABLE connections ADD CONSTRAINT {constraint}"),
    )
    .await;
}

/// The committed state: the keys are `before`, and no connection is stored.
async fn assert_keys_and_no_connection(pool: &PgPool, before: &[(String, String)]) {
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(keys(&mut conn).await, before);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM connections")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(stored, 0, "no connection is stored");
}

/// Sets the keys aside and puts them back around one connection of
/// `user`, in one transaction; returns the keys seen while set aside.
async fn round_trip(pool: &PgPool, user: i64) -> Vec<(String, String)> {
    let mut tx = pool.begin().await.unwrap();
    let (while_aside, checks) = with_keys_set_aside(&mut tx, async |tx: &mut Tx<'_>| {
        let while_aside = keys(tx).await;
        add_connection(tx, user).await.unwrap();
        Ok::<_, StoreError>(while_aside)
    })
    .await
    .unwrap();
    assert_eq!(
        checks,
        KeyChecks::InOnePass,
        "nothing else holds the tables"
    );
    tx.commit().await.unwrap();
    while_aside
}

/// What `with_keys_set_aside` did around `write` in `tx`, and `write`'s
/// answer: the keys seen while it ran.
async fn checks_around_keys(
    tx: &mut Tx<'_>,
) -> Result<(Vec<(String, String)>, KeyChecks), StoreError> {
    with_keys_set_aside(tx, async |tx: &mut Tx<'_>| {
        Ok::<_, StoreError>(keys(tx).await)
    })
    .await
}

/// The keys stay, for a reason that says `because`, and the transaction
/// goes on with the per-row check.
async fn assert_kept(pool: &PgPool, because: &str) {
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    let mut tx = pool.begin().await.unwrap();
    let refused = with_keys_set_aside(&mut tx, async |tx: &mut Tx<'_>| {
        assert_eq!(keys(tx).await, before, "the keys stay while it writes");
        Ok::<_, StoreError>(add_connection(tx, 424_242).await.unwrap_err())
    })
    .await;
    match refused.unwrap() {
        (refused, KeyChecks::PerRow(why)) => {
            assert!(why.contains(because), "{why}");
            assert!(refused.to_string().contains("foreign key"), "{refused}");
        }
        (_, KeyChecks::InOnePass) => panic!("the keys were set aside"),
    }
    tx.rollback().await.unwrap();
}

#[sqlx::test]
async fn the_key_set_aside_is_put_back_as_it_was(pool: PgPool) {
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    assert_eq!(
        before.len(),
        1,
        "connections has its key to users: {before:?}"
    );
    let user = add_user(&pool).await;
    assert!(
        round_trip(&pool, user).await.is_empty(),
        "no key while set aside"
    );

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
async fn a_district_s_own_key_comes_back_with_its_name_actions_and_deferral(pool: PgPool) {
    replace_key(
        &pool,
        "\"Connection's \"\"user\"\"\" FOREIGN KEY (user_id) REFERENCES users (id) \
         MATCH FULL ON UPDATE CASCADE ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED",
    )
    .await;
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    assert_eq!(before[0].0, "Connection's \"user\"");
    let user = add_user(&pool).await;
    assert!(round_trip(&pool, user).await.is_empty());
    assert_eq!(keys(&mut pool.acquire().await.unwrap()).await, before);
}

#[sqlx::test]
async fn a_connection_without_its_user_fails_when_the_key_is_put_back(pool: PgPool) {
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    let mut tx = pool.begin().await.unwrap();
    let failed = with_keys_set_aside(&mut tx, async |tx: &mut Tx<'_>| {
        assert!(keys(tx).await.is_empty(), "set aside while it writes");
        add_connection(tx, 424_242).await.unwrap();
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(failed.contains("connections_user_id_fkey"), "{failed}");
    assert!(
        failed.contains("names a user that is not in users"),
        "{failed}"
    );
    assert!(
        failed.contains("(user_id)=(424242)"),
        "the message names the user: {failed}"
    );
    assert!(
        failed.contains("`student-sync run --now`"),
        "and what to run: {failed}"
    );
    tx.rollback().await.unwrap();

    // Rolled back: the key is there, the connection is not.
    assert_keys_and_no_connection(&pool, &before).await;
}

#[sqlx::test]
async fn the_key_stays_while_another_session_uses_either_table(pool: PgPool) {
    for table in ["users", "connections"] {
        // SchoolEngage reading the table in an open transaction.
        let mut reader = pool.begin().await.unwrap();
        sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .execute(&mut *reader)
            .await
            .unwrap();
        assert_kept(&pool, "another session is using users or connections").await;
        reader.rollback().await.unwrap();
    }
}

#[sqlx::test]
async fn a_key_added_not_valid_stays_so_new_connections_are_still_checked(pool: PgPool) {
    replace_key(
        &pool,
        "connections_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
    )
    .await;
    assert_kept(&pool, "connections_user_id_fkey is NOT VALID").await;
}

#[sqlx::test]
async fn a_stored_connection_without_its_user_keeps_the_per_row_check(pool: PgPool) {
    // Written with the checks off (a restore with triggers disabled).
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    add_connection(&mut conn, 5555).await.unwrap();
    drop(conn.detach());
    // Checking the whole table would fail every such night; each row's
    // check still works.
    assert_kept(
        &pool,
        "connection 1 (student 1) names user 5555, who is not in users",
    )
    .await;
    let user = add_user(&pool).await;
    let mut tx = pool.begin().await.unwrap();
    let (_, checks) = with_keys_set_aside(&mut tx, async |tx: &mut Tx<'_>| {
        sqlx::query(
            "INSERT INTO connections (student_dcid, user_id, tier, origin) \
             VALUES (2, $1, 'full', 'powerschool')",
        )
        .bind(user)
        .execute(&mut **tx)
        .await
        .map_err(|source| StoreError::Query {
            doing: "adding a connection".into(),
            source,
        })
    })
    .await
    .unwrap();
    assert!(matches!(checks, KeyChecks::PerRow(_)), "{checks:?}");
    tx.commit().await.unwrap();
}

#[sqlx::test]
async fn a_database_user_who_may_not_reference_users_keeps_the_per_row_check(pool: PgPool) {
    // A role that owns connections but may only read and write users.
    let role = format!("student_sync_test_{}", std::process::id());
    execute(&pool, &format!("CREATE ROLE {role}")).await;
    execute(&pool, &format!("ALTER TABLE connections OWNER TO {role}")).await;
    execute(
        &pool,
        &format!("GRANT SELECT, INSERT, UPDATE ON users TO {role}"),
    )
    .await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!("SET LOCAL ROLE {role}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    let aside = checks_around_keys(&mut tx).await;
    tx.rollback().await.unwrap();
    // The role goes before any assertion can fail (roles outlive the
    // test's database).
    execute(&pool, "ALTER TABLE connections OWNER TO CURRENT_USER").await;
    execute(&pool, &format!("REVOKE ALL ON users FROM {role}")).await;
    execute(&pool, &format!("DROP ROLE {role}")).await;
    let (still, checks) = aside.unwrap();
    match checks {
        KeyChecks::PerRow(why) => assert!(why.contains("lacks the REFERENCES privilege"), "{why}"),
        KeyChecks::InOnePass => panic!("without REFERENCES on users the key stays"),
    }
    assert_eq!(still.len(), 1);
}

#[sqlx::test]
async fn a_table_without_keys_has_none_to_set_aside(pool: PgPool) {
    drop_key(&pool).await;
    let mut tx = pool.begin().await.unwrap();
    match checks_around_keys(&mut tx).await.unwrap() {
        (_, KeyChecks::PerRow(why)) => assert!(why.contains("no foreign key to users"), "{why}"),
        (_, KeyChecks::InOnePass) => panic!("there was no key to set aside"),
    }
    // The transaction is usable.
    assert!(keys(&mut tx).await.is_empty());
    tx.commit().await.unwrap();
}

#[sqlx::test]
async fn a_write_that_fails_leaves_the_keys_back_and_nothing_it_wrote(pool: PgPool) {
    let before = keys(&mut pool.acquire().await.unwrap()).await;
    let user = add_user(&pool).await;
    let mut tx = pool.begin().await.unwrap();
    let failed = with_keys_set_aside(&mut tx, async |tx: &mut Tx<'_>| {
        add_connection(tx, user).await.unwrap();
        assert!(keys(tx).await.is_empty(), "set aside while it writes");
        // Not a database error: the transaction itself is still healthy,
        // and a careless caller could commit it.
        Err::<(), _>(StoreError::NotEmpty {
            what: "a write that gave up".into(),
        })
    })
    .await;
    assert!(failed.is_err());
    assert_eq!(
        keys(&mut tx).await,
        before,
        "the keys are back in the transaction"
    );
    tx.commit().await.unwrap();

    // Nothing the failed write did is kept.
    assert_keys_and_no_connection(&pool, &before).await;
}
