//! The database's current state, loaded in a handful of streaming queries so
//! that a run can compute its whole plan in memory without one round trip per
//! record. The row types double as what `write` stores: a plan is made of them.

use super::copy_out::{self, read_lines, LineKey};
use super::digest::{self, Detail, Digests, MirroredDigests, Stamp};
use super::write::MirroredRow;
use super::{Doing, StoreError};
use crate::powerschool::records::{GuardianLink, Student, StudentContact};
use crate::rules::FormFacts;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use std::collections::HashMap;
use std::sync::LazyLock;

/// A student as the database keeps it: the record PowerSchool sent, and
/// what the run derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentRow {
    #[serde(flatten)]
    pub student: Student,
    pub independent: bool,
    pub login_email: Option<String>,
    pub in_sync_set: bool,
}

/// The record's columns, then these three (see `SELECT_STUDENTS`).
impl<'r> FromRow<'r, PgRow> for StudentRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let after = Student::COLUMNS.len();
        Ok(StudentRow {
            student: Student::from_row(row)?,
            independent: row.try_get(after)?,
            login_email: row.try_get(after + 1)?,
            in_sync_set: row.try_get(after + 2)?,
        })
    }
}

/// A stored user and a stored connection are the rules' own facts, read
/// straight into the rules' types (one type per row kind), so a run hands
/// them to the rules without a copy.
pub use crate::rules::{ConnectionFacts as ConnectionRow, UserFacts as UserRow};

/// The state a plan is made against. The three mirrored tables are held
/// either row by row (the maps) or, for a run, as digests (`digests`, the
/// maps then empty): see `Detail`.
#[derive(Debug, Clone, Default)]
pub struct CurrentState {
    pub students: HashMap<i64, StudentRow>,
    pub contacts: HashMap<(i64, i64), StudentContact>,
    pub guardian_accounts: HashMap<(i64, i64), GuardianLink>,
    /// Set (and the three maps above empty) when loaded with `Detail::Digests`.
    pub digests: Option<MirroredDigests>,
    pub users: Vec<UserRow>,
    pub connections: Vec<ConnectionRow>,
    pub forms: Vec<FormFacts>,
}

/// The columns a row kind is read from, in the order its `FromRow` reads
/// them.
pub(super) trait Columns {
    const COLUMNS: &'static [&'static str];
}

/// `FromRow` for the row kinds other modules declare (the records
/// PowerSchool sends, the rules' forms), with their columns: one column a
/// field (`field as column` where the column is named otherwise). Each is
/// read by its position, not its name (a lookup by name is a hash a value,
/// and a district's state is millions of rows), so the SELECTs below are
/// made from the same list and cannot disagree with it.
macro_rules! from_row {
    ($($kind:ty { $($field:ident $(as $column:ident)?),+ })+) => {$(
        impl Columns for $kind {
            const COLUMNS: &'static [&'static str] =
                &[$(from_row!(@column $field $($column)?)),+];
        }
        impl<'r> FromRow<'r, PgRow> for $kind {
            fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
                let mut position = 0usize..;
                Ok(Self {
                    $($field: row.try_get(position.next().unwrap_or_default())?),+
                })
            }
        }
    )+};
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $column:ident) => { stringify!($column) };
}

from_row! {
    Student {
        dcid, id as powerschool_id, student_number, first_name, last_name, grade_level,
        school_number, enroll_status, entry_date, org_email, personal_email
    }
    StudentContact { student_dcid, person_id, first_name, last_name, email, is_decision_making }
    GuardianLink { guardian_id, student_dcid, email, first_name, last_name, web_access_account }
    FormFacts { student_dcid, created_by_user_id }
    UserRow {
        user_id as id, email, first_name, last_name, email_verified, incomplete,
        powerschool_guardian_id
    }
    ConnectionRow {
        id, student_dcid, user_id, tier, case as case_code, limits, origin,
        present_in_powerschool, powerschool_guardian_id
    }
}

/// `SELECT <the kind's columns><more> FROM <rest>`.
pub(super) fn select<T: Columns>(more: &str, rest: &str) -> String {
    format!("SELECT {}{more} FROM {rest}", T::COLUMNS.join(", "))
}

pub(super) static SELECT_STUDENTS: LazyLock<String> =
    LazyLock::new(|| select::<Student>(", independent, login_email, in_sync_set", "students"));
static SELECT_CONTACTS: LazyLock<String> =
    LazyLock::new(|| select::<StudentContact>("", "student_contacts"));
static SELECT_GUARDIAN_ACCOUNTS: LazyLock<String> =
    LazyLock::new(|| select::<GuardianLink>("", "guardian_accounts"));
pub(super) static SELECT_USERS: LazyLock<String> =
    LazyLock::new(|| select::<UserRow>("", "users ORDER BY id"));
pub(super) static SELECT_CONNECTIONS: LazyLock<String> =
    LazyLock::new(|| select::<ConnectionRow>("", "connections ORDER BY id"));
static SELECT_FORMS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT DISTINCT {} FROM forms",
        FormFacts::COLUMNS.join(", ")
    )
});

impl CurrentState {
    /// Loads everything a plan compares against, row by row, in one
    /// read-only snapshot so the tables agree with each other.
    pub async fn load(pool: &PgPool) -> Result<CurrentState, StoreError> {
        let (snapshot, state) = StateSnapshot::open(pool, Detail::Rows).await?;
        snapshot.close().await?;
        Ok(state)
    }

    /// Reads the state in the snapshot's open transaction (see `StateSnapshot`).
    async fn load_in(tx: &mut PgConnection, detail: Detail) -> Result<CurrentState, StoreError> {
        let mut state = CurrentState::default();
        match detail {
            Detail::Rows => state.load_mirrored_rows(tx).await?,
            Detail::Digests => state.digests = Some(load_digests(tx).await?),
        }
        state.users = copy_out::read_rows(tx, &SELECT_USERS, "users").await?;
        state.connections = copy_out::read_rows(tx, &SELECT_CONNECTIONS, "connections").await?;
        state.forms = sqlx::query_as::<_, FormFacts>(&SELECT_FORMS)
            .fetch_all(&mut *tx)
            .await
            .doing("reading forms")?;
        Ok(state)
    }

    async fn load_mirrored_rows(&mut self, tx: &mut PgConnection) -> Result<(), StoreError> {
        let mut rows = sqlx::query_as::<_, StudentRow>(&SELECT_STUDENTS).fetch(&mut *tx);
        while let Some(r) = rows.try_next().await.doing("reading students")? {
            self.students.insert(r.student.dcid, r);
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, StudentContact>(&SELECT_CONTACTS).fetch(&mut *tx);
        while let Some(r) = rows.try_next().await.doing("reading student contacts")? {
            self.contacts.insert((r.student_dcid, r.person_id), r);
        }
        drop(rows);
        let mut rows = sqlx::query_as::<_, GuardianLink>(&SELECT_GUARDIAN_ACCOUNTS).fetch(&mut *tx);
        while let Some(r) = rows.try_next().await.doing("reading guardian accounts")? {
            self.guardian_accounts
                .insert((r.guardian_id, r.student_dcid), r);
        }
        Ok(())
    }

    /// How many stored students are in the sync set.
    pub fn students_in_sync_set(&self) -> u64 {
        match &self.digests {
            Some(d) => d.students_in_set.len() as u64,
            None => self.students.values().filter(|s| s.in_sync_set).count() as u64,
        }
    }

    /// How many contacts are stored.
    pub fn contact_count(&self) -> u64 {
        match &self.digests {
            Some(d) => d.contacts.len() as u64,
            None => self.contacts.len() as u64,
        }
    }

    /// How many guardian accounts are stored.
    pub fn guardian_account_count(&self) -> u64 {
        match &self.digests {
            Some(d) => d.guardian_accounts.len() as u64,
            None => self.guardian_accounts.len() as u64,
        }
    }
}

/// The mirrored tables as digests. A row the run wrote comes as its key and
/// the digest written beside it (`synced_digest`); a row without one (written
/// by hand, or before migration 0009) comes as its COPY text line, which is
/// hashed and dropped (see `digest`), and is owed a stamp. No value is
/// decoded but the keys.
async fn load_digests(tx: &mut PgConnection) -> Result<MirroredDigests, StoreError> {
    // Dates as a run writes them, whatever the server's own DateStyle.
    sqlx::query("SET LOCAL DateStyle = 'ISO, MDY'")
        .execute(&mut *tx)
        .await
        .doing("reading the current state")?;
    let mut d = MirroredDigests::default();
    let in_set = &mut d.students_in_set;
    let students = &mut d.students;
    let stamps = &mut d.stamps.students;
    let in_set_field = in_sync_set_field();
    read_table::<StudentRow, i64>(tx, ", in_sync_set", |row| {
        let (in_set_now, digest) = match row {
            Line::Kept { digest, more, .. } => (more == b"t", digest),
            Line::Owed { line, stamp } => {
                stamps.push(stamp);
                (
                    copy_out::field(line, in_set_field) == Some(b"t"),
                    stamp.digest,
                )
            }
        };
        if in_set_now {
            in_set.push(row.key());
        }
        students.push(row.key(), digest);
    })
    .await?;
    let (contacts, stamps) = (&mut d.contacts, &mut d.stamps.contacts);
    read_table::<StudentContact, _>(tx, "", |row| row.add_to(contacts, stamps)).await?;
    let (accounts, stamps) = (&mut d.guardian_accounts, &mut d.stamps.guardian_accounts);
    read_table::<GuardianLink, _>(tx, "", |row| row.add_to(accounts, stamps)).await?;
    d.students.finish();
    d.students_in_set.sort_unstable();
    d.contacts.finish();
    d.guardian_accounts.finish();
    Ok(d)
}

/// The position of `in_sync_set` among the students' COPY columns.
fn in_sync_set_field() -> usize {
    StudentRow::TABLE
        .columns
        .iter()
        .position(|(name, _)| *name == "in_sync_set")
        .unwrap_or(usize::MAX)
}

/// A stored row of a mirrored table, as `read_table` hands it on.
enum Line<'a, K> {
    /// A row with its digest kept: its key, the digest, and the field
    /// asked for after them (empty if none was).
    Kept { key: K, digest: u64, more: &'a [u8] },
    /// A row without one: its COPY text line (its columns in `TABLE`
    /// order), and the stamp it is owed.
    Owed { line: &'a [u8], stamp: Stamp<K> },
}

impl<K: Copy> Line<'_, K> {
    fn key(&self) -> K {
        match self {
            Line::Kept { key, .. } => *key,
            Line::Owed { stamp, .. } => stamp.key,
        }
    }

    /// Adds the row's digest to `digests`, and its stamp to `stamps` if it
    /// is owed one.
    fn add_to(&self, digests: &mut Digests<K>, stamps: &mut Vec<Stamp<K>>)
    where
        K: Ord,
    {
        match self {
            Line::Kept { key, digest, .. } => digests.push(*key, *digest),
            Line::Owed { stamp, .. } => {
                digests.push(stamp.key, stamp.digest);
                stamps.push(*stamp);
            }
        }
    }
}

/// Every stored row of `T`'s table, handed to `each` as a `Line`: two
/// COPY reads, one of the keys and digests of the rows that have one
/// (with the columns in `more` after them), one of the text lines, and
/// the row version, of the rows that do not.
async fn read_table<T: MirroredRow, K: LineKey + Copy>(
    tx: &mut PgConnection,
    more: &str,
    mut each: impl FnMut(Line<'_, K>),
) -> Result<(), StoreError> {
    let table = &T::TABLE;
    let keys = table.key.join(", ");
    let kept = format!(
        "COPY (SELECT {keys}, synced_digest{more} FROM {} WHERE synced_digest IS NOT NULL) \
         TO STDOUT",
        table.table
    );
    read_lines(tx, &kept, table.table, |line| {
        let key = K::from_line(line)?;
        let digest = copy_out::number_field(line, K::WIDTH)?;
        let more = match more.is_empty() {
            true => &[][..],
            false => copy_out::field(line, K::WIDTH + 1)?,
        };
        each(Line::Kept {
            key,
            digest: digest::from_stored(digest),
            more,
        });
        Some(())
    })
    .await?;
    let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let owed = format!(
        "COPY (SELECT {}, xmin FROM {} WHERE synced_digest IS NULL) TO STDOUT",
        columns.join(", "),
        table.table
    );
    read_lines(tx, &owed, table.table, |line| {
        let tab = line.iter().rposition(|b| *b == b'\t')?;
        let (line, version) = (line.get(..tab)?, line.get(tab + 1..)?);
        let version = copy_out::parse_number(version)?;
        let key = K::from_line(line)?;
        let digest = digest::of_line(line);
        each(Line::Owed {
            line,
            stamp: Stamp {
                key,
                digest,
                version,
            },
        });
        Some(())
    })
    .await
}

/// The read-only REPEATABLE READ snapshot a state was loaded in, kept open
/// while the caller plans from that state: the fingerprint of the live
/// tables (costly: every row of them) is taken only if it turns out to be
/// needed, and still describes exactly the state that was loaded.
///
/// Its connection is closed when the snapshot is dropped, never handed back
/// to the pool: a read dropped halfway (a run whose fetch failed drops the
/// read beside it) may have left a COPY streaming and the snapshot open on
/// it, and the next user of the connection would find itself inside them.
/// Closing it ends both on the server.
pub struct StateSnapshot {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
}

impl StateSnapshot {
    /// Opens the snapshot and loads the current state in it.
    pub async fn open(
        pool: &PgPool,
        detail: Detail,
    ) -> Result<(StateSnapshot, CurrentState), StoreError> {
        let mut snapshot = StateSnapshot::begin(pool).await?;
        let state = CurrentState::load_in(&mut snapshot.conn, detail).await?;
        Ok((snapshot, state))
    }

    /// Opens the snapshot, nothing read yet (`store::scope` reads in it).
    pub(super) async fn begin(pool: &PgPool) -> Result<StateSnapshot, StoreError> {
        let mut conn = pool
            .acquire()
            .await
            .doing("starting a read of the current state")?;
        conn.close_on_drop();
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *conn)
            .await
            .doing("starting a read of the current state")?;
        Ok(StateSnapshot { conn })
    }

    /// The snapshot's connection, inside its transaction.
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The stored rows of these students, in dcid order, read in this
    /// snapshot (a run with digests reads the rows of the students leaving
    /// the sync set here, to keep them marked as out of it).
    pub async fn students(&mut self, dcids: &[i64]) -> Result<Vec<StudentRow>, StoreError> {
        sqlx::query_as::<_, StudentRow>(&format!(
            "{} WHERE dcid = ANY($1) ORDER BY dcid",
            *SELECT_STUDENTS
        ))
        .bind(dcids)
        .fetch_all(&mut *self.conn)
        .await
        .doing("reading the students leaving the sync set")
    }

    /// The fingerprint (see `fingerprint`) of the tables, in this snapshot.
    pub async fn fingerprint(&mut self) -> Result<String, StoreError> {
        fingerprint(&mut self.conn).await
    }

    /// Ends the (read-only) snapshot.
    pub async fn close(mut self) -> Result<(), StoreError> {
        sqlx::query("COMMIT")
            .execute(&mut *self.conn)
            .await
            .doing("finishing a read of the current state")?;
        Ok(())
    }
}

/// One md5 per table a plan is computed from, over every row and column in
/// key order: any write to students, contacts, guardian accounts, users,
/// connections or forms changes it. A held plan stores it; approval
/// recomputes it in its own transaction and refuses when it differs.
const FINGERPRINT: &str = "
    SELECT concat_ws(',',
      (SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t.dcid), '')) FROM students t),
      (SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t.student_dcid, t.person_id), ''))
         FROM student_contacts t),
      (SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t.guardian_id, t.student_dcid), ''))
         FROM guardian_accounts t),
      (SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t.id), '')) FROM users t),
      (SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t.id), '')) FROM connections t),
      (SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t.id), '')) FROM forms t))";

pub async fn fingerprint(conn: &mut PgConnection) -> Result<String, StoreError> {
    sqlx::query_scalar(FINGERPRINT)
        .fetch_one(conn)
        .await
        .doing("fingerprinting the live tables")
}

/// The students a guardian email is tied to in the database: through a
/// connection of the user with that login, or a stored guardian-account row
/// of the account that user is linked to. `email` must already be normalised
/// (users' emails are stored normalised; no normalising happens in SQL).
pub async fn students_of_email(pool: &PgPool, email: &str) -> Result<Vec<i64>, StoreError> {
    sqlx::query_scalar(
        "SELECT c.student_dcid FROM connections c JOIN users u ON u.id = c.user_id
          WHERE u.email = $1
         UNION
         SELECT a.student_dcid FROM guardian_accounts a
           JOIN users u ON u.powerschool_guardian_id = a.guardian_id
          WHERE u.email = $1
         ORDER BY 1",
    )
    .bind(email)
    .fetch_all(pool)
    .await
    .doing("finding the students of a guardian email")
}

/// Whether any sync ever stored the student (in the sync set or not).
pub async fn student_known(pool: &PgPool, dcid: i64) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM students WHERE dcid = $1)")
        .bind(dcid)
        .fetch_one(pool)
        .await
        .doing("looking up a student")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{AccessTier, ConnectionCase, Origin};

    /// A held plan written before users and connections were the rules'
    /// types names a stored connection's case `case_code`: it still reads.
    #[test]
    fn a_stored_connection_in_a_plan_held_before_reads_back() {
        let old = serde_json::json!({
            "id": 3, "student_dcid": 5001, "user_id": 7, "tier": "read_only",
            "case_code": "unlinked_returning_parent", "limits": ["R5"], "origin": "powerschool",
            "present_in_powerschool": true, "powerschool_guardian_id": 900
        });
        let row: ConnectionRow = serde_json::from_value(old).unwrap();
        assert_eq!(
            (row.id, row.tier, row.case, row.origin),
            (
                3,
                AccessTier::ReadOnly,
                Some(ConnectionCase::UnlinkedReturningParent),
                Origin::Powerschool
            )
        );
        assert_eq!(
            (row.present_in_powerschool, row.powerschool_guardian_id),
            (true, Some(900))
        );
        let again: ConnectionRow =
            serde_json::from_value(serde_json::to_value(&row).unwrap()).unwrap();
        assert_eq!(again, row);
        let user: UserRow = serde_json::from_value(serde_json::json!({
            "id": 7, "email": "a@example.com", "first_name": "Ana", "last_name": null,
            "email_verified": true, "incomplete": false, "powerschool_guardian_id": null
        }))
        .unwrap();
        assert_eq!((user.user_id, user.first_name.as_deref()), (7, Some("Ana")));
    }

    #[test]
    fn the_students_in_the_sync_set_are_told_by_their_own_column() {
        let mut line = Vec::new();
        for in_sync_set in [true, false] {
            let row = StudentRow {
                student: Student {
                    dcid: 5,
                    id: None,
                    student_number: None,
                    first_name: Some("T".into()),
                    last_name: None,
                    grade_level: None,
                    school_number: 1,
                    enroll_status: 0,
                    entry_date: None,
                    org_email: None,
                    personal_email: None,
                },
                independent: true,
                login_email: None,
                in_sync_set,
            };
            digest::of_row(&row, &mut line);
            let field = copy_out::field(&line, in_sync_set_field());
            assert_eq!(field == Some(b"t"), in_sync_set, "{line:?}");
        }
    }

    #[test]
    fn each_kind_is_read_from_the_columns_its_select_names_in_that_order() {
        assert_eq!(
            *SELECT_STUDENTS,
            "SELECT dcid, powerschool_id, student_number, first_name, last_name, grade_level, \
             school_number, enroll_status, entry_date, org_email, personal_email, \
             independent, login_email, in_sync_set FROM students"
        );
        assert_eq!(
            *SELECT_USERS,
            "SELECT id, email, first_name, last_name, email_verified, incomplete, \
             powerschool_guardian_id FROM users ORDER BY id"
        );
        assert_eq!(
            *SELECT_CONNECTIONS,
            "SELECT id, student_dcid, user_id, tier, case_code, limits, origin, \
             present_in_powerschool, powerschool_guardian_id FROM connections ORDER BY id"
        );
        assert_eq!(
            *SELECT_FORMS,
            "SELECT DISTINCT student_dcid, created_by_user_id FROM forms"
        );
    }
}
