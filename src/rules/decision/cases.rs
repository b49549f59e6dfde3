//! Step 3 of access-rules.md, the connection cases: what happens to a
//! (student, user) pair with a valid link (D, B1, B2), without one (A, C),
//! and to a connection an earlier sync made whose link has gone
//! (`on_powerschool_removal`). Each case decides the action, the tier and the
//! sentence that says why.

use super::verdicts::{Keep, PairLinks};
use super::{tier_under, Engine};
use crate::rules::verdict::{Email, NotCaseC, PortalAccount, Reason, Who};
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
        keep: &Keep<'_>,
    ) -> ConnectionDecision {
        let limits = pair.best.limits().to_vec();
        let tier = tier_under(&limits);
        let case = match user {
            UserRef::Existing(u) if self.index.connections.contains_key(&(student_dcid, u)) => {
                ConnectionCase::Synced
            }
            UserRef::Existing(u) if self.index.forms.contains(&(student_dcid, u)) => {
                ConnectionCase::MatchedFormCreator
            }
            _ => ConnectionCase::Created,
        };
        let action = match case {
            ConnectionCase::Synced => ConnectionAction::Keep,
            _ => ConnectionAction::Create,
        };
        let mut decision = ConnectionDecision {
            student_dcid,
            user,
            action,
            case,
            tier,
            limits,
            guardian_id: Some(pair.best.link.guardian_id),
            present_in_powerschool: true,
            orphaned: false,
            verdicts: Vec::new(),
            coded: None,
        };
        // The verdicts say why; they are made only when someone reads them.
        if (keep.verdicts_of)(&decision) {
            decision.verdicts = self.linked_verdicts(student_dcid, user, pair, case, tier);
        }
        decision
    }

    /// The verdicts of a linked pair's decision: step 1 on its best link,
    /// step 2's owner, then its case.
    fn linked_verdicts(
        &self,
        student_dcid: i64,
        user: UserRef,
        pair: &PairLinks<'_, '_>,
        case: ConnectionCase,
        tier: AccessTier,
    ) -> Vec<RuleVerdict> {
        let row = pair.best.link;
        let email = Email::from(pair.best.email.as_deref().unwrap_or_default());
        let mut verdicts = Vec::with_capacity(7);
        super::link_validity::link_verdicts(&self.index, row, &email, &mut verdicts);
        verdicts.push(self.owner_verdict(row, &email, pair.found, user));

        let guardian_id = row.guardian_id;
        let who = self.describe_user(user, Some(&email));
        let others = other_links(pair, guardian_id);
        let reason = match case {
            ConnectionCase::Synced => Reason::CaseSynced {
                who,
                student_dcid,
                guardian_id,
                tier,
                others,
            },
            ConnectionCase::MatchedFormCreator => Reason::CaseMatchedFormCreator {
                who,
                student_dcid,
                guardian_id,
                tier,
                others,
            },
            _ => Reason::CaseCreated {
                who,
                student_dcid,
                guardian_id,
                email,
                tier,
                others,
            },
        };
        verdicts.push(reason.verdict());
        verdicts
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
                    account,
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
        let who = self.describe_user(UserRef::Existing(user_id), None);
        let removal = self.removal_of(connection, &who);
        verdicts.push(
            self.why_schoolengage_only(connection, who, made_a_form)
                .verdict(),
        );
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
            coded: None,
        }
    }

    /// Why a connection without a valid link is case A, by who made it.
    fn why_schoolengage_only(
        &self,
        connection: &ConnectionFacts,
        who: Who,
        made_a_form: bool,
    ) -> Reason {
        let student_dcid = connection.student_dcid;
        let kept = connection.tier;
        match connection.origin {
            Origin::Admin => Reason::CaseAdminConnection {
                who,
                student_dcid,
                kept,
            },
            Origin::Form => Reason::CaseFormConnection {
                who,
                student_dcid,
                missing: if made_a_form {
                    NotCaseC::NoPortalAccount
                } else {
                    NotCaseC::NoForm
                },
                kept,
            },
            Origin::Powerschool => Reason::CaseOrphaned {
                who,
                student_dcid,
                policy: self.facts.policy.on_powerschool_removal,
            },
        }
    }

    /// `on_powerschool_removal` on a case A connection: only one an earlier
    /// sync made from PowerSchool (an orphan) is ever lowered or removed.
    fn removal_of(&self, connection: &ConnectionFacts, who: &Who) -> Removal {
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
                    verdict: Some(
                        Reason::Restricted {
                            who: who.clone(),
                            student_dcid,
                            from: connection.tier,
                            to: tier,
                        }
                        .verdict(),
                    ),
                }
            }
            RemovalPolicy::Revoke => Removal {
                tier: connection.tier,
                action: ConnectionAction::Remove,
                verdict: Some(
                    Reason::Revoked {
                        who: who.clone(),
                        student_dcid,
                    }
                    .verdict(),
                ),
            },
        }
    }

    /// Case C (README decision 9): a returning parent's form keeps
    /// (`Keep`) or makes (`Create`) a connection with tier incomplete.
    pub(super) fn returning_parent(
        &self,
        student_dcid: i64,
        user_id: i64,
        account: PortalAccount,
        action: ConnectionAction,
    ) -> ConnectionDecision {
        let login = self.index.login_email(user_id);
        let mut verdicts = self.why_no_link(student_dcid, login, Some(user_id));
        verdicts.push(
            Reason::CaseReturningParent {
                who: self.describe_user(UserRef::Existing(user_id), None),
                student_dcid,
                account,
                created: action != ConnectionAction::Keep,
            }
            .verdict(),
        );
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
            coded: None,
        }
    }

    /// README decision 8: the user holds a Parent Portal account when a valid
    /// link to any student resolves to them this run, or an earlier sync
    /// linked them. Returns the evidence, in words.
    pub(super) fn parent_portal_account(&self, user_id: i64) -> Option<PortalAccount> {
        if let Some(guardian_id) = self.index.earlier_guardian_id(user_id) {
            return Some(PortalAccount::EarlierLink { guardian_id });
        }
        self.accounts
            .linked_this_run
            .get(&user_id)
            .map(|&(student_dcid, guardian_id)| PortalAccount::ThisRun {
                guardian_id,
                student_dcid,
            })
    }
}

/// README decision 5: the other accounts that link the same pair, ascending.
fn other_links(pair: &PairLinks<'_, '_>, gid: i64) -> Box<[i64]> {
    if pair.guardian_ids.len() <= 1 {
        return Box::default();
    }
    pair.guardian_ids
        .iter()
        .copied()
        .filter(|&g| g != gid)
        .collect()
}
