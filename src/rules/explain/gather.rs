//! Gathering what `explain` shows for one (student, email): the records the
//! rules looked at, what steps 1 and 2 made of each guardian row, the user,
//! the stored connection, the decision, and the rule verdicts behind it (or
//! behind the absence of one). Everything is read from the engine's own
//! results, never decided a second time.

use std::cmp::Reverse;

use super::{
    ContactSummary, DecisionSummary, ExistingConnection, GuardianRowSummary, StudentSummary,
    UserSummary,
};
use crate::rules::decision::{tier_under, Engine, Found, RowOutcome};
use crate::rules::email::{normalise_email, normalise_optional};
use crate::rules::verdict::{Email, Reason, Rule};
use crate::rules::{
    AccessTier, ConnectionDecision, Decisions, DistrictFacts, NewUser, RuleVerdict, UserFacts,
    UserRef,
};

/// The question (student, email) and the engine's answers it is read from.
pub(super) struct Asked<'a> {
    pub(super) facts: &'a DistrictFacts,
    pub(super) engine: &'a Engine<'a>,
    pub(super) decisions: &'a Decisions,
    pub(super) student_dcid: i64,
    /// As asked.
    pub(super) email: &'a str,
    /// Normalised; `None` when empty or malformed.
    pub(super) wanted: Option<&'a str>,
}

impl<'a> Asked<'a> {
    /// The student as the rules saw it; `None` outside the sync set.
    pub(super) fn student(&self) -> Option<StudentSummary> {
        let wanted = self.wanted;
        self.engine.student(self.student_dcid).map(|s| {
            let org = normalise_optional(s.org_email.as_deref());
            let personal = normalise_optional(s.personal_email.as_deref());
            StudentSummary {
                dcid: s.dcid,
                independent: s.independent,
                email_is_org_email: wanted.is_some() && org.as_deref() == wanted,
                email_is_personal_email: wanted.is_some() && personal.as_deref() == wanted,
                org_email: s.org_email.clone(),
                personal_email: s.personal_email.clone(),
            }
        })
    }

    /// The existing user with the email, verified first as step 2 prefers them.
    pub(super) fn existing_user(&self) -> Option<&'a UserFacts> {
        let wanted = self.wanted?;
        self.facts
            .users
            .iter()
            .filter(|u| normalise_email(&u.email).as_deref() == Some(wanted))
            .min_by_key(|u| (!u.email_verified, u.user_id))
    }

    /// The user with the email: an existing one, or the new one the run
    /// creates with it.
    pub(super) fn user_ref(&self, existing_user: Option<&UserFacts>) -> Option<UserRef> {
        match existing_user {
            Some(u) => Some(UserRef::Existing(u.user_id)),
            None => self.wanted.and_then(|n| {
                self.decisions
                    .new_users
                    .iter()
                    .position(|nu| nu.email == n)
                    .map(UserRef::New)
            }),
        }
    }

    /// The student's guardian rows, each with what steps 1 and 2 made of it.
    pub(super) fn guardian_rows(&self) -> Vec<GuardianRowSummary> {
        let mut rows: Vec<GuardianRowSummary> = Vec::new();
        for (row, outcome, row_email, found) in self.engine.judged_rows() {
            if row.student_dcid != self.student_dcid {
                continue;
            }
            rows.push(GuardianRowSummary {
                guardian_id: row.guardian_id,
                email: row.email.clone(),
                has_this_email: self.wanted.is_some() && row_email == self.wanted,
                web_access_account: row.web_access_account,
                outcome: describe_row(outcome, found, &self.decisions.new_users, row_email),
            });
        }
        rows.sort_by(|a, b| {
            (a.guardian_id, &a.email, a.web_access_account, &a.outcome).cmp(&(
                b.guardian_id,
                &b.email,
                b.web_access_account,
                &b.outcome,
            ))
        });
        rows.dedup();
        rows
    }

    /// The student's contacts, marking those with the email.
    pub(super) fn contacts(&self) -> Vec<ContactSummary> {
        let mut contacts: Vec<ContactSummary> = self
            .facts
            .contacts
            .iter()
            .filter(|c| c.student_dcid == self.student_dcid)
            .map(|c| ContactSummary {
                person_id: c.person_id,
                email: c.email.clone(),
                has_this_email: self.wanted.is_some()
                    && normalise_optional(c.email.as_deref()).as_deref() == self.wanted,
                is_decision_making: c.is_decision_making,
            })
            .collect();
        contacts.sort_by(|a, b| {
            (a.person_id, &a.email, a.is_decision_making).cmp(&(
                b.person_id,
                &b.email,
                b.is_decision_making,
            ))
        });
        contacts
    }

    /// The user, before and after the run.
    pub(super) fn user(
        &self,
        existing_user: Option<&UserFacts>,
        user_ref: Option<UserRef>,
    ) -> Option<UserSummary> {
        match (existing_user, user_ref) {
            (Some(u), _) => Some(self.existing_user_summary(u)),
            (None, Some(UserRef::New(i))) => self
                .decisions
                .new_users
                .get(i)
                .map(|new_user| new_user_summary(i, new_user)),
            (None, _) => None,
        }
    }

    fn existing_user_summary(&self, u: &UserFacts) -> UserSummary {
        UserSummary {
            user: UserRef::Existing(u.user_id),
            email: u.email.clone(),
            email_verified: u.email_verified,
            powerschool_guardian_id: u.powerschool_guardian_id,
            linked_this_run: self
                .decisions
                .guardian_links
                .iter()
                .find(|(linked, _)| *linked == u.user_id)
                .map(|&(_, gid)| gid),
            incomplete_before: u.incomplete,
            incomplete_after: self
                .decisions
                .incomplete_users
                .binary_search(&u.user_id)
                .is_ok(),
            parent_portal_account: self
                .engine
                .parent_portal_account_of(u.user_id)
                .map(|a| a.to_string()),
        }
    }

    /// How many forms the user created for the student.
    pub(super) fn forms_by_user(&self, user_id: Option<i64>) -> usize {
        user_id.map_or(0, |u| {
            self.facts
                .forms
                .iter()
                .filter(|f| f.student_dcid == self.student_dcid && f.created_by_user_id == u)
                .count()
        })
    }

    /// The connection as stored before the run (the same duplicate the engine keeps).
    pub(super) fn existing_connection(&self, user_id: Option<i64>) -> Option<ExistingConnection> {
        let u = user_id?;
        self.facts
            .connections
            .iter()
            .filter(|c| c.student_dcid == self.student_dcid && c.user_id == u)
            .min_by_key(|c| (c.origin, Reverse(c.tier)))
            .map(|c| ExistingConnection {
                tier: c.tier,
                case: c.case,
                limits: c.limits.clone(),
                origin: c.origin,
            })
    }

    /// The run's decision for (student, user), if it has one.
    pub(super) fn decision(&self, user_ref: Option<UserRef>) -> Option<&'a ConnectionDecision> {
        let decisions = self.decisions;
        let r = user_ref?;
        decisions
            .connections
            .binary_search_by(|c| (c.student_dcid, c.user).cmp(&(self.student_dcid, r)))
            .ok()
            .and_then(|i| decisions.connections.get(i))
    }

    /// The verdicts behind the absence of a connection: a malformed email,
    /// a student outside the sync set, or what the rows and step 2 made of it.
    pub(super) fn why_no_connection(
        &self,
        in_sync_set: bool,
        user_id: Option<i64>,
        has_connection: bool,
    ) -> Vec<RuleVerdict> {
        let student_dcid = self.student_dcid;
        let Some(wanted) = self.wanted else {
            return vec![Reason::MalformedEmail {
                given: self.email.into(),
            }
            .verdict()];
        };
        if !in_sync_set {
            return vec![Reason::StudentNotSynced {
                student_dcid,
                has_connection,
            }
            .verdict()];
        }
        let wanted = Email::from(wanted);
        let mut verdicts = Vec::new();
        if user_id.is_none() {
            verdicts.push(
                Reason::NoUserWithEmail {
                    email: wanted.clone(),
                }
                .verdict(),
            );
        }
        verdicts.extend(
            self.engine
                .why_no_link(student_dcid, Some(&wanted), user_id),
        );
        verdicts.extend(user_id.and_then(|u| self.form_creator_only(u)));
        verdicts
    }

    /// The `form_creator_only` outcome for the user, if the run reports it.
    fn form_creator_only(&self, user_id: i64) -> Option<RuleVerdict> {
        let student_dcid = self.student_dcid;
        self.decisions
            .report
            .form_creator_only
            .binary_search(&(student_dcid, user_id))
            .ok()?;
        Some(
            Reason::FormCreatorOnly {
                user_id,
                student_dcid,
            }
            .verdict(),
        )
    }

    /// The answer in one sentence.
    pub(super) fn summary(
        &self,
        decision: Option<&ConnectionDecision>,
        tier: Option<AccessTier>,
    ) -> String {
        let student_dcid = self.student_dcid;
        let shown_email = self
            .wanted
            .map(str::to_string)
            .unwrap_or_else(|| format!("{:?}", self.email));
        match (decision, tier) {
            (Some(d), Some(t)) => format!(
                "{shown_email} sees student {student_dcid} with tier {} (case {} {}{}).",
                t.as_str(),
                d.case.letter(),
                d.case.as_str(),
                if d.limits.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", limited by {}",
                        d.limits
                            .iter()
                            .map(|l| l.as_str())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )
                }
            ),
            (Some(_), None) => format!(
                "{shown_email} no longer sees student {student_dcid}: the run removes the connection."
            ),
            _ => format!("{shown_email} does not see student {student_dcid}."),
        }
    }
}

/// Why not, in rule terms: with a decision, only a removal takes the student
/// away; without one, every failed verdict is a reason.
pub(super) fn reasons(verdicts: &[RuleVerdict], decided: bool, sees_student: bool) -> Vec<String> {
    let is_reason = |v: &&RuleVerdict| match (decided, sees_student) {
        (true, true) => false,
        (true, false) => v.rule == Rule::Removal,
        (false, _) => !v.passed,
    };
    verdicts
        .iter()
        .filter(is_reason)
        .map(|v| format!("{}: {}", v.rule, v.reason))
        .collect()
}

pub(super) fn decision_summary(d: &ConnectionDecision) -> DecisionSummary {
    DecisionSummary {
        action: d.action,
        case: d.case,
        case_letter: d.case.letter().to_string(),
        tier: d.tier,
        limits: d.limits.clone(),
        guardian_id: d.guardian_id,
        present_in_powerschool: d.present_in_powerschool,
        orphaned: d.orphaned,
    }
}

fn new_user_summary(i: usize, new: &NewUser) -> UserSummary {
    UserSummary {
        user: UserRef::New(i),
        email: new.email.clone(),
        email_verified: false,
        powerschool_guardian_id: Some(new.powerschool_guardian_id),
        linked_this_run: Some(new.powerschool_guardian_id),
        incomplete_before: false,
        incomplete_after: false,
        parent_portal_account: Some(format!(
            "guardian account {}, for which the run creates this user",
            new.powerschool_guardian_id
        )),
    }
}

/// What steps 1 and 2 made of one guardian row, in words.
fn describe_row(
    outcome: &RowOutcome,
    found: Option<Found>,
    new_users: &[NewUser],
    email: Option<&str>,
) -> String {
    match outcome {
        RowOutcome::WebAccessAccount => "ignored by R1 (a Web Access Account link)".into(),
        RowOutcome::StudentNotInSyncSet => "ignored: the student is not in the sync set".into(),
        RowOutcome::NoUsableEmail => "not usable: the account has no well-formed email".into(),
        RowOutcome::NoMatchingContact => {
            "not valid: R3 failed (no contact of the student has this email)".into()
        }
        RowOutcome::Valid { limits } => {
            let tier = tier_under(limits);
            let limited = if limits.is_empty() {
                String::new()
            } else {
                format!(
                    ", limited by {}",
                    limits
                        .iter()
                        .map(|l| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!(
                "valid link, tier {}{limited}; belongs to {}",
                tier.as_str(),
                describe_owner(found, new_users, email)
            )
        }
    }
}

/// Whom step 2 gave a valid row to, in words.
fn describe_owner(found: Option<Found>, new_users: &[NewUser], email: Option<&str>) -> String {
    match found {
        Some(Found::LinkedAccount(u)) => {
            format!("user {u} (linked to this account by an earlier sync)")
        }
        Some(Found::FormCreator(u)) => {
            format!("user {u} (verified form creator of the student with this email)")
        }
        Some(Found::VerifiedEmail(u)) => format!("user {u} (verified user with this email)"),
        Some(Found::NewUser) => {
            let known = new_users.iter().any(|n| Some(n.email.as_str()) == email);
            if known {
                "a new user created with this email".to_string()
            } else {
                "a new user".to_string()
            }
        }
        Some(Found::UnverifiedOnly(u)) => {
            format!("nobody: user {u} has this email but has not verified it")
        }
        None => "nobody".to_string(),
    }
}
