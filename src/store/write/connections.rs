//! The connections a run writes (its decided tier, case and limits for each
//! student and user) and the ones it removes.

use super::copy::{copy_row, stage_rows, CodeArray, Staging};
use super::Tx;
use crate::rules::{AccessTier, ConnectionCase, Limit, Origin};
use crate::store::{Doing, StoreError, BATCH};
use foldhash::{HashMap, HashMapExt};
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::Row;

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

const STAGING: Staging<'static> = Staging {
    table: "student_sync_stage_connections",
    columns: "student_dcid bigint, user_id bigint, tier text, case_code text,
    limits text[], origin text, present_in_powerschool bool, powerschool_guardian_id bigint",
    doing: "writing connections",
};

/// Inserts or updates connections by (student, user), one row per pair
/// among all given; returns the id of each pair written.
pub async fn upsert_connections(
    tx: &mut Tx<'_>,
    rows: &[ConnectionWrite],
    run_id: i64,
) -> Result<HashMap<(i64, i64), i64>, StoreError> {
    let n = stage_rows(tx, &STAGING, &[rows], |out, r: &ConnectionWrite| {
        copy_row!(out; r.student_dcid, r.user_id, r.tier, r.case_code, CodeArray(&r.limits),
            r.origin, r.present_in_powerschool, r.powerschool_guardian_id)
    })
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
    while let Some(r) = returned.try_next().await.doing(STAGING.doing)? {
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
