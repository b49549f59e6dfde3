//! `explain`: the rules' own explanation of one (student, email) pair, from
//! the state the last sync left in the database, plus that connection's
//! audit history.

use super::plan::with_schoolengage_side;
use crate::config::SyncSettings;
use crate::rules::{self, ContactFacts, DistrictFacts, GuardianRowFacts, StudentFacts, TierMatrix};
use crate::store::access::{audit_history, AuditEntry};
use crate::store::state::CurrentState;
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

/// The rules' facts as the last sync stored them.
pub fn facts_from_state(state: &CurrentState, settings: &SyncSettings) -> DistrictFacts {
    let mut students: Vec<StudentFacts> = state
        .students
        .values()
        .filter(|s| s.in_sync_set)
        .map(|s| StudentFacts {
            dcid: s.dcid,
            independent: s.independent,
            org_email: s.org_email.clone(),
            personal_email: s.personal_email.clone(),
        })
        .collect();
    students.sort_by_key(|s| s.dcid);
    with_schoolengage_side(
        students,
        state
            .contacts
            .values()
            .map(|c| ContactFacts {
                student_dcid: c.student_dcid,
                person_id: c.person_id,
                email: c.email.clone(),
                is_decision_making: c.is_decision_making,
            })
            .collect(),
        state
            .guardian_accounts
            .values()
            .map(|g| GuardianRowFacts {
                guardian_id: g.guardian_id,
                student_dcid: g.student_dcid,
                email: g.email.clone(),
                first_name: g.first_name.clone(),
                last_name: g.last_name.clone(),
                web_access_account: g.web_access_account,
            })
            .collect(),
        state,
        settings,
    )
}

pub async fn explain(
    pool: &PgPool,
    settings: &SyncSettings,
    matrix: &TierMatrix,
    student_dcid: i64,
    email: &str,
) -> Result<AccessExplanation, StoreError> {
    let state = CurrentState::load(pool).await?;
    let facts = facts_from_state(&state, settings);
    let explanation = rules::explain_pair(&facts, matrix, student_dcid, email);
    let user =
        rules::normalise_email(email).and_then(|e| state.users.iter().find(|u| u.email == e));
    let audit_history = match user {
        Some(u) => audit_history(pool, student_dcid, u.id).await?,
        None => Vec::new(),
    };
    Ok(AccessExplanation {
        explanation,
        audit_history,
    })
}

/// `explain` for several (student, email) pairs from one load of the state:
/// what a spot sync prints for the connections it touched.
pub async fn explain_pairs(
    pool: &PgPool,
    settings: &SyncSettings,
    matrix: &TierMatrix,
    pairs: &[(i64, String)],
) -> Result<Vec<AccessExplanation>, StoreError> {
    let state = CurrentState::load(pool).await?;
    let facts = facts_from_state(&state, settings);
    let mut out = Vec::with_capacity(pairs.len());
    for (student_dcid, email) in pairs {
        let explanation = rules::explain_pair(&facts, matrix, *student_dcid, email);
        let user =
            rules::normalise_email(email).and_then(|e| state.users.iter().find(|u| u.email == e));
        let audit_history = match user {
            Some(u) => audit_history(pool, *student_dcid, u.id).await?,
            None => Vec::new(),
        };
        out.push(AccessExplanation {
            explanation,
            audit_history,
        });
    }
    Ok(out)
}
