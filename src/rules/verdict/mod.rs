//! A rule's verdict kept structured: which rule, whether it passed, and a
//! [`Reason`] carrying exactly the ids and values its sentence needs. The
//! engine builds these (no prose while a district is decided); the sentence
//! an admin reads is rendered by `render` only when something shows it
//! (`explain`, `plan --details`, the run report, the audit read back), and
//! the audit stores the reason as short codes (`codes`).

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strum::{AsRefStr, EnumString, IntoStaticStr};

use super::{AccessTier, RemovalPolicy};

pub mod codes;
mod render;

#[cfg(test)]
mod tests;

/// A normalised email (or a login), shared by every verdict that names it
/// instead of copied into each.
pub type Email = Arc<str>;

/// The rule a verdict is about, spelled as admins read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(AsRefStr, IntoStaticStr, EnumString)]
pub enum Rule {
    R1,
    R2,
    R3,
    R4,
    R5,
    #[strum(serialize = "step2")]
    Step2,
    #[strum(serialize = "case")]
    Case,
    #[strum(serialize = "removal")]
    Removal,
    #[strum(serialize = "sync_set")]
    SyncSet,
    #[strum(serialize = "email")]
    Email,
}
static_str!(Rule);

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a connection is with, as a case's sentence names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// `user {id} ({login})`
    User { id: i64, login: Email },
    /// `the new user {email}`
    NewUser(Email),
    /// A new user the decisions do not list (never in practice).
    ANewUser,
}

/// One contact of the student with the link's email, and its R4 flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactFlag {
    pub person_id: i64,
    pub decision_making: bool,
}

/// README decision 8's evidence that a user holds a Parent Portal account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalAccount {
    /// An earlier sync linked the user to this account.
    EarlierLink { guardian_id: i64 },
    /// A valid link to this student resolves to the user this run.
    ThisRun { guardian_id: i64, student_dcid: i64 },
}

/// Why a form connection is not case C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCaseC {
    NoForm,
    NoPortalAccount,
}

/// Why a rule passed or failed, with the facts its sentence names. One
/// variant per sentence of the rules; `Prose` keeps a sentence made before
/// verdicts were structured (a plan held by an earlier version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    // ---- step 1 on a valid link (R1-R5) ----
    ParentPortalLink {
        guardian_id: i64,
        student_dcid: i64,
    },
    AccountLinked {
        guardian_id: i64,
        email: Email,
        student_dcid: i64,
    },
    ContactsHaveEmail {
        student_dcid: i64,
        email: Email,
        contacts: Arc<[ContactFlag]>,
    },
    /// R4; limited when a contact is not decision-making.
    DecisionMaking {
        student_dcid: i64,
        email: Email,
        contacts: Arc<[ContactFlag]>,
    },
    NotIndependent {
        student_dcid: i64,
    },
    IndependentOwnEmail {
        student_dcid: i64,
        email: Email,
        org_email: bool,
    },
    IndependentNotOwnEmail {
        student_dcid: i64,
        email: Email,
        org_email: Option<Email>,
        personal_email: Option<Email>,
    },
    // ---- step 2 ----
    LinkedEarlier {
        user_id: i64,
        login: Email,
        guardian_id: i64,
        email: Email,
    },
    FormCreatorMatched {
        user_id: i64,
        login: Email,
        email: Email,
        student_dcid: i64,
        linked_now: Option<i64>,
    },
    VerifiedEmailMatched {
        user_id: i64,
        email: Email,
        linked_now: Option<i64>,
    },
    NewUserCreated {
        email: Email,
        guardian_id: i64,
    },
    UnverifiedOnly {
        user_id: i64,
        email: Email,
        guardian_id: i64,
        student_dcid: i64,
    },
    // ---- step 3: the cases and the removal policy ----
    CaseSynced {
        who: Who,
        student_dcid: i64,
        guardian_id: i64,
        tier: AccessTier,
        others: Box<[i64]>,
    },
    CaseMatchedFormCreator {
        who: Who,
        student_dcid: i64,
        guardian_id: i64,
        tier: AccessTier,
        others: Box<[i64]>,
    },
    CaseCreated {
        who: Who,
        student_dcid: i64,
        guardian_id: i64,
        email: Email,
        tier: AccessTier,
        others: Box<[i64]>,
    },
    CaseAdminConnection {
        who: Who,
        student_dcid: i64,
        kept: AccessTier,
    },
    CaseFormConnection {
        who: Who,
        student_dcid: i64,
        missing: NotCaseC,
        kept: AccessTier,
    },
    CaseOrphaned {
        who: Who,
        student_dcid: i64,
        policy: RemovalPolicy,
    },
    CaseReturningParent {
        who: Who,
        student_dcid: i64,
        account: PortalAccount,
        created: bool,
    },
    Restricted {
        who: Who,
        student_dcid: i64,
        from: AccessTier,
        to: AccessTier,
    },
    Revoked {
        who: Who,
        student_dcid: i64,
    },
    // ---- why a pair has no valid link ----
    /// `email` is `None` for a row without a usable email.
    WebAccessRow {
        guardian_id: i64,
        email: Option<Email>,
        student_dcid: i64,
    },
    RowNotInSyncSet {
        student_dcid: i64,
        guardian_id: i64,
    },
    UnusableEmail {
        guardian_id: i64,
        raw: Box<str>,
        student_dcid: i64,
    },
    NoMatchingContact {
        student_dcid: i64,
        email: Option<Email>,
        guardian_id: i64,
    },
    LinkOfEarlierUser {
        guardian_id: i64,
        student_dcid: i64,
        email: Option<Email>,
        user_id: i64,
        login: Email,
    },
    LinkOfUser {
        guardian_id: i64,
        student_dcid: i64,
        email: Option<Email>,
        user_id: i64,
        login: Email,
    },
    LinkOfUnverifiedUser {
        guardian_id: i64,
        student_dcid: i64,
        email: Option<Email>,
        user_id: i64,
    },
    LinkOfNewUser {
        guardian_id: i64,
        student_dcid: i64,
        email: Option<Email>,
    },
    NoAccountLinks {
        student_dcid: i64,
        email: Option<Email>,
        guardian_id: Option<i64>,
    },
    // ---- explain only ----
    MalformedEmail {
        given: Box<str>,
    },
    StudentNotSynced {
        student_dcid: i64,
        has_connection: bool,
    },
    NoUserWithEmail {
        email: Email,
    },
    FormCreatorOnly {
        user_id: i64,
        student_dcid: i64,
    },
    /// A sentence kept as it was written.
    Prose {
        rule: Rule,
        passed: bool,
        detail: Box<str>,
    },
}

impl Reason {
    /// The verdict this reason is: its rule and whether it passed follow
    /// from the reason itself, so the two can never disagree.
    pub fn verdict(self) -> RuleVerdict {
        use Reason::*;
        let (rule, passed) = match &self {
            ParentPortalLink { .. } => (Rule::R1, true),
            AccountLinked { .. } => (Rule::R2, true),
            ContactsHaveEmail { .. } => (Rule::R3, true),
            DecisionMaking { contacts, .. } => {
                (Rule::R4, contacts.iter().all(|c| c.decision_making))
            }
            NotIndependent { .. } | IndependentOwnEmail { .. } => (Rule::R5, true),
            IndependentNotOwnEmail { .. } => (Rule::R5, false),
            LinkedEarlier { .. }
            | FormCreatorMatched { .. }
            | VerifiedEmailMatched { .. }
            | NewUserCreated { .. } => (Rule::Step2, true),
            UnverifiedOnly { .. } => (Rule::Step2, false),
            CaseSynced { .. }
            | CaseMatchedFormCreator { .. }
            | CaseCreated { .. }
            | CaseAdminConnection { .. }
            | CaseFormConnection { .. }
            | CaseReturningParent { .. } => (Rule::Case, true),
            CaseOrphaned { policy, .. } => (Rule::Case, *policy != RemovalPolicy::Revoke),
            Restricted { .. } | Revoked { .. } => (Rule::Removal, false),
            WebAccessRow { .. } => (Rule::R1, false),
            RowNotInSyncSet { .. } | StudentNotSynced { .. } => (Rule::SyncSet, false),
            UnusableEmail { .. } | MalformedEmail { .. } => (Rule::Email, false),
            NoMatchingContact { .. } => (Rule::R3, false),
            LinkOfEarlierUser { .. }
            | LinkOfUser { .. }
            | LinkOfUnverifiedUser { .. }
            | LinkOfNewUser { .. }
            | NoUserWithEmail { .. } => (Rule::Step2, false),
            NoAccountLinks { .. } => (Rule::R2, false),
            FormCreatorOnly { .. } => (Rule::Case, false),
            Prose { rule, passed, .. } => (*rule, *passed),
        };
        RuleVerdict {
            rule,
            passed,
            reason: self,
        }
    }
}

/// One rule's verdict on one connection, for reports, the audit and `explain`.
/// Shown (and serialised) as `{"rule", "passed", "detail"}`, the detail
/// rendered from the reason when it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVerdict {
    /// `R1`..`R5`, `step2`, `case`, `removal`, …
    pub rule: Rule,
    pub passed: bool,
    pub reason: Reason,
}

impl RuleVerdict {
    /// One sentence a district admin understands, naming the records looked at.
    pub fn detail(&self) -> String {
        self.reason.to_string()
    }
}

/// The form admins read (`--json` of `explain` and `plan`, a held plan).
#[derive(Serialize, Deserialize)]
struct Shown<R, D> {
    rule: R,
    passed: bool,
    detail: D,
}

impl Serialize for RuleVerdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Shown {
            rule: self.rule.as_str(),
            passed: self.passed,
            detail: self.detail(),
        }
        .serialize(serializer)
    }
}

/// A shown verdict read back (a held plan) keeps its sentence as prose.
impl<'de> Deserialize<'de> for RuleVerdict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let shown = Shown::<String, String>::deserialize(deserializer)?;
        let rule = shown
            .rule
            .parse::<Rule>()
            .map_err(|_| serde::de::Error::custom(format!("unknown rule {:?}", shown.rule)))?;
        Ok(Reason::Prose {
            rule,
            passed: shown.passed,
            detail: shown.detail.into(),
        }
        .verdict())
    }
}
