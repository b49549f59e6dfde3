//! Step 3 of access-rules.md, the connection cases: what happens to a
//! (student, user) pair with a valid link (D, B1, B2), without one (A, C),
//! and to a connection an earlier sync made whose link has gone
//! (`on_powerschool_removal`). Each case decides the action, the tier and the
//! sentence that says why.

use super::verdicts::PairLinks;
use super::{tier_under, Engine};
use crate::rules::{
    AccessTier, ConnectionAction, ConnectionCase, ConnectionDecision, ConnectionFacts, Origin,
    RemovalPolicy, RuleVerdict, UserRef,
};

/// What `on_powerschool_removal` does to a connection that is case A.
struct Removal {
    tier: AccessTier,
    action: ConnectionAction,
    /// The `removal` verdict, when the policy changed the connection.
    verdict: Option<RuleVerdict>,
}

impl Engine<'_> {
    /// Cases D, B1 and B2: the pair has a valid link.
    pub(super) fn linked_connection(
        &self,
        student_dcid: i64,
        user: UserRef,
        pair: &PairLinks<'_, '_>,
    ) -> ConnectionDecision {
        let row = pair.best.link;
        let email = pair.best.email_or_empty();
        let limits = pair.best.limits().to_vec();
        let tier = tier_under(&limits);
        let found = pair.found;

        let mut verdicts = super::link_validity::link_verdicts(&self.index, row, email, &limits);
        verdicts.push(self.owner_verdict(row, email, found, user));

        let gid = row.guardian_id;
        let who = self.describe_user(user);
        let (case, action, why) = match user {
            UserRef::Existing(u) if self.index.connections.contains_key(&(student_dcid, u)) => (
                ConnectionCase::Synced,
                ConnectionAction::Keep,
                format!(
                    "the connection of student {student_dcid} and {who} exists and guardian account {gid} links them in PowerSchool, so its tier is {} from R4/R5",
                    tier.as_str()
                ),
            ),
            UserRef::Existing(u) if self.index.forms.contains(&(student_dcid, u)) => (
                ConnectionCase::MatchedFormCreator,
                ConnectionAction::Create,
                format!(
                    "{who} created a form for student {student_dcid} and guardian account {gid} now links them, so the connection is created from the form creator's record with tier {}",
                    tier.as_str()
                ),
            ),
            _ => (
                ConnectionCase::Created,
                ConnectionAction::Create,
                format!(
                    "guardian account {gid} validly links student {student_dcid} and {email}, and no connection or form creator matched, so a connection for {who} is created with tier {}",
                    tier.as_str()
                ),
            ),
        };
        let also = other_links_note(pair, gid);
        verdicts.push(case_verdict(case, true, format!("{why}.{also}")));

        ConnectionDecision {
            student_dcid,
            user,
            action,
            case,
            tier,
            limits,
            guardian_id: Some(gid),
            present_in_powerschool: true,
            orphaned: false,
            verdicts,
        }
    }

    /// Cases C and A, and `on_powerschool_removal`, for an existing
    /// connection whose PowerSchool link is absent this run.
    pub(super) fn unlinked_connection(&self, connection: &ConnectionFacts) -> ConnectionDecision {
        let student_dcid = connection.student_dcid;
        let user_id = connection.user_id;
        let made_a_form = self.index.forms.contains(&(student_dcid, user_id));
        // Case C outranks case A only when the connection exists because of a form.
        if connection.origin == Origin::Form && made_a_form {
            if let Some(account) = self.parent_portal_account(user_id) {
                return self.returning_parent(
                    student_dcid,
                    user_id,
                    &account,
                    ConnectionAction::Keep,
                );
            }
        }
        self.schoolengage_only(connection, made_a_form)
    }

    /// Case A: SchoolEngage is the source of truth, unless the removal policy
    /// says otherwise for a connection orphaned from PowerSchool.
    fn schoolengage_only(
        &self,
        connection: &ConnectionFacts,
        made_a_form: bool,
    ) -> ConnectionDecision {
        let student_dcid = connection.student_dcid;
        let user_id = connection.user_id;
        let login = self.index.login_email(user_id);
        let mut verdicts = self.why_no_link(student_dcid, login, Some(user_id));
        let who = self.describe_user(UserRef::Existing(user_id));
        let removal = self.removal_of(connection, &who);
        let why = self.why_schoolengage_only(connection, &who, made_a_form);
        verdicts.push(case_verdict(
            ConnectionCase::SchoolengageOnly,
            removal.action != ConnectionAction::Remove,
            format!("{why}."),
        ));
        verdicts.extend(removal.verdict);
        ConnectionDecision {
            student_dcid,
            user: UserRef::Existing(user_id),
            action: removal.action,
            case: ConnectionCase::SchoolengageOnly,
            tier: removal.tier,
            limits: Vec::new(),
            guardian_id: None,
            present_in_powerschool: false,
            orphaned: connection.origin == Origin::Powerschool,
            verdicts,
        }
    }

    /// Why a connection without a valid link is case A, by who made it.
    fn why_schoolengage_only(
        &self,
        connection: &ConnectionFacts,
        who: &str,
        made_a_form: bool,
    ) -> String {
        let student_dcid = connection.student_dcid;
        let kept = connection.tier.as_str();
        match connection.origin {
            Origin::Admin => format!(
                "a SchoolEngage administrator made the connection of student {student_dcid} and {who} and PowerSchool has no valid link for it, so it is kept with tier {kept}: SchoolEngage is the source of truth"
            ),
            Origin::Form => {
                let missing = if !made_a_form {
                    format!("{who} has no form for student {student_dcid}")
                } else {
                    format!("{who} holds no Parent Portal account")
                };
                format!(
                    "the connection of student {student_dcid} and {who} was made from a form and PowerSchool has no valid link for it; it is not case C because {missing}, so it is kept with tier {kept}"
                )
            }
            Origin::Powerschool => format!(
                "an earlier sync created the connection of student {student_dcid} and {who} from PowerSchool and its link has gone, so it is orphaned from PowerSchool; on_powerschool_removal = {}",
                self.facts.policy.on_powerschool_removal.as_str()
            ),
        }
    }

    /// `on_powerschool_removal` on a case A connection: only one an earlier
    /// sync made from PowerSchool (an orphan) is ever lowered or removed.
    fn removal_of(&self, connection: &ConnectionFacts, who: &str) -> Removal {
        let student_dcid = connection.student_dcid;
        let kept = Removal {
            tier: connection.tier,
            action: ConnectionAction::Keep,
            verdict: None,
        };
        if connection.origin != Origin::Powerschool {
            return kept;
        }
        match self.facts.policy.on_powerschool_removal {
            RemovalPolicy::Keep => kept,
            RemovalPolicy::Restrict => {
                let tier = connection.tier.min(AccessTier::Restricted);
                Removal {
                    tier,
                    action: ConnectionAction::Keep,
                    verdict: Some(removal_verdict(format!(
                        "on_powerschool_removal = restrict lowers the orphaned connection of student {student_dcid} and {who} from {} to {}.",
                        connection.tier.as_str(),
                        tier.as_str()
                    ))),
                }
            }
            RemovalPolicy::Revoke => Removal {
                tier: connection.tier,
                action: ConnectionAction::Remove,
                verdict: Some(removal_verdict(format!(
                    "on_powerschool_removal = revoke removes the orphaned connection of student {student_dcid} and {who}."
                ))),
            },
        }
    }

    /// Case C (README decision 9): a returning parent's form keeps
    /// (`Keep`) or makes (`Create`) a connection with tier incomplete.
    pub(super) fn returning_parent(
        &self,
        student_dcid: i64,
        user_id: i64,
        account: &str,
        action: ConnectionAction,
    ) -> ConnectionDecision {
        let login = self.index.login_email(user_id);
        let mut verdicts = self.why_no_link(student_dcid, login, Some(user_id));
        let who = self.describe_user(UserRef::Existing(user_id));
        let outcome = match action {
            ConnectionAction::Keep => "the connection is kept",
            ConnectionAction::Create | ConnectionAction::Remove => "a connection is created",
        };
        verdicts.push(case_verdict(
            ConnectionCase::UnlinkedReturningParent,
            true,
            format!(
                "{who} created a form for student {student_dcid} and holds a Parent Portal account ({account}), but PowerSchool has no valid link to this student, so {outcome} with tier incomplete and the user is flagged incomplete until the link exists."
            ),
        ));
        ConnectionDecision {
            student_dcid,
            user: UserRef::Existing(user_id),
            action,
            case: ConnectionCase::UnlinkedReturningParent,
            tier: AccessTier::Incomplete,
            limits: Vec::new(),
            guardian_id: None,
            present_in_powerschool: false,
            orphaned: false,
            verdicts,
        }
    }

    /// README decision 8: the user holds a Parent Portal account when a valid
    /// link to any student resolves to them this run, or an earlier sync
    /// linked them. Returns the evidence, in words.
    pub(super) fn parent_portal_account(&self, user_id: i64) -> Option<String> {
        if let Some(gid) = self.index.earlier_guardian_id(user_id) {
            return Some(format!("guardian account {gid}, linked by an earlier sync"));
        }
        self.accounts
            .linked_this_run
            .get(&user_id)
            .map(|(dcid, gid)| {
                format!(
                    "guardian account {gid}, which validly links them to student {dcid} this run"
                )
            })
    }
}

/// README decision 5 in words: the other accounts that link the same pair.
fn other_links_note(pair: &PairLinks<'_, '_>, gid: i64) -> String {
    if pair.guardian_ids.len() <= 1 {
        return String::new();
    }
    let others: Vec<String> = pair
        .guardian_ids
        .iter()
        .filter(|&&g| g != gid)
        .map(|g| g.to_string())
        .collect();
    format!(
        " Guardian accounts {} also link them; the best tier among the links is kept.",
        others.join(", ")
    )
}

fn case_verdict(case: ConnectionCase, passed: bool, why: String) -> RuleVerdict {
    RuleVerdict {
        rule: "case".into(),
        passed,
        detail: format!("Case {} ({}): {why}", case.letter(), case.as_str()),
    }
}

fn removal_verdict(detail: String) -> RuleVerdict {
    RuleVerdict {
        rule: "removal".into(),
        passed: false,
        detail,
    }
}
