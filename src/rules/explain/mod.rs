//! `explain`: why does this parent see (or not see) this child? Answers from
//! the very same engine as the nightly run (`decide`), then gathers every
//! record the rules looked at, so a district admin can check the answer
//! against PowerSchool and SchoolEngage record by record.
//!
//! `gather` collects what explain shows (the facts, each rule's verdict, the
//! case, the tier) into an [`Explanation`]; `render` turns it into text. The
//! types here are what both agree on, and what `--json` prints. `scope`
//! cuts a district down to the part one question depends on.

use serde::Serialize;

use super::decision::Engine;
use super::email::normalise_email;
use super::tiers::{TierMatrix, TierPermissions};
use super::{
    AccessTier, ConnectionAction, ConnectionCase, DistrictFacts, Limit, Origin, RuleVerdict,
    UserRef,
};

mod gather;
mod render;
mod scope;

pub use scope::{email_key, reach, reach_from, scope_of, Scope, ScopeKeys};

use gather::Asked;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub student_dcid: i64,
    /// As asked.
    pub email_given: String,
    /// Normalised; `None` when the email is empty or malformed.
    pub email: Option<String>,
    pub sees_student: bool,
    /// One sentence: the answer.
    pub summary: String,
    /// Why not, in rule terms; empty when the parent sees the student.
    pub reasons: Vec<String>,
    /// `None` when the student is not in this run's sync set.
    pub student: Option<StudentSummary>,
    pub guardian_rows: Vec<GuardianRowSummary>,
    pub contacts: Vec<ContactSummary>,
    pub user: Option<UserSummary>,
    pub forms_by_user_for_student: usize,
    pub existing_connection: Option<ExistingConnection>,
    pub decision: Option<DecisionSummary>,
    /// The rule verdicts behind the decision, or behind the absence of one.
    pub verdicts: Vec<RuleVerdict>,
    pub tier: Option<AccessTier>,
    pub limits: Vec<Limit>,
    /// What the tier lets the parent do, from the configured matrix.
    pub allows: Option<TierPermissions>,
    pub allows_text: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudentSummary {
    pub dcid: i64,
    pub independent: bool,
    pub org_email: Option<String>,
    pub personal_email: Option<String>,
    pub email_is_org_email: bool,
    pub email_is_personal_email: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardianRowSummary {
    pub guardian_id: i64,
    /// As PowerSchool holds it.
    pub email: Option<String>,
    pub has_this_email: bool,
    pub web_access_account: bool,
    /// What step 1 and step 2 made of the row.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactSummary {
    pub person_id: i64,
    /// As PowerSchool holds it.
    pub email: Option<String>,
    pub has_this_email: bool,
    pub is_decision_making: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    pub user: UserRef,
    /// The login email (for a new user: the email it is created with).
    pub email: String,
    pub email_verified: bool,
    /// Before the run (for a new user: the account it is created for).
    pub powerschool_guardian_id: Option<i64>,
    /// This run links the user to this PowerSchool account.
    pub linked_this_run: Option<i64>,
    pub incomplete_before: bool,
    pub incomplete_after: bool,
    /// Evidence that the user holds a Parent Portal account (README decision 8).
    pub parent_portal_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExistingConnection {
    pub tier: AccessTier,
    pub case: Option<ConnectionCase>,
    pub limits: Vec<Limit>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionSummary {
    pub action: ConnectionAction,
    pub case: ConnectionCase,
    pub case_letter: String,
    pub tier: AccessTier,
    pub limits: Vec<Limit>,
    pub guardian_id: Option<i64>,
    pub present_in_powerschool: bool,
    pub orphaned: bool,
}

/// Why the parent with `email` does (or does not) see `student_dcid`, from
/// the same decisions the nightly run makes.
pub fn explain_pair(
    facts: &DistrictFacts,
    matrix: &TierMatrix,
    student_dcid: i64,
    email: &str,
) -> Explanation {
    // `decide` is `Engine::new(facts).decisions(&Keep::ALL)`; keeping the engine lets
    // explain also read what steps 1 and 2 made of each row, with the same code.
    let engine = Engine::new(facts);
    let decisions = engine.decisions(&crate::rules::Keep::ALL);
    let normalised = normalise_email(email);
    let asked = Asked {
        facts,
        engine: &engine,
        decisions: &decisions,
        student_dcid,
        email,
        wanted: normalised.as_deref(),
    };

    let student = asked.student();
    let existing_user = asked.existing_user();
    let user_id = existing_user.map(|u| u.user_id);
    let existing_connection = asked.existing_connection(user_id);
    let user_ref = asked.user_ref(existing_user);
    let decision = asked.decision(user_ref);
    let sees_student = decision.is_some_and(|d| d.action != ConnectionAction::Remove);
    let verdicts = match decision {
        Some(d) => d.verdicts.clone(),
        None => asked.why_no_connection(student.is_some(), user_id, existing_connection.is_some()),
    };
    let reasons = gather::reasons(&verdicts, decision.is_some(), sees_student);

    let shown = decision.filter(|_| sees_student);
    let tier = shown.map(|d| d.tier);
    let limits = shown.map(|d| d.limits.clone()).unwrap_or_default();
    let allows = tier.map(|t| *matrix.permissions(t));
    let allows_text = allows.map(|p| p.describe()).unwrap_or_default();

    Explanation {
        student_dcid,
        email_given: email.to_string(),
        email: normalised.clone(),
        sees_student,
        summary: asked.summary(decision, tier),
        reasons,
        student,
        guardian_rows: asked.guardian_rows(),
        contacts: asked.contacts(),
        user: asked.user(existing_user, user_ref),
        forms_by_user_for_student: asked.forms_by_user(user_id),
        existing_connection,
        decision: decision.map(gather::decision_summary),
        verdicts,
        tier,
        limits,
        allows,
        allows_text,
    }
}
