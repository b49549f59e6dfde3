//! Bulk writes for one run, all on the run's transaction: each statement
//! takes whole columns as arrays (`UNNEST`) in batches of `BATCH` rows, so a
//! district of 150,000 students costs a few dozen round trips, not hundreds
//! of thousands. Callers pass only rows that are new or changed: an
//! unchanged row is never written, so its `updated_at` stays.

use super::state::{ContactRow, GuardianAccountRow, StudentRow};
use super::{Doing, StoreError, BATCH};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Row, Transaction};

pub type Tx<'a> = Transaction<'a, Postgres>;

const UPSERT_STUDENTS: &str = "
    INSERT INTO students (dcid, powerschool_id, student_number, first_name, last_name, grade_level,
                          school_number, enroll_status, entry_date, org_email, personal_email,
                          independent, login_email, in_sync_set, last_changed_run)
    SELECT u.*, $15 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                                $6::bigint[], $7::bigint[], $8::bigint[], $9::date[], $10::text[],
                                $11::text[], $12::bool[], $13::text[], $14::bool[]) AS u
    ON CONFLICT (dcid) DO UPDATE SET
        powerschool_id = EXCLUDED.powerschool_id, student_number = EXCLUDED.student_number,
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        grade_level = EXCLUDED.grade_level, school_number = EXCLUDED.school_number,
        enroll_status = EXCLUDED.enroll_status, entry_date = EXCLUDED.entry_date,
        org_email = EXCLUDED.org_email, personal_email = EXCLUDED.personal_email,
        independent = EXCLUDED.independent, login_email = EXCLUDED.login_email,
        in_sync_set = EXCLUDED.in_sync_set,
        updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";

pub async fn upsert_students(
    tx: &mut Tx<'_>,
    rows: &[StudentRow],
    run_id: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        sqlx::query(UPSERT_STUDENTS)
            .bind(chunk.iter().map(|r| r.dcid).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.powerschool_id).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.student_number.clone())
                    .collect::<Vec<_>>(),
            )
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
            .bind(chunk.iter().map(|r| r.grade_level).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.school_number).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.enroll_status).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.entry_date).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.org_email.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.personal_email.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.independent).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.login_email.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.in_sync_set).collect::<Vec<_>>())
            .bind(run_id)
            .execute(&mut **tx)
            .await
            .doing("writing students")?;
    }
    Ok(())
}

const UPSERT_CONTACTS: &str = "
    INSERT INTO student_contacts (student_dcid, person_id, first_name, last_name, email,
                                  is_decision_making, last_changed_run)
    SELECT u.*, $7 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                               $6::bool[]) AS u
    ON CONFLICT (student_dcid, person_id) DO UPDATE SET
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        email = EXCLUDED.email, is_decision_making = EXCLUDED.is_decision_making,
        updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";

pub async fn upsert_contacts(
    tx: &mut Tx<'_>,
    rows: &[ContactRow],
    run_id: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        sqlx::query(UPSERT_CONTACTS)
            .bind(chunk.iter().map(|r| r.student_dcid).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.person_id).collect::<Vec<_>>())
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
            .bind(chunk.iter().map(|r| r.email.clone()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.is_decision_making)
                    .collect::<Vec<_>>(),
            )
            .bind(run_id)
            .execute(&mut **tx)
            .await
            .doing("writing student contacts")?;
    }
    Ok(())
}

pub async fn delete_contacts(tx: &mut Tx<'_>, keys: &[(i64, i64)]) -> Result<(), StoreError> {
    for chunk in keys.chunks(BATCH) {
        sqlx::query(
            "DELETE FROM student_contacts c USING UNNEST($1::bigint[], $2::bigint[]) AS k(s, p)
             WHERE c.student_dcid = k.s AND c.person_id = k.p",
        )
        .bind(chunk.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(chunk.iter().map(|k| k.1).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .doing("removing student contacts PowerSchool no longer has")?;
    }
    Ok(())
}

const UPSERT_GUARDIAN_ACCOUNTS: &str = "
    INSERT INTO guardian_accounts (guardian_id, student_dcid, email, first_name, last_name,
                                   web_access_account, last_changed_run)
    SELECT u.*, $7 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                               $6::bool[]) AS u
    ON CONFLICT (guardian_id, student_dcid) DO UPDATE SET
        email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        web_access_account = EXCLUDED.web_access_account,
        updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";

pub async fn upsert_guardian_accounts(
    tx: &mut Tx<'_>,
    rows: &[GuardianAccountRow],
    run_id: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        sqlx::query(UPSERT_GUARDIAN_ACCOUNTS)
            .bind(chunk.iter().map(|r| r.guardian_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.student_dcid).collect::<Vec<_>>())
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
                    .map(|r| r.web_access_account)
                    .collect::<Vec<_>>(),
            )
            .bind(run_id)
            .execute(&mut **tx)
            .await
            .doing("writing guardian accounts")?;
    }
    Ok(())
}

pub async fn delete_guardian_accounts(
    tx: &mut Tx<'_>,
    keys: &[(i64, i64)],
) -> Result<(), StoreError> {
    for chunk in keys.chunks(BATCH) {
        sqlx::query(
            "DELETE FROM guardian_accounts g USING UNNEST($1::bigint[], $2::bigint[]) AS k(gid, s)
             WHERE g.guardian_id = k.gid AND g.student_dcid = k.s",
        )
        .bind(chunk.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(chunk.iter().map(|k| k.1).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .doing("removing guardian links PowerSchool no longer has")?;
    }
    Ok(())
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
    pub tier: String,
    pub case_code: String,
    pub limits: Vec<String>,
    pub origin: String,
    pub present_in_powerschool: bool,
    pub powerschool_guardian_id: Option<i64>,
}

/// Inserts or updates connections by (student, user); returns each one's id
/// in the order given.
pub async fn upsert_connections(
    tx: &mut Tx<'_>,
    rows: &[ConnectionWrite],
    run_id: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH) {
        // Limits travel as one comma-joined text per row: PostgreSQL arrays
        // of arrays must be rectangular, and limits are short codes.
        let returned = sqlx::query(
            "INSERT INTO connections (student_dcid, user_id, tier, case_code, limits, origin,
                                      present_in_powerschool, powerschool_guardian_id, last_changed_run)
             SELECT u.s, u.uid, u.t, u.c, COALESCE(string_to_array(NULLIF(u.l, ''), ','), '{}'),
                    u.o, u.p, u.g, $9
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::bool[], $8::bigint[]) AS u(s, uid, t, c, l, o, p, g)
             ON CONFLICT (student_dcid, user_id) DO UPDATE SET
                 tier = EXCLUDED.tier, case_code = EXCLUDED.case_code,
                 limits = EXCLUDED.limits,
                 present_in_powerschool = EXCLUDED.present_in_powerschool,
                 powerschool_guardian_id = EXCLUDED.powerschool_guardian_id,
                 updated_at = now(), last_changed_run = EXCLUDED.last_changed_run
             RETURNING id, student_dcid, user_id",
        )
        .bind(chunk.iter().map(|r| r.student_dcid).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.tier.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.case_code.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.limits.join(",")).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.origin.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.present_in_powerschool).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.powerschool_guardian_id).collect::<Vec<_>>())
        .bind(run_id)
        .fetch_all(&mut **tx)
        .await
        .doing("writing connections")?;
        let by_pair: std::collections::HashMap<(i64, i64), i64> = returned
            .iter()
            .map(|r| ((r.get::<i64, _>(1), r.get::<i64, _>(2)), r.get::<i64, _>(0)))
            .collect();
        for r in chunk {
            ids.push(by_pair[&(r.student_dcid, r.user_id)]);
        }
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
    pub tier_before: Option<String>,
    pub tier_after: Option<String>,
    pub case_before: Option<String>,
    pub case_after: Option<String>,
    pub reasons: serde_json::Value,
}

pub async fn append_audit(
    tx: &mut Tx<'_>,
    rows: &[AuditRow],
    run_id: Option<i64>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        sqlx::query(
            "INSERT INTO access_audit (connection_id, student_dcid, user_id, tier_before, tier_after,
                                       case_before, case_after, reasons, run_id)
             SELECT u.*, $9 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
                                        $5::text[], $6::text[], $7::text[], $8::jsonb[]) AS u",
        )
        .bind(chunk.iter().map(|r| r.connection_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.student_dcid).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.tier_before.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.tier_after.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.case_before.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.case_after.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.reasons.clone()).collect::<Vec<_>>())
        .bind(run_id)
        .execute(&mut **tx)
        .await
        .doing("appending to the access audit")?;
    }
    Ok(())
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
    for chunk in rows.chunks(BATCH) {
        sqlx::query(
            "INSERT INTO run_problems (run_id, kind, query, record_id, field, value, message)
             SELECT $1, u.* FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                        $7::text[]) AS u",
        )
        .bind(run_id)
        .bind(chunk.iter().map(|r| r.kind.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.query.clone()).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|r| r.record_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|r| r.field.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.value.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.message.clone()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .doing("recording the run's problems")?;
    }
    Ok(())
}
