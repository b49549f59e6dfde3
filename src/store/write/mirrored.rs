//! The rows PowerSchool owns and the run mirrors: students, student contacts
//! and guardian accounts. Each kind is staged with COPY and merged into its
//! live table with one `INSERT … ON CONFLICT`; removals go by key pairs.

use super::copy::{copy_row, stage_rows, Staging};
use super::Tx;
use crate::store::state::{ContactRow, GuardianAccountRow, StudentRow};
use crate::store::{Doing, StoreError, BATCH};

/// A row kind mirrored from PowerSchool: where it is staged, how it is
/// merged into its live table, and its COPY text.
pub trait MirroredRow: Sync {
    /// The temporary staging table.
    const STAGE_TABLE: &'static str;
    /// The staging table's columns, in COPY order.
    const STAGE_COLUMNS: &'static str;
    /// The set-based merge from the staging table; `$1` is the run id.
    const UPSERT: &'static str;
    /// What writing this kind is called in errors.
    const DOING: &'static str;
    /// Appends the row as one COPY text line.
    fn encode(&self, out: &mut Vec<u8>);
}

/// Inserts or updates rows of one mirrored kind (one row per key among all
/// given): staged, then merged with one statement.
pub async fn upsert_mirrored<T: MirroredRow>(
    tx: &mut Tx<'_>,
    parts: &[&[T]],
    run_id: i64,
) -> Result<(), StoreError> {
    let staging = Staging {
        table: T::STAGE_TABLE,
        columns: T::STAGE_COLUMNS,
        doing: T::DOING,
    };
    if stage_rows(tx, &staging, parts, |out, r: &T| r.encode(out)).await? > 0 {
        sqlx::query(T::UPSERT)
            .bind(run_id)
            .execute(&mut **tx)
            .await
            .doing(T::DOING)?;
    }
    Ok(())
}

impl MirroredRow for StudentRow {
    const STAGE_TABLE: &'static str = "student_sync_stage_students";
    const STAGE_COLUMNS: &'static str = "dcid bigint, powerschool_id bigint, student_number text,
        first_name text, last_name text, grade_level bigint, school_number bigint,
        enroll_status bigint, entry_date date, org_email text, personal_email text,
        independent bool, login_email text, in_sync_set bool";
    const UPSERT: &'static str = "
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
    const DOING: &'static str = "writing students";

    fn encode(&self, out: &mut Vec<u8>) {
        let r = self;
        copy_row!(out; r.dcid, r.powerschool_id, r.student_number, r.first_name, r.last_name,
            r.grade_level, r.school_number, r.enroll_status, r.entry_date, r.org_email,
            r.personal_email, r.independent, r.login_email, r.in_sync_set)
    }
}

impl MirroredRow for ContactRow {
    const STAGE_TABLE: &'static str = "student_sync_stage_contacts";
    const STAGE_COLUMNS: &'static str = "student_dcid bigint, person_id bigint, first_name text,
        last_name text, email text, is_decision_making bool";
    const UPSERT: &'static str = "
        INSERT INTO student_contacts (student_dcid, person_id, first_name, last_name, email,
                                      is_decision_making, last_changed_run)
        SELECT u.*, $1 FROM student_sync_stage_contacts AS u
        ON CONFLICT (student_dcid, person_id) DO UPDATE SET
            first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
            email = EXCLUDED.email, is_decision_making = EXCLUDED.is_decision_making,
            updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";
    const DOING: &'static str = "writing student contacts";

    fn encode(&self, out: &mut Vec<u8>) {
        let r = self;
        copy_row!(out; r.student_dcid, r.person_id, r.first_name, r.last_name, r.email,
            r.is_decision_making)
    }
}

impl MirroredRow for GuardianAccountRow {
    const STAGE_TABLE: &'static str = "student_sync_stage_guardian_accounts";
    const STAGE_COLUMNS: &'static str = "guardian_id bigint, student_dcid bigint, email text,
        first_name text, last_name text, web_access_account bool";
    const UPSERT: &'static str = "
        INSERT INTO guardian_accounts (guardian_id, student_dcid, email, first_name, last_name,
                                       web_access_account, last_changed_run)
        SELECT u.*, $1 FROM student_sync_stage_guardian_accounts AS u
        ON CONFLICT (guardian_id, student_dcid) DO UPDATE SET
            email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
            web_access_account = EXCLUDED.web_access_account,
            updated_at = now(), last_changed_run = EXCLUDED.last_changed_run";
    const DOING: &'static str = "writing guardian accounts";

    fn encode(&self, out: &mut Vec<u8>) {
        let r = self;
        copy_row!(out; r.guardian_id, r.student_dcid, r.email, r.first_name, r.last_name,
            r.web_access_account)
    }
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
