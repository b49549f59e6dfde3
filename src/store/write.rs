//! Bulk writes for one run, all on the run's transaction. The big tables
//! are written by streaming rows with `COPY` into a temporary staging table
//! and then one set-based `INSERT … ON CONFLICT` per table; the audit and the
//! problems are copied straight in. Deletes and user writes take whole
//! columns as arrays (`UNNEST`) in batches of `BATCH` rows. Either way a
//! district of 150,000 students costs a few dozen round trips, not hundreds
//! of thousands. Callers pass only rows that are new or changed: an
//! unchanged row is never written, so its `updated_at` stays.

use super::state::{ContactRow, GuardianAccountRow, StudentRow};
use super::{Doing, StoreError, BATCH};
use crate::rules::{AccessTier, ConnectionCase, Limit, Origin};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Row, Transaction};
use std::collections::HashMap;

pub type Tx<'a> = Transaction<'a, Postgres>;

/// Rows go to PostgreSQL through `COPY … FROM STDIN` (text format) in
/// chunks of about this many bytes: no per-column copies of the rows, and
/// the server parses them at COPY speed.
const COPY_CHUNK: usize = 1 << 20;

/// One value in PostgreSQL's COPY text format.
trait CopyValue {
    fn put(&self, out: &mut Vec<u8>);
}

impl CopyValue for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{self}");
    }
}

impl CopyValue for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(if *self { b't' } else { b'f' });
    }
}

impl CopyValue for str {
    fn put(&self, out: &mut Vec<u8>) {
        for &b in self.as_bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => out.push(b),
            }
        }
    }
}

impl CopyValue for String {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_str().put(out)
    }
}

impl CopyValue for chrono::NaiveDate {
    fn put(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{}", self.format("%Y-%m-%d"));
    }
}

impl<T: CopyValue + ?Sized> CopyValue for &T {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out)
    }
}

impl<T: CopyValue> CopyValue for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.put(out),
            None => out.extend_from_slice(b"\\N"),
        }
    }
}

/// The rules' codes, as their strum spelling (see `codes`).
macro_rules! copy_code {
    ($($code:ty),+) => {$(
        impl CopyValue for $code {
            fn put(&self, out: &mut Vec<u8>) {
                self.as_str().put(out)
            }
        }
    )+};
}
copy_code!(AccessTier, ConnectionCase, Limit, Origin);

/// A text array of short codes (no quoting needed: letters, digits, `_`).
struct CodeArray<'a, T>(&'a [T]);

impl<T: CopyValue> CopyValue for CodeArray<'_, T> {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, code) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            code.put(out);
        }
        out.push(b'}');
    }
}

/// Appends one COPY text row (tab-separated, newline-terminated).
macro_rules! copy_row {
    ($out:expr; $first:expr $(, $rest:expr)* $(,)?) => {{
        let out: &mut Vec<u8> = $out;
        CopyValue::put(&$first, out);
        $(
            out.push(b'\t');
            CopyValue::put(&$rest, out);
        )*
        out.push(b'\n');
    }};
}

/// Streams rows into `statement` (a `COPY … FROM STDIN`) on the run's
/// transaction; returns how many rows PostgreSQL took. The rows come as
/// slices (no iterator is held across an await, so the future stays `Send`).
async fn copy_in<T>(
    tx: &mut Tx<'_>,
    statement: &str,
    parts: &[&[T]],
    encode: impl Fn(&mut Vec<u8>, &T) + Send + Sync,
    doing: &str,
) -> Result<u64, StoreError> {
    let mut copy = (**tx).copy_in_raw(statement).await.doing(doing)?;
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + (64 << 10));
    for part in parts {
        let mut i = 0;
        while i < part.len() {
            while i < part.len() && buf.len() < COPY_CHUNK {
                encode(&mut buf, &part[i]);
                i += 1;
            }
            if buf.len() >= COPY_CHUNK {
                copy.send(buf.as_slice()).await.doing(doing)?;
                buf.clear();
            }
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice()).await.doing(doing)?;
    }
    drop(buf);
    copy.finish().await.doing(doing)
}

/// A temporary staging table for one kind of row, private to the run's
/// transaction (dropped at its end), emptied before each use. The live
/// tables only change through the set-based statement that follows.
async fn stage(tx: &mut Tx<'_>, table: &str, columns: &str, doing: &str) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DROP"
    ))
    .execute(&mut **tx)
    .await
    .doing(doing)?;
    sqlx::query(&format!("TRUNCATE {table}"))
        .execute(&mut **tx)
        .await
        .doing(doing)?;
    Ok(())
}

/// Stages rows of one kind: an emptied staging table, then the rows
/// streamed into it with COPY. Returns how many rows were staged.
async fn stage_rows<T>(
    tx: &mut Tx<'_>,
    table: &str,
    columns: &str,
    parts: &[&[T]],
    encode: impl Fn(&mut Vec<u8>, &T) + Send + Sync,
    doing: &str,
) -> Result<u64, StoreError> {
    stage(tx, table, columns, doing).await?;
    copy_in(
        tx,
        &format!("COPY {table} FROM STDIN"),
        parts,
        encode,
        doing,
    )
    .await
}

/// Stages rows, then merges them into their live table with one set-based
/// `INSERT … ON CONFLICT` (`upsert`, whose `$1` is the run id).
async fn upsert_staged<T>(
    tx: &mut Tx<'_>,
    (table, columns, upsert): (&str, &str, &str),
    parts: &[&[T]],
    encode: impl Fn(&mut Vec<u8>, &T) + Send + Sync,
    run_id: i64,
    doing: &str,
) -> Result<(), StoreError> {
    if stage_rows(tx, table, columns, parts, encode, doing).await? > 0 {
        sqlx::query(upsert)
            .bind(run_id)
            .execute(&mut **tx)
            .await
            .doing(doing)?;
    }
    Ok(())
}

const STAGE_STUDENTS: &str = "dcid bigint, powerschool_id bigint, student_number text,
    first_name text, last_name text, grade_level bigint, school_number bigint,
    enroll_status bigint, entry_date date, org_email text, personal_email text,
    independent bool, login_email text, in_sync_set bool";

const UPSERT_STUDENTS: &str = "
    INSERT INTO students (dcid, powerschool_id, student_number, first_name, last_name, grade_level,
                          school_number, enroll_status, entry_date, org_email, personal_email,
                          independent, login_email, in_sync_set, last_changed_run)
    SELECT u.*, $1 FROM student_sync_stage_students AS u
    ON CONFLICT (dcid) DO UPDATE SET
        powerschool_id = EXCLUDED.powerschool_id, student_number = EXCLUDED.student_number,
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        grade_level = EXCLUDED.grade_level, school_number = EXCLUDED.school_number,
        enroll_status = EXCLUDED.enroll_status, entry_date = EXCLUDED.entry_date,
        org_email = EXCLUDED.org_email, personal_email = EXCLUDED.personal_email,
        independent = EXCLUDED.independent, login_email = EXCLUDED.login_email,
        in_sync_set = EXCLUDED.in_sync_set,
        updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";

/// Inserts or updates students (one row per dcid among all given).
pub async fn upsert_students(
    tx: &mut Tx<'_>,
    parts: &[&[StudentRow]],
    run_id: i64,
) -> Result<(), StoreError> {
    upsert_staged(
        tx,
        (
            "student_sync_stage_students",
            STAGE_STUDENTS,
            UPSERT_STUDENTS,
        ),
        parts,
        |out, r: &StudentRow| {
            copy_row!(out; r.dcid, r.powerschool_id, r.student_number, r.first_name, r.last_name,
                r.grade_level, r.school_number, r.enroll_status, r.entry_date, r.org_email,
                r.personal_email, r.independent, r.login_email, r.in_sync_set)
        },
        run_id,
        "writing students",
    )
    .await
}

const STAGE_CONTACTS: &str = "student_dcid bigint, person_id bigint, first_name text,
    last_name text, email text, is_decision_making bool";

const UPSERT_CONTACTS: &str = "
    INSERT INTO student_contacts (student_dcid, person_id, first_name, last_name, email,
                                  is_decision_making, last_changed_run)
    SELECT u.*, $1 FROM student_sync_stage_contacts AS u
    ON CONFLICT (student_dcid, person_id) DO UPDATE SET
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        email = EXCLUDED.email, is_decision_making = EXCLUDED.is_decision_making,
        updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";

/// Inserts or updates student contacts (one row per key among all given).
pub async fn upsert_contacts(
    tx: &mut Tx<'_>,
    parts: &[&[ContactRow]],
    run_id: i64,
) -> Result<(), StoreError> {
    upsert_staged(
        tx,
        (
            "student_sync_stage_contacts",
            STAGE_CONTACTS,
            UPSERT_CONTACTS,
        ),
        parts,
        |out, r: &ContactRow| {
            copy_row!(out; r.student_dcid, r.person_id, r.first_name, r.last_name, r.email,
                r.is_decision_making)
        },
        run_id,
        "writing student contacts",
    )
    .await
}

pub async fn delete_contacts(tx: &mut Tx<'_>, keys: &[(i64, i64)]) -> Result<(), StoreError> {
    delete_by_pairs(
        tx,
        "DELETE FROM student_contacts c USING UNNEST($1::bigint[], $2::bigint[]) AS k(s, p)
         WHERE c.student_dcid = k.s AND c.person_id = k.p",
        keys,
        "removing student contacts PowerSchool no longer has",
    )
    .await
}

/// Runs `delete` (keyed by two bigint arrays, `$1` and `$2`) over the keys
/// in batches.
async fn delete_by_pairs(
    tx: &mut Tx<'_>,
    delete: &str,
    keys: &[(i64, i64)],
    doing: &str,
) -> Result<(), StoreError> {
    for chunk in keys.chunks(BATCH) {
        sqlx::query(delete)
            .bind(chunk.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind(chunk.iter().map(|k| k.1).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await
            .doing(doing)?;
    }
    Ok(())
}

const STAGE_GUARDIAN_ACCOUNTS: &str = "guardian_id bigint, student_dcid bigint, email text,
    first_name text, last_name text, web_access_account bool";

const UPSERT_GUARDIAN_ACCOUNTS: &str = "
    INSERT INTO guardian_accounts (guardian_id, student_dcid, email, first_name, last_name,
                                   web_access_account, last_changed_run)
    SELECT u.*, $1 FROM student_sync_stage_guardian_accounts AS u
    ON CONFLICT (guardian_id, student_dcid) DO UPDATE SET
        email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        web_access_account = EXCLUDED.web_access_account,
        updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";

/// Inserts or updates guardian accounts (one row per key among all given).
pub async fn upsert_guardian_accounts(
    tx: &mut Tx<'_>,
    parts: &[&[GuardianAccountRow]],
    run_id: i64,
) -> Result<(), StoreError> {
    upsert_staged(
        tx,
        (
            "student_sync_stage_guardian_accounts",
            STAGE_GUARDIAN_ACCOUNTS,
            UPSERT_GUARDIAN_ACCOUNTS,
        ),
        parts,
        |out, r: &GuardianAccountRow| {
            copy_row!(out; r.guardian_id, r.student_dcid, r.email, r.first_name, r.last_name,
                r.web_access_account)
        },
        run_id,
        "writing guardian accounts",
    )
    .await
}

pub async fn delete_guardian_accounts(
    tx: &mut Tx<'_>,
    keys: &[(i64, i64)],
) -> Result<(), StoreError> {
    delete_by_pairs(
        tx,
        "DELETE FROM guardian_accounts g USING UNNEST($1::bigint[], $2::bigint[]) AS k(gid, s)
         WHERE g.guardian_id = k.gid AND g.student_dcid = k.s",
        keys,
        "removing guardian links PowerSchool no longer has",
    )
    .await
}

/// A user the run creates. The email is SchoolEngage's from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUserRow {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub powerschool_guardian_id: Option<i64>,
    pub incomplete: bool,
}

/// Inserts users and returns their ids in the order given.
pub async fn insert_users(
    tx: &mut Tx<'_>,
    rows: &[NewUserRow],
    run_id: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH) {
        // The district's SIS vouches for the address of an account it created
        // the user from, so the user counts as verified for later matching.
        let returned = sqlx::query(
            "INSERT INTO users (email, first_name, last_name, powerschool_guardian_id, incomplete,
                                email_verified, created_by_run)
             SELECT u.e, u.f, u.l, u.g, u.i, true, $6
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bool[])
                  WITH ORDINALITY AS u(e, f, l, g, i, n)
             ORDER BY u.n
             RETURNING id, email",
        )
        .bind(chunk.iter().map(|r| r.email.clone()).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|r| r.first_name.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|r| r.last_name.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|r| r.powerschool_guardian_id)
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|r| r.incomplete).collect::<Vec<_>>())
        .bind(run_id)
        .fetch_all(&mut **tx)
        .await
        .doing("creating users")?;
        // RETURNING order is not guaranteed: map back by the unique email.
        let by_email: std::collections::HashMap<String, i64> = returned
            .iter()
            .map(|r| (r.get::<String, _>(1), r.get::<i64, _>(0)))
            .collect();
        for r in chunk {
            ids.push(by_email[&r.email]);
        }
    }
    Ok(ids)
}

/// The synced fields of an existing user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpdate {
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub powerschool_guardian_id: Option<i64>,
    pub incomplete: bool,
}

pub async fn update_users(tx: &mut Tx<'_>, rows: &[UserUpdate]) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        sqlx::query(
            "UPDATE users AS t SET first_name = u.f, last_name = u.l,
                    powerschool_guardian_id = u.g, incomplete = u.i, updated_at = now()
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bool[])
                  AS u(id, f, l, g, i)
             WHERE t.id = u.id",
        )
        .bind(chunk.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|r| r.first_name.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|r| r.last_name.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|r| r.powerschool_guardian_id)
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|r| r.incomplete).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .doing("updating users")?;
    }
    Ok(())
}

/// A connection's decided state, for insert or update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionWrite {
    pub student_dcid: i64,
    pub user_id: i64,
    pub tier: AccessTier,
    pub case_code: ConnectionCase,
    pub limits: Vec<Limit>,
    pub origin: Origin,
    pub present_in_powerschool: bool,
    pub powerschool_guardian_id: Option<i64>,
}

const STAGE_CONNECTIONS: &str = "student_dcid bigint, user_id bigint, tier text, case_code text,
    limits text[], origin text, present_in_powerschool bool, powerschool_guardian_id bigint";

/// Inserts or updates connections by (student, user), one row per pair
/// among all given; returns the id of each pair written.
pub async fn upsert_connections(
    tx: &mut Tx<'_>,
    rows: &[ConnectionWrite],
    run_id: i64,
) -> Result<HashMap<(i64, i64), i64>, StoreError> {
    let doing = "writing connections";
    let n = stage_rows(
        tx,
        "student_sync_stage_connections",
        STAGE_CONNECTIONS,
        &[rows],
        |out, r: &ConnectionWrite| {
            copy_row!(out; r.student_dcid, r.user_id, r.tier, r.case_code, CodeArray(&r.limits),
                r.origin, r.present_in_powerschool, r.powerschool_guardian_id)
        },
        doing,
    )
    .await?;
    let mut ids = HashMap::with_capacity(n as usize);
    if n == 0 {
        return Ok(ids);
    }
    let mut returned = sqlx::query(
        "INSERT INTO connections (student_dcid, user_id, tier, case_code, limits, origin,
                                  present_in_powerschool, powerschool_guardian_id, last_changed_run)
         SELECT u.*, $1 FROM student_sync_stage_connections AS u
         ON CONFLICT (student_dcid, user_id) DO UPDATE SET
             tier = EXCLUDED.tier, case_code = EXCLUDED.case_code,
             limits = EXCLUDED.limits,
             present_in_powerschool = EXCLUDED.present_in_powerschool,
             powerschool_guardian_id = EXCLUDED.powerschool_guardian_id,
             updated_at = now(), last_changed_run = EXCLUDED.last_changed_run
         RETURNING id, student_dcid, user_id",
    )
    .bind(run_id)
    .fetch(&mut **tx);
    while let Some(r) = returned.try_next().await.doing(doing)? {
        ids.insert((r.get::<i64, _>(1), r.get::<i64, _>(2)), r.get::<i64, _>(0));
    }
    Ok(ids)
}

pub async fn delete_connections(tx: &mut Tx<'_>, ids: &[i64]) -> Result<(), StoreError> {
    for chunk in ids.chunks(BATCH) {
        sqlx::query("DELETE FROM connections WHERE id = ANY($1)")
            .bind(chunk.to_vec())
            .execute(&mut **tx)
            .await
            .doing("removing revoked connections")?;
    }
    Ok(())
}

/// One append to the access audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub connection_id: Option<i64>,
    pub student_dcid: i64,
    pub user_id: i64,
    pub tier_before: Option<AccessTier>,
    pub tier_after: Option<AccessTier>,
    pub case_before: Option<ConnectionCase>,
    pub case_after: Option<ConnectionCase>,
    /// The reasons as compact JSON text (stored as `jsonb`).
    pub reasons: String,
}

/// Appends rows to the access audit (one `COPY`); callers build and append
/// them a batch at a time.
pub async fn append_audit(
    tx: &mut Tx<'_>,
    rows: &[AuditRow],
    run_id: Option<i64>,
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut copy = (**tx)
        .copy_in_raw(
            "COPY access_audit (connection_id, student_dcid, user_id, tier_before, tier_after,
                                case_before, case_after, reasons, run_id) FROM STDIN",
        )
        .await
        .doing("appending to the access audit")?;
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + (64 << 10));
    let mut i = 0;
    while i < rows.len() {
        while i < rows.len() && buf.len() < COPY_CHUNK {
            let r = &rows[i];
            copy_row!(&mut buf; r.connection_id, r.student_dcid, r.user_id, r.tier_before,
                r.tier_after, r.case_before, r.case_after, r.reasons, run_id);
            i += 1;
        }
        copy.send(buf.as_slice())
            .await
            .doing("appending to the access audit")?;
        buf.clear();
    }
    copy.finish().await.doing("appending to the access audit")
}

/// A record a run could not use or wants an admin to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemRow {
    pub kind: String,
    pub query: Option<String>,
    pub record_id: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

pub async fn insert_problems(
    tx: &mut Tx<'_>,
    rows: &[ProblemRow],
    run_id: i64,
) -> Result<(), StoreError> {
    copy_in(
        tx,
        "COPY run_problems (run_id, kind, query, record_id, field, value, message) FROM STDIN",
        &[rows],
        move |out, r: &ProblemRow| {
            copy_row!(out; run_id, r.kind, r.query, r.record_id, r.field, r.value, r.message)
        },
        "recording the run's problems",
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_and_nulls() {
        let mut out = Vec::new();
        let none: Option<String> = None;
        copy_row!(&mut out; 5i64, "a\tb\\c\nd\re", none, Some(true), CodeArray(&["R4", "R5"]));
        copy_row!(&mut out; CodeArray::<Limit>(&[]), chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "5\ta\\tb\\\\c\\nd\\re\t\\N\tt\t{R4,R5}\n{}\t2026-01-02\n"
        );
    }
}
