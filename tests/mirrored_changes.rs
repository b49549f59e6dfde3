#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! A re-sync writes exactly the mirrored rows whose synced fields changed
//! (one changed field in each mirrored table: that row and no other of the
//! table), and nothing at all when nothing changed. Unchanged rows are
//! detected in place, against the stored rows, so this pins that detection.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::harness::fake_powerschool::{self, Faults};
use student_sync::harness::world::PowerSchoolSide;
use student_sync::store::RunTrigger;
use student_sync::sync::{self, RunOptions};

/// The `updated_at` of every row of each mirrored table, by key.
type Stamps = Vec<(String, chrono::DateTime<chrono::Utc>)>;

const TABLES: [(&str, &str); 3] = [
    ("students", "dcid::text"),
    ("student_contacts", "student_dcid || '/' || person_id"),
    ("guardian_accounts", "guardian_id || '/' || student_dcid"),
];

async fn stamps(pool: &PgPool, table: &str, key: &str) -> Stamps {
    sqlx::query_as(&format!("SELECT {key}, updated_at FROM {table} ORDER BY 1"))
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The keys of each mirrored table whose row was written since `before`.
async fn written_since(pool: &PgPool, before: &[Stamps]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for ((table, key), before) in TABLES.iter().zip(before) {
        let after = stamps(pool, table, key).await;
        assert_eq!(after.len(), before.len(), "{table}: rows came or went");
        out.push(
            before
                .iter()
                .zip(&after)
                .filter(|(b, a)| b.1 != a.1)
                .map(|(b, _)| b.0.clone())
                .collect(),
        );
    }
    out
}

async fn all_stamps(pool: &PgPool) -> Vec<Stamps> {
    let mut out = Vec::new();
    for (table, key) in TABLES {
        out.push(stamps(pool, table, key).await);
    }
    out
}

#[sqlx::test]
async fn one_changed_field_per_mirrored_table_writes_exactly_those_rows(pool: PgPool) {
    let mut side = fake_powerschool::generate(300, 11);
    sync_side(&pool, &side).await;

    // One field of one row in each table, each of a different student of
    // the sync set.
    let student = side
        .students
        .iter_mut()
        .find(|s| s.enroll_status == 0)
        .expect("an active student");
    student.last_name = Some("Changedlast".into());
    let student_key = student.dcid.to_string();
    let changed_dcid = student.dcid;
    let contact = side
        .contacts
        .iter_mut()
        .find(|c| c.student_dcid != changed_dcid && c.first_name.is_some())
        .expect("a contact");
    contact.first_name = Some("Changedfirst".into());
    let contact_key = format!("{}/{}", contact.student_dcid, contact.person_id);
    let contact_dcid = contact.student_dcid;
    let account = side
        .guardian_accounts
        .iter_mut()
        .find(|g| g.student_dcid != changed_dcid && g.student_dcid != contact_dcid)
        .expect("a guardian account");
    account.web_access_account = !account.web_access_account;
    let account_key = format!("{}/{}", account.guardianid, account.student_dcid);

    let before = all_stamps(&pool).await;
    let outcome = sync_side(&pool, &side).await;
    assert_mirrored_counts(&outcome.report.counts, (0, 1, 0));
    assert_eq!(
        written_since(&pool, &before).await,
        vec![vec![student_key], vec![contact_key], vec![account_key]],
        "students, contacts, guardian accounts: exactly the changed rows are written"
    );

    // Nothing changed since: nothing is written.
    let before = all_stamps(&pool).await;
    let outcome = sync_side(&pool, &side).await;
    for (kind, k) in kind_counts(&outcome.report.counts) {
        assert_eq!(
            (k.created, k.updated, k.removed),
            (0, 0, 0),
            "{kind}: {k:?}"
        );
    }
    assert_eq!(
        written_since(&pool, &before).await,
        vec![Vec::<String>::new(), Vec::new(), Vec::new()],
        "an unchanged run writes no mirrored row"
    );
}

#[sqlx::test]
async fn a_row_powerschool_no_longer_sends_is_removed_and_no_other(pool: PgPool) {
    let mut side = fake_powerschool::generate(300, 12);
    sync_side(&pool, &side).await;
    let active: std::collections::HashSet<i64> = side
        .students
        .iter()
        .filter(|s| s.enroll_status == 0)
        .map(|s| s.dcid)
        .collect();
    let at = side
        .contacts
        .iter()
        .position(|c| active.contains(&c.student_dcid))
        .expect("a contact of an active student");
    let gone = side.contacts.remove(at);
    let outcome = sync_side(&pool, &side).await;
    let k = outcome.report.counts.contacts;
    assert_eq!((k.created, k.updated, k.removed), (0, 0, 1), "{k:?}");
    let left: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM student_contacts WHERE student_dcid = $1 AND person_id = $2)",
    )
    .bind(gone.student_dcid)
    .bind(gone.person_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!left, "the contact PowerSchool dropped is removed");
}

/// A run compares the mirrored tables by digest (`Detail::Digests`) and
/// keeps its connections' verdicts as the audit's codes; `plan` reads rows
/// (`Detail::Rows`) and shows sentences. On a district where rows of every
/// kind changed, students left the sync set, a contact went and a guardian
/// account vanished (its connection is orphaned), both make the same plan:
/// every row, count, safety measure and verdict (read back from the codes),
/// the leaving students' stored rows included.
#[sqlx::test]
async fn a_plan_against_digests_is_the_plan_against_the_rows(pool: PgPool) {
    let mut side = fake_powerschool::generate(300, 13);
    sync_side(&pool, &side).await;
    let changed = student_sync::harness::change::change_share(&mut side, 5.0, 7);
    assert!(!changed.students.is_empty() && !changed.contacts.is_empty());
    let mut left = Vec::new();
    for s in side
        .students
        .iter_mut()
        .filter(|s| s.enroll_status == 0)
        .take(3)
    {
        s.enroll_status = 2;
        left.push(s.dcid);
    }
    let gone = side
        .contacts
        .iter()
        .position(|c| !left.contains(&c.student_dcid))
        .unwrap();
    side.contacts.remove(gone);
    let connected: Vec<i64> = sqlx::query_scalar("SELECT student_dcid FROM connections")
        .fetch_all(&pool)
        .await
        .unwrap();
    let vanished = side
        .guardian_accounts
        .iter()
        .position(|g| connected.contains(&g.student_dcid) && !left.contains(&g.student_dcid))
        .unwrap();
    side.guardian_accounts.remove(vanished);

    let plans = plans_both_ways(&pool, side).await;
    let (rows, digests) = (&plans[0], &plans[1]);
    assert_eq!(
        rows.1["leaving"],
        serde_json::json!(left),
        "three students leave"
    );
    assert!(rows.1["students"]["update"].as_array().unwrap().len() > left.len());
    // The contact that went, and the contacts of the students who left.
    assert!(!rows.1["contacts"]["remove"].as_array().unwrap().is_empty());
    let connections = rows.1["connections"].as_array().unwrap().len();
    assert!(connections > 0, "a connection changes");
    assert_eq!((rows.0, digests.0), (0, connections), "only the run codes");
    assert_eq!(
        (&rows.1, &rows.2),
        (&digests.1, &digests.2),
        "the same plan and safety measures either way"
    );
}

/// A run reads the stored rows as the COPY text it writes them with: in a
/// session whose DateStyle writes dates otherwise, a backslash and a
/// non-ASCII name still read back as written, so nothing is written again.
#[sqlx::test]
async fn a_quiet_night_writes_nothing_whatever_the_servers_date_style(pool: PgPool) {
    let mut side = fake_powerschool::generate(300, 14);
    side.contacts[0].first_name = Some("Zoë \\ O'Brien".into());
    side.students[0].last_name = Some("Nuñez\\".into());
    // Every session of the run's pool writes dates the SQL way, day first
    // (a server's own DateStyle; sqlx asks for ISO when it connects).
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET DateStyle = 'SQL, DMY'")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let style: String = sqlx::query_scalar("SHOW DateStyle")
        .fetch_one(&own)
        .await
        .unwrap();
    assert_eq!(style, "SQL, DMY");

    sync_side(&own, &side).await;
    // Without their digests, the rows are read and compared as text.
    for table in ["students", "student_contacts", "guardian_accounts"] {
        sqlx::query(&format!("UPDATE {table} SET synced_digest = NULL"))
            .execute(&own)
            .await
            .unwrap();
    }
    let before = all_stamps(&own).await;
    let outcome = sync_side(&own, &side).await;
    assert_mirrored_counts(&outcome.report.counts, (0, 0, 0));
    assert_eq!(
        written_since(&own, &before).await,
        vec![Vec::<String>::new(), Vec::new(), Vec::new()],
        "an unchanged run writes no mirrored row"
    );
    own.close().await;
}

/// A run whose fetch fails drops the state read beside it, possibly in the
/// middle of its COPY. The read's connection must not go back to the pool
/// inside that COPY and its read-only snapshot: the next run would write in
/// the old snapshot (and fail, or worse). Here the read is dropped while
/// PostgreSQL waits to send it more rows; the pool's next connection then
/// runs outside any transaction and sees a row committed after the read.
#[sqlx::test]
async fn a_state_read_dropped_mid_copy_leaves_no_connection_inside_it(pool: PgPool) {
    use futures::FutureExt;
    use student_sync::store::digest::Detail;
    use student_sync::store::state::StateSnapshot;
    // Far more rows than a socket's buffers hold, each with a digest (any
    // number, kept as a run's: see migration 0009), so the read's first
    // COPY (of the keys and digests) is the long one.
    sqlx::raw_sql(
        "BEGIN;
         SELECT set_config('student_sync.writing', 'on', true);
         INSERT INTO students
             (dcid, school_number, enroll_status, first_name, last_name, synced_digest)
         SELECT g, 1, 0, 'First name ' || g, 'Last name ' || g, g
         FROM generate_series(1, 300000) g;
         COMMIT;",
    )
    .execute(&mut *pool.acquire().await.unwrap())
    .await
    .unwrap();
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let mut read = Box::pin(StateSnapshot::open(&one, Detail::Digests));
    let copy_is = |wait: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(&format!(
                "SELECT count(*) > 0 FROM pg_stat_activity
                 WHERE query LIKE 'COPY (SELECT dcid%' AND state = 'active' {wait}"
            ))
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // Another session holds the students, so the read's COPY waits for it:
    // polled until then, and left unpolled once the lock is let go, so
    // PostgreSQL fills the socket and waits to write more.
    let mut locker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE students IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let mut waiting = false;
    for _ in 0..3000 {
        assert!(
            (&mut read).now_or_never().is_none(),
            "the read cannot finish while the students are locked"
        );
        waiting = copy_is("AND wait_event_type = 'Lock'").await;
        if waiting {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(waiting, "the read's COPY waits for the lock");
    locker.rollback().await.unwrap();
    let mut blocked = false;
    for _ in 0..3000 {
        blocked = copy_is("AND wait_event = 'ClientWrite'").await;
        if blocked {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(blocked, "the read's COPY waits for the client");
    drop(read);

    sqlx::query("INSERT INTO students (dcid, school_number, enroll_status) VALUES (0, 1, 0)")
        .execute(&pool)
        .await
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut conn = one.acquire().await.unwrap();
        // VACUUM refuses to run inside a transaction block.
        sqlx::raw_sql("VACUUM sync_runs")
            .execute(&mut *conn)
            .await?;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM students WHERE dcid = 0")
            .fetch_one(&mut *conn)
            .await
    })
    .await
    .expect("the pool's connection answers");
    assert_eq!(
        next.expect("the next statements run outside the dropped read"),
        1,
        "a row committed after the read is seen"
    );
    one.close().await;
}

fn new_student(dcid: i64) -> student_sync::store::state::StudentRow {
    student_sync::store::state::StudentRow {
        student: student_sync::powerschool::Student {
            dcid,
            id: None,
            student_number: None,
            first_name: None,
            last_name: Some("Lee".into()),
            grade_level: Some(4),
            school_number: 101,
            enroll_status: 0,
            entry_date: None,
            org_email: None,
            personal_email: None,
        },
        independent: false,
        login_email: None,
        in_sync_set: true,
    }
}

/// New rows are copied straight into their table: each carries the run
/// that wrote it, and a key the table holds after all (it changed since
/// the state was read) fails the write, naming the table, the key and what
/// to do, with nothing of it left once the run's transaction rolls back.
#[sqlx::test]
async fn new_rows_are_copied_in_with_their_run_and_a_key_already_there_fails_the_write(
    pool: PgPool,
) {
    use student_sync::store::write::write_mirrored;
    let night = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let run_id = student_sync::store::runs::start_run(&pool, RunTrigger::Manual, night)
        .await
        .unwrap();

    let mut tx = pool.begin().await.unwrap();
    write_mirrored(&mut tx, &[new_student(1), new_student(2)], &[], run_id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let written: Vec<(i64, Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT dcid, last_name, last_changed_run FROM students ORDER BY dcid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        written,
        vec![
            (1, Some("Lee".into()), Some(run_id)),
            (2, Some("Lee".into()), Some(run_id)),
        ]
    );

    let mut tx = pool.begin().await.unwrap();
    let err = write_mirrored(&mut tx, &[new_student(3), new_student(2)], &[], run_id)
        .await
        .unwrap_err()
        .to_string();
    drop(tx);
    assert!(err.contains("writing students: Key (dcid)=(2)"), "{err}");
    assert!(
        err.contains("something else wrote to students during the run")
            && err.contains("Nothing was applied"),
        "{err}"
    );
    let dcids: Vec<i64> = sqlx::query_scalar("SELECT dcid FROM students ORDER BY dcid")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(dcids, vec![1, 2], "nothing of the failed write is left");
}

/// A first sync of a district with more connections than one batch of
/// coding (4,096; a batch is coded on two threads): the codes read back to
/// exactly the verdicts of the plan that keeps them as they are, and every
/// connection is kept once.
#[sqlx::test]
async fn a_first_sync_codes_every_connections_reasons_exactly_whatever_the_batches(pool: PgPool) {
    let plans = plans_both_ways(&pool, fake_powerschool::generate(5000, 17)).await;
    let connections = plans[0].1["connections"].as_array().unwrap().len();
    assert!(connections > 4096 + 1024, "{connections} connections");
    assert_eq!(
        (plans[0].0, plans[1].0),
        (0, connections),
        "only the run codes"
    );
    assert_eq!(plans[0].1, plans[1].1, "the same plan, verdicts included");
}

/// The plan of `side` against the stored state read as rows, then as
/// digests (as a run reads it): for each, how many connections carry coded
/// reasons, the plan (verdicts read back from their codes, as `plan` shows
/// them) and the safety measures.
async fn plans_both_ways(
    pool: &PgPool,
    side: PowerSchoolSide,
) -> Vec<(usize, serde_json::Value, serde_json::Value)> {
    use student_sync::store::digest::Detail;
    let fake = start_fake(side, Faults::default()).await;
    let settings = settings_for(&fake);
    let snapshot = client(&settings).fetch_district().await.unwrap();
    fake.shutdown().await;
    let today = RunOptions::now(&settings, RunTrigger::Manual).today;
    let mut plans = Vec::new();
    for detail in [Detail::Rows, Detail::Digests] {
        let read = sync::read_state(pool, detail).await.unwrap();
        let mut prepared = sync::prepare_owned(&settings, snapshot.clone(), read, today)
            .await
            .unwrap();
        let coded = prepared
            .plan
            .connections
            .iter()
            .filter(|c| c.decision.coded.is_some())
            .count();
        for c in &mut prepared.plan.connections {
            c.decision.verdicts = c.decision.verdicts_read().into_owned();
            c.decision.coded = None;
        }
        plans.push((
            coded,
            serde_json::to_value(&prepared.plan).unwrap(),
            serde_json::to_value(&prepared.safety).unwrap(),
        ));
    }
    plans
}
