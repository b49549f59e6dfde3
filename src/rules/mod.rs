//! The access decision table of `docs/access-rules.md` as pure
//! functions: plain facts in, a decision with its reasons out. No I/O, no
//! async, no database types, so every rule can be tested and explained on its
//! own and the same code serves the nightly run, `plan` and `explain`.
//!
//! The types here are the contract with `sync`; the table itself lives in
//! `decision/`, one place per row of the spec.

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

pub mod decision;
pub mod eligibility;
pub mod email;
pub mod explain;
pub mod problems;
pub mod text;
pub mod tiers;
pub mod verdict;

pub use decision::{decide, decide_keeping, Keep};
pub use email::normalise_email;
pub use explain::{
    email_key, explain_pair, reach, reach_from, scope_of, Explanation, Scope, ScopeKeys,
};
pub use tiers::{Capability, TierMatrix, TierMatrixError, TierPermissions};
pub use verdict::{Reason, Rule, RuleVerdict};

static_str!(
    AccessTier,
    ConnectionCase,
    Limit,
    Origin,
    RemovalPolicy,
    ConnectionAction,
    tiers::Capability,
    eligibility::LoginField
);

/// Most to least access. `Ord` follows access: `Full > Restricted > ReadOnly > Incomplete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AccessTier {
    Incomplete,
    ReadOnly,
    Restricted,
    Full,
}

impl AccessTier {
    /// Most to least access, the order the spec lists the tiers in.
    pub const ALL: [AccessTier; 4] = [
        AccessTier::Full,
        AccessTier::Restricted,
        AccessTier::ReadOnly,
        AccessTier::Incomplete,
    ];
}

/// The reason codes of step 3 for a connection that exists after the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display, VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConnectionCase {
    /// D
    Synced,
    /// B1
    MatchedFormCreator,
    /// B2
    Created,
    /// A
    SchoolengageOnly,
    /// C
    UnlinkedReturningParent,
}

impl ConnectionCase {
    /// The case of a link a run created (B1, B2) as every later night sees
    /// it: the connection exists and the link backs it, so case D. A row
    /// whose access does not change is not rewritten just to say so (README
    /// decision 17); the export and the plan read it through here instead.
    pub fn on_a_later_night(self) -> ConnectionCase {
        match self {
            ConnectionCase::Created | ConnectionCase::MatchedFormCreator => ConnectionCase::Synced,
            other => other,
        }
    }
    /// The case `access export` shows for a stored connection. One no sync
    /// has decided yet (its student is outside the sync set) exists only in
    /// SchoolEngage: case A. A case an earlier run wrote is read as that
    /// run's next night sees it (`on_a_later_night`).
    pub fn as_exported(stored: Option<ConnectionCase>, made_by_latest_run: bool) -> ConnectionCase {
        let case = stored.unwrap_or(ConnectionCase::SchoolengageOnly);
        if made_by_latest_run {
            case
        } else {
            case.on_a_later_night()
        }
    }

    /// Who a connection this case creates is made by (README decision 6):
    /// a returning parent's form (case C), else a PowerSchool link (B1,
    /// B2). An existing connection keeps the origin it has.
    pub fn origin_when_created(self) -> Origin {
        match self {
            ConnectionCase::UnlinkedReturningParent => Origin::Form,
            _ => Origin::Powerschool,
        }
    }

    /// The spec's letter for the case: D, B1, B2, A, C.
    pub fn letter(self) -> &'static str {
        match self {
            ConnectionCase::Synced => "D",
            ConnectionCase::MatchedFormCreator => "B1",
            ConnectionCase::Created => "B2",
            ConnectionCase::SchoolengageOnly => "A",
            ConnectionCase::UnlinkedReturningParent => "C",
        }
    }
}

/// A rule that lowered a valid link's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display)]
pub enum Limit {
    /// Not every contact with the email is decision-making: at most `restricted`.
    R4,
    /// Independent student, email is not the student's own: at most `read_only`.
    R5,
}

impl Limit {
    /// The highest tier this limit allows.
    pub fn ceiling(self) -> AccessTier {
        match self {
            Limit::R4 => AccessTier::Restricted,
            Limit::R5 => AccessTier::ReadOnly,
        }
    }
}

/// Who made a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display, VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Origin {
    /// Made in SchoolEngage by staff.
    Admin,
    /// Made when the user created a form for the student.
    Form,
    /// Made by a sync from a PowerSchool link.
    Powerschool,
}

/// `on_powerschool_removal`: what happens to a connection an earlier sync
/// made from PowerSchool once its link is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display, VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RemovalPolicy {
    #[default]
    Keep,
    Restrict,
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub on_powerschool_removal: RemovalPolicy,
}

// ---------------- facts ----------------

/// A name or a short code as PowerSchool sends it: held inline when it fits
/// in 24 bytes (nearly every name does), so a district's millions of names
/// are not each a block of their own on the heap. Reads as a `str`.
pub type Name = compact_str::CompactString;

/// A guardian link: one row of `com.pearson.core.guardian.student_guardian_detail`: a Parent
/// Portal (or Web Access) account linked to one student.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GuardianLink {
    pub guardian_id: i64,
    pub student_dcid: i64,
    /// As PowerSchool holds it: not normalised, may be absent.
    pub email: Option<String>,
    pub first_name: Option<Name>,
    pub last_name: Option<Name>,
    /// `accounttype = "webaccess"`: rule R1 ignores the row.
    pub web_access_account: bool,
}

/// One (student, contact person) row of `org.studentsync.sync.students.contacts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StudentContact {
    pub student_dcid: i64,
    pub person_id: i64,
    pub first_name: Option<Name>,
    pub last_name: Option<Name>,
    pub email: Option<String>,
    /// `u_studentcontactdetail.isdecisionmaking = 1`
    pub is_decision_making: bool,
}

/// A student in this run's sync set (already filtered for enrolment and the
/// scheduling year, see `eligibility`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentFacts {
    pub dcid: i64,
    /// An `enrlytype1..3` is 121.
    pub independent: bool,
    pub org_email: Option<String>,
    pub personal_email: Option<String>,
}

/// A SchoolEngage login, as SchoolEngage stores it (the store reads users
/// into this type: one type per row kind). The rules read its id, email,
/// verification, linked guardian and incomplete flag; the run's plan also
/// compares its names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFacts {
    #[serde(alias = "id")]
    pub user_id: i64,
    /// The login email (already normalised when SE stored it).
    pub email: String,
    #[serde(default)]
    pub first_name: Option<Name>,
    #[serde(default)]
    pub last_name: Option<Name>,
    pub email_verified: bool,
    pub powerschool_guardian_id: Option<i64>,
    pub incomplete: bool,
}

/// An existing connection before the run, as SchoolEngage stores it (the
/// store reads connections into this type: one type per row kind). The
/// rules read the pair, tier, case, limits and origin; the run's plan also
/// compares the link fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionFacts {
    /// The stored row's id (0 where the facts were not read from a row).
    #[serde(default)]
    pub id: i64,
    pub student_dcid: i64,
    pub user_id: i64,
    pub tier: AccessTier,
    #[serde(alias = "case_code")]
    pub case: Option<ConnectionCase>,
    pub limits: Vec<Limit>,
    pub origin: Origin,
    /// A valid PowerSchool link backed it after the last run.
    #[serde(default)]
    pub present_in_powerschool: bool,
    /// The PowerSchool account whose link backed it.
    #[serde(default)]
    pub powerschool_guardian_id: Option<i64>,
}

/// A form `user_id` created on behalf of `student_dcid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormFacts {
    pub student_dcid: i64,
    pub created_by_user_id: i64,
}

/// Everything the decision looks at. Rows may come in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistrictFacts {
    pub students: Vec<StudentFacts>,
    pub contacts: Vec<StudentContact>,
    pub guardian_rows: Vec<GuardianLink>,
    pub users: Vec<UserFacts>,
    pub connections: Vec<ConnectionFacts>,
    pub forms: Vec<FormFacts>,
    #[serde(skip)]
    pub policy: Policy,
}

// ---------------- decisions ----------------

/// A user the decision refers to: one that exists, or one the run creates
/// (an index into `Decisions::new_users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRef {
    Existing(i64),
    New(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConnectionAction {
    /// The connection does not exist yet and is created.
    Create,
    /// The connection exists and stays (its tier, case or limits may change).
    Keep,
    /// The connection exists and is removed (`on_powerschool_removal = revoke`).
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionDecision {
    pub student_dcid: i64,
    pub user: UserRef,
    pub action: ConnectionAction,
    pub case: ConnectionCase,
    pub tier: AccessTier,
    /// Sorted, no duplicates.
    pub limits: Vec<Limit>,
    /// The PowerSchool account whose valid link backs this connection.
    pub guardian_id: Option<i64>,
    /// A valid PowerSchool link exists for it this run.
    pub present_in_powerschool: bool,
    /// Made by an earlier sync from PowerSchool, and its link is gone.
    pub orphaned: bool,
    pub verdicts: Vec<RuleVerdict>,
    /// The verdicts as the audit's codes instead (`verdicts` then empty):
    /// how a run keeps them (see `decision::Keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coded: Option<verdict::codes::CodedReasons>,
}

impl ConnectionDecision {
    /// The keys of the audit row this decision writes, as far as the
    /// decision knows them (its codes are made with them): the user is its
    /// own, or 0 for a user the run creates.
    pub fn audit_keys(&self) -> verdict::codes::RowKeys {
        verdict::codes::RowKeys {
            student_dcid: self.student_dcid,
            user_id: match self.user {
                UserRef::Existing(id) => id,
                UserRef::New(_) => 0,
            },
            tier_after: (self.action != ConnectionAction::Remove).then_some(self.tier),
            case: self.case,
        }
    }

    /// The verdicts, read back from the codes when they are coded (a
    /// reason the codes cannot give back is said as such).
    pub fn verdicts_read(&self) -> std::borrow::Cow<'_, [RuleVerdict]> {
        let Some(coded) = &self.coded else {
            return std::borrow::Cow::Borrowed(&self.verdicts);
        };
        match coded.decode(&self.audit_keys()) {
            Ok(reasons) => std::borrow::Cow::Owned(reasons.verdicts),
            Err(e) => std::borrow::Cow::Owned(vec![RuleVerdict {
                rule: Rule::Case,
                passed: false,
                reason: Reason::Prose {
                    rule: Rule::Case,
                    passed: false,
                    detail: format!("the reasons could not be read back ({e})").into(),
                },
            }]),
        }
    }
}

/// A user the run creates for a valid link whose email matched nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    /// Normalised.
    pub email: String,
    pub first_name: Option<Name>,
    pub last_name: Option<Name>,
    pub powerschool_guardian_id: i64,
}

/// Things the run report lists; none of them fails the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionReport {
    /// R1: rows through a Web Access Account.
    pub web_access_rows_ignored: u64,
    /// Guardian rows whose student is not in the sync set: (guardian_id, student_dcid).
    pub rows_for_unknown_students: Vec<(i64, i64)>,
    /// R3 failed: (guardian_id, student_dcid, email).
    pub links_without_matching_contact: Vec<(i64, i64, String)>,
    /// Valid link whose email belongs only to an unverified user: (guardian_id, student_dcid, email).
    pub unverified_email_matches: Vec<(i64, i64, String)>,
    /// Linked user whose login email differs from the account's: (user_id, login email, PowerSchool email).
    pub email_differs: Vec<(i64, String, String)>,
    /// Guardian rows without a usable email: (guardian_id, student_dcid).
    pub accounts_without_email: Vec<(i64, i64)>,
    /// Connections orphaned from PowerSchool: (student_dcid, user_id).
    pub orphaned: Vec<(i64, i64)>,
    /// Form creators with no Parent Portal account and no connection: (student_dcid, user_id).
    pub form_creator_only: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    /// One per (student, user) that exists before or after the run, sorted
    /// by (student_dcid, user).
    pub connections: Vec<ConnectionDecision>,
    pub new_users: Vec<NewUser>,
    /// Existing users this run links to a PowerSchool account: (user_id,
    /// guardian_id), sorted by user id (one entry per user).
    pub guardian_links: Vec<(i64, i64)>,
    /// Existing users that must carry the incomplete flag after the run
    /// (every other user's flag is cleared). Sorted.
    pub incomplete_users: Vec<i64>,
    /// Decisions not kept because the caller already held them (see
    /// `Keep::unchanged`); 0 when every decision is kept.
    #[serde(default)]
    pub unchanged: u64,
    pub report: DecisionReport,
}

#[cfg(test)]
mod test_facts;

#[cfg(test)]
mod tests {
    use super::ConnectionCase::{self, *};

    #[test]
    fn a_created_link_is_case_d_on_every_later_night_and_nothing_else_moves() {
        assert_eq!(Created.on_a_later_night(), Synced);
        assert_eq!(MatchedFormCreator.on_a_later_night(), Synced);
        for case in [Synced, SchoolengageOnly, UnlinkedReturningParent] {
            assert_eq!(case.on_a_later_night(), case);
        }
    }

    #[test]
    fn the_export_reads_an_undecided_connection_as_a_and_an_earlier_runs_case_as_its_next_night() {
        assert_eq!(ConnectionCase::as_exported(None, true), SchoolengageOnly);
        assert_eq!(ConnectionCase::as_exported(None, false), SchoolengageOnly);
        assert_eq!(ConnectionCase::as_exported(Some(Created), true), Created);
        assert_eq!(ConnectionCase::as_exported(Some(Created), false), Synced);
        assert_eq!(
            ConnectionCase::as_exported(Some(UnlinkedReturningParent), false),
            UnlinkedReturningParent
        );
    }

    #[test]
    fn a_returning_parents_form_makes_a_form_connection_every_link_a_powerschool_one() {
        use super::Origin;
        assert_eq!(UnlinkedReturningParent.origin_when_created(), Origin::Form);
        for case in [Created, MatchedFormCreator, Synced, SchoolengageOnly] {
            assert_eq!(case.origin_when_created(), Origin::Powerschool);
        }
    }
}
