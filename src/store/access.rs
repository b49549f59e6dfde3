//! Reading the access table: the `access export` contract of
//! `docs/test-worlds.md`, and a connection's audit history for `explain`.

use super::write::{ProblemRow, StoredFacts};
use super::{Doing, StoreError};
use crate::rules::problems::RuleProblem;
use crate::rules::verdict::codes::{self, CodesError};
use crate::rules::{AccessTier, ConnectionCase, Limit};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

/// What `access export` prints (a test world's `expect` object has the same shape).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTable {
    pub connections: Vec<AccessRow>,
    pub incomplete_users: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessRow {
    pub student_dcid: i64,
    pub email: String,
    pub tier: String,
    pub case: String,
    pub limits: Vec<String>,
}

// Byte order (COLLATE "C"), so the export is the same on every server
// whatever its locale. `made_by_latest_run` tells whether the connection's
// case was written by the latest successful run (see
// `ConnectionCase::on_a_later_night`).
const SELECT_ACCESS: &str = "
    WITH latest AS (SELECT max(id) AS run_id FROM sync_runs WHERE status = 'succeeded')
    SELECT c.student_dcid, u.email, c.tier, c.case_code, c.limits,
           c.last_changed_run IS NOT DISTINCT FROM (SELECT run_id FROM latest)
               AS made_by_latest_run
    FROM connections c JOIN users u ON u.id = c.user_id
    ORDER BY c.student_dcid, u.email COLLATE \"C\"";
const SELECT_INCOMPLETE: &str =
    "SELECT email FROM users WHERE incomplete ORDER BY email COLLATE \"C\"";

/// The whole access table, sorted as the export contract says.
pub async fn export(pool: &PgPool) -> Result<AccessTable, StoreError> {
    // Each row is read into its export form as it arrives: a million
    // students' connections, all held as database rows first, took twice
    // the memory.
    let mut rows = sqlx::query(SELECT_ACCESS).fetch(pool);
    let mut connections = Vec::new();
    while let Some(r) = rows.try_next().await.doing("reading the access table")? {
        let mut limits: Vec<Limit> = r.get("limits");
        limits.sort();
        let limits = limits.iter().map(|l| l.to_string()).collect();
        let case =
            ConnectionCase::as_exported(r.get("case_code"), r.get::<bool, _>("made_by_latest_run"));
        connections.push(AccessRow {
            student_dcid: r.get("student_dcid"),
            email: r.get("email"),
            tier: r.get("tier"),
            case: case.as_str().to_string(),
            limits,
        });
    }
    drop(rows);
    let incomplete_users = sqlx::query_scalar(SELECT_INCOMPLETE)
        .fetch_all(pool)
        .await
        .doing("reading incomplete users")?;
    Ok(AccessTable {
        connections,
        incomplete_users,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub run_id: Option<i64>,
    pub recorded_at: DateTime<Utc>,
    pub tier_before: Option<String>,
    pub tier_after: Option<String>,
    pub case_before: Option<String>,
    pub case_after: Option<String>,
    pub reasons: serde_json::Value,
}

/// Every recorded change of one (student, user) pair's access, oldest first.
/// A row stored as codes is rendered into the same `reasons` a row stored
/// as sentences holds (docs/access-rules.md, "What the audit stores").
pub async fn audit_history(
    pool: &PgPool,
    student_dcid: i64,
    user_id: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, run_id, recorded_at, tier_before, tier_after, case_before, case_after,
                reasons, reason_codes::text AS reason_codes
         FROM access_audit WHERE student_dcid = $1 AND user_id = $2 ORDER BY id",
    )
    .bind(student_dcid)
    .bind(user_id)
    .fetch_all(pool)
    .await
    .doing("reading the access audit")?;
    rows.iter()
        .map(|r| {
            let mut entry = AuditEntry {
                run_id: r.get("run_id"),
                recorded_at: r.get("recorded_at"),
                tier_before: r.get("tier_before"),
                tier_after: r.get("tier_after"),
                case_before: r.get("case_before"),
                case_after: r.get("case_after"),
                reasons: r
                    .get::<Option<serde_json::Value>, _>("reasons")
                    .unwrap_or_default(),
            };
            if let Some(stored) = r.get::<Option<String>, _>("reason_codes") {
                entry.reasons =
                    rendered_reasons(&entry, student_dcid, user_id, &stored).map_err(|source| {
                        StoreError::BadAuditCodes {
                            id: r.get("id"),
                            student_dcid,
                            user_id,
                            source,
                        }
                    })?;
            }
            Ok(entry)
        })
        .collect()
}

/// The `reasons` of a row stored as codes, as the row would hold them in
/// sentences: action, case, case letter, guardian id, limits and verdicts.
fn rendered_reasons(
    entry: &AuditEntry,
    student_dcid: i64,
    user_id: i64,
    stored: &str,
) -> Result<serde_json::Value, CodesError> {
    let bad = |problem: String| CodesError {
        codes: stored.to_string(),
        problem,
    };
    let case: ConnectionCase = entry
        .case_after
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| bad(format!("case_after {:?} is not a case", entry.case_after)))?;
    let tier_after = match entry.tier_after.as_deref() {
        Some(t) => Some(
            t.parse::<AccessTier>()
                .map_err(|_| bad(format!("tier_after {t:?} is not a tier")))?,
        ),
        None => None,
    };
    let keys = codes::RowKeys {
        student_dcid,
        user_id,
        tier_after,
        case,
    };
    let decoded = codes::decode(&keys, stored)?;
    // The action follows from the tiers: no tier after is a removal, no
    // tier before a new connection.
    let action = match (&entry.tier_before, tier_after) {
        (_, None) => "remove",
        (None, Some(_)) => "create",
        (Some(_), Some(_)) => "update",
    };
    Ok(serde_json::json!({
        "action": action,
        "case": case.as_str(),
        "case_letter": case.letter(),
        "guardian_id": decoded.guardian_id,
        "limits": decoded.limits.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
        "verdicts": decoded.verdicts,
    }))
}

/// The problems a run recorded, in the order it found them, with their
/// words: a rule problem stored as its facts is rendered as the run's report
/// showed it; a row stored with its words (free text, or any row of a run
/// before rule problems were stored as facts) reads as stored.
pub async fn run_problems(pool: &PgPool, run_id: i64) -> Result<Vec<ProblemRow>, StoreError> {
    run_problems_of_kind(pool, run_id, None).await
}

/// `run_problems`, only those of `kind` when one is given. A run whose
/// problems were those of an earlier run reads them where that run stored
/// them (`sync_runs.problems_stored_by`).
pub async fn run_problems_of_kind(
    pool: &PgPool,
    run_id: i64,
    kind: Option<&str>,
) -> Result<Vec<ProblemRow>, StoreError> {
    const DOING: &str = "reading the run's problems";
    let mut rows = sqlx::query(
        "SELECT id, kind, query, record_id, field, value, message,
                guardian_id, student_dcid, user_id, login
         FROM run_problems
         WHERE run_id = (SELECT coalesce(problems_stored_by, id) FROM sync_runs WHERE id = $1)
           AND ($2::text IS NULL OR kind = $2)
         ORDER BY id",
    )
    .bind(run_id)
    .bind(kind)
    .fetch(pool);
    // Worded as each arrives, not held as database rows first (a million
    // students' first night recorded some 320,000).
    let mut problems = Vec::new();
    while let Some(r) = rows.try_next().await.doing(DOING)? {
        problems.push(read_problem(&r)?);
    }
    Ok(problems)
}

/// One column of a stored problem.
fn problem_column<'r, T>(r: &'r PgRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    r.try_get(name).doing("reading the run's problems")
}

/// One stored problem with its words.
fn read_problem(r: &PgRow) -> Result<ProblemRow, StoreError> {
    let get = |name| problem_column::<Option<String>>(r, name);
    let kind: String = problem_column(r, "kind")?;
    if let Some(message) = get("message")? {
        return Ok(ProblemRow {
            kind,
            query: get("query")?,
            record_id: get("record_id")?,
            field: get("field")?,
            value: get("value")?,
            message,
            about: None,
        });
    }
    let value = get("value")?;
    let login = get("login")?;
    let facts = StoredFacts {
        guardian_id: problem_column(r, "guardian_id")?,
        student_dcid: problem_column(r, "student_dcid")?,
        user_id: problem_column(r, "user_id")?,
        value: value.as_deref(),
        login: login.as_deref(),
    };
    let Some(about) = RuleProblem::from_stored(&kind, facts) else {
        return Err(StoreError::BadProblem {
            id: problem_column(r, "id")?,
            kind,
        });
    };
    Ok(ProblemRow::from(about).worded())
}
