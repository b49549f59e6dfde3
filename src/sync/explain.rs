//! `explain`: the rules' own explanation of one (student, email) pair, from
//! the state the last sync left in the database, plus that connection's
//! audit history. Only the part of the district the pair's decision can
//! depend on is read and decided (`rules::scope_of`, `store::scope`).

use super::facts::facts_from_state;
use crate::config::SyncSettings;
use crate::rules::{self, DistrictFacts, TierMatrix};
use crate::store::access::{audit_history, AuditEntry};
use crate::store::scope::load_scoped;
use crate::store::StoreError;
use serde::Serialize;
use sqlx::PgPool;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct AccessExplanation {
    #[serde(flatten)]
    pub explanation: rules::Explanation,
    pub audit_history: Vec<AuditEntry>,
}

impl AccessExplanation {
    pub fn to_text(&self) -> String {
        let mut out = self.explanation.to_text();
        let _ = writeln!(out, "\nAudit history of this connection:");
        if self.audit_history.is_empty() {
            let _ = writeln!(out, "  (none recorded)");
        }
        for a in &self.audit_history {
            let _ = writeln!(
                out,
                "  {} run {}: {} → {} (case {} → {})",
                a.recorded_at.format("%Y-%m-%d %H:%M:%S UTC"),
                a.run_id
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into()),
                a.tier_before.as_deref().unwrap_or("no connection"),
                a.tier_after.as_deref().unwrap_or("removed"),
                a.case_before.as_deref().unwrap_or("-"),
                a.case_after.as_deref().unwrap_or("-"),
            );
        }
        out
    }
}

pub async fn explain(
    pool: &PgPool,
    settings: &SyncSettings,
    matrix: &TierMatrix,
    student_dcid: i64,
    email: &str,
) -> Result<AccessExplanation, StoreError> {
    let facts = scoped_facts(pool, settings, &[(student_dcid, email)]).await?;
    explain_with(pool, &facts, matrix, student_dcid, email).await
}

/// `explain` for several (student, email) pairs from one load of the state:
/// what a spot sync prints for the connections it touched.
pub async fn explain_pairs(
    pool: &PgPool,
    settings: &SyncSettings,
    matrix: &TierMatrix,
    pairs: &[(i64, String)],
) -> Result<Vec<AccessExplanation>, StoreError> {
    let asked: Vec<(i64, &str)> = pairs.iter().map(|(s, e)| (*s, e.as_str())).collect();
    let facts = scoped_facts(pool, settings, &asked).await?;
    let mut out = Vec::with_capacity(pairs.len());
    for (student_dcid, email) in pairs {
        out.push(explain_with(pool, &facts, matrix, *student_dcid, email).await?);
    }
    Ok(out)
}

/// The facts of the part of the district the `asked` pairs' decisions can
/// depend on (`rules::scope_of`): the keys of every stored record are read,
/// then only the records of that part.
async fn scoped_facts(
    pool: &PgPool,
    settings: &SyncSettings,
    asked: &[(i64, &str)],
) -> Result<DistrictFacts, StoreError> {
    let state = load_scoped(pool, |keys| rules::reach(&keys, asked)).await?;
    Ok(facts_from_state(state, settings))
}

/// One pair explained from facts already built, with the audit history of
/// the user's connection to the student (none when no user has the email).
async fn explain_with(
    pool: &PgPool,
    facts: &DistrictFacts,
    matrix: &TierMatrix,
    student_dcid: i64,
    email: &str,
) -> Result<AccessExplanation, StoreError> {
    let explanation = rules::explain_pair(facts, matrix, student_dcid, email);
    let user =
        rules::normalise_email(email).and_then(|e| facts.users.iter().find(|u| u.email == e));
    let audit_history = match user {
        Some(u) => audit_history(pool, student_dcid, u.user_id).await?,
        None => Vec::new(),
    };
    Ok(AccessExplanation {
        explanation,
        audit_history,
    })
}
