//! Writing a verdict's code: `"code"`, or `["code", args…]` with every
//! argument the row already says written `0` and trailing `0`s left out.

use serde_json::{json, Value};

use super::Ctx;
use crate::rules::verdict::{
    ContactFlag, Email, NotCaseC, PortalAccount, Reason, RuleVerdict, Who,
};
use crate::rules::AccessTier;

impl Ctx {
    fn dcid(&self, v: i64) -> Value {
        json!(if v == self.dcid { 0 } else { v })
    }
    fn user(&self, v: i64) -> Value {
        json!(if v == self.user { 0 } else { v })
    }
    fn gid(&self, v: i64) -> Value {
        json!(if Some(v) == self.gid { 0 } else { v })
    }
    fn opt_gid(&self, v: Option<i64>) -> Value {
        v.map_or(Value::Null, |v| self.gid(v))
    }
    fn email(&self, e: &Email) -> Value {
        if Some(e) == self.email.as_ref() {
            json!(0)
        } else {
            json!(&**e)
        }
    }
    fn opt_email(&self, e: Option<&Email>) -> Value {
        e.map_or(Value::Null, |e| self.email(e))
    }
    fn tier(&self, t: AccessTier) -> Value {
        if Some(t) == self.tier {
            json!(0)
        } else {
            json!(t.as_str())
        }
    }
    fn who(&self, who: &Who) -> Value {
        match who {
            Who::User { id, login } if *id == self.user && Some(login) == self.email.as_ref() => {
                json!(0)
            }
            Who::NewUser(e) if Some(e) == self.email.as_ref() => json!(1),
            Who::User { id, login } => json!([self.user(*id), self.email(login)]),
            Who::NewUser(e) => json!([&**e]),
            Who::ANewUser => Value::Null,
        }
    }
}

fn contacts(contacts: &[ContactFlag]) -> Value {
    contacts
        .iter()
        .map(|c| {
            json!(if c.decision_making {
                c.person_id
            } else {
                -c.person_id
            })
        })
        .collect()
}

fn flag(b: bool) -> Value {
    json!(u8::from(b))
}

/// `"code"`, or `["code", args…]` without trailing defaults.
fn coded(code: &str, mut args: Vec<Value>) -> Value {
    while args
        .last()
        .is_some_and(|a| *a == json!(0) || a.as_array().is_some_and(Vec::is_empty))
    {
        args.pop();
    }
    if args.is_empty() {
        return json!(code);
    }
    let mut out = vec![json!(code)];
    out.extend(args);
    Value::Array(out)
}

pub(super) fn encode_verdict(c: &Ctx, v: &RuleVerdict) -> Value {
    use Reason::*;
    match &v.reason {
        ParentPortalLink {
            guardian_id: g,
            student_dcid: d,
        } => coded("r1", vec![c.gid(*g), c.dcid(*d)]),
        AccountLinked {
            guardian_id: g,
            email: e,
            student_dcid: d,
        } => coded("r2", vec![c.gid(*g), c.email(e), c.dcid(*d)]),
        ContactsHaveEmail {
            student_dcid: d,
            email: e,
            contacts: k,
        } => coded("r3", vec![contacts(k), c.dcid(*d), c.email(e)]),
        DecisionMaking {
            student_dcid: d,
            email: e,
            contacts: k,
        } => coded("r4", vec![contacts(k), c.dcid(*d), c.email(e)]),
        NotIndependent { student_dcid: d } => coded("r5n", vec![c.dcid(*d)]),
        IndependentOwnEmail {
            student_dcid: d,
            email: e,
            org_email,
        } => coded("r5o", vec![flag(*org_email), c.dcid(*d), c.email(e)]),
        IndependentNotOwnEmail {
            student_dcid: d,
            email: e,
            org_email,
            personal_email,
        } => coded(
            "r5x",
            vec![
                json!(org_email.as_deref()),
                json!(personal_email.as_deref()),
                c.dcid(*d),
                c.email(e),
            ],
        ),
        LinkedEarlier {
            user_id: u,
            login,
            guardian_id: g,
            email: e,
        } => coded(
            "s1",
            vec![c.user(*u), c.email(login), c.gid(*g), c.email(e)],
        ),
        FormCreatorMatched {
            user_id: u,
            login,
            email: e,
            student_dcid: d,
            linked_now,
        } => coded(
            "s2",
            vec![
                c.opt_gid(*linked_now),
                c.user(*u),
                c.email(login),
                c.email(e),
                c.dcid(*d),
            ],
        ),
        VerifiedEmailMatched {
            user_id: u,
            email: e,
            linked_now,
        } => coded("s3", vec![c.opt_gid(*linked_now), c.user(*u), c.email(e)]),
        NewUserCreated {
            email: e,
            guardian_id: g,
        } => coded("s4", vec![c.gid(*g), c.email(e)]),
        UnverifiedOnly {
            user_id: u,
            email: e,
            guardian_id: g,
            student_dcid: d,
        } => coded("s5", vec![c.user(*u), c.email(e), c.gid(*g), c.dcid(*d)]),
        _ => encode_case(c, v),
    }
}

fn encode_case(c: &Ctx, v: &RuleVerdict) -> Value {
    use Reason::*;
    let others = |o: &[i64]| json!(o);
    match &v.reason {
        CaseSynced {
            who,
            student_dcid: d,
            guardian_id: g,
            tier,
            others: o,
        } => coded(
            "d",
            vec![c.who(who), c.tier(*tier), others(o), c.gid(*g), c.dcid(*d)],
        ),
        CaseMatchedFormCreator {
            who,
            student_dcid: d,
            guardian_id: g,
            tier,
            others: o,
        } => coded(
            "b1",
            vec![c.who(who), c.tier(*tier), others(o), c.gid(*g), c.dcid(*d)],
        ),
        CaseCreated {
            who,
            student_dcid: d,
            guardian_id: g,
            email: e,
            tier,
            others: o,
        } => coded(
            "b2",
            vec![
                c.who(who),
                c.tier(*tier),
                others(o),
                c.gid(*g),
                c.dcid(*d),
                c.email(e),
            ],
        ),
        CaseAdminConnection {
            who,
            student_dcid: d,
            kept,
        } => coded("a", vec![c.who(who), c.tier(*kept), c.dcid(*d)]),
        CaseFormConnection {
            who,
            student_dcid: d,
            missing,
            kept,
        } => coded(
            "af",
            vec![
                c.who(who),
                flag(*missing == NotCaseC::NoPortalAccount),
                c.tier(*kept),
                c.dcid(*d),
            ],
        ),
        CaseOrphaned {
            who,
            student_dcid: d,
            policy,
        } => coded("ao", vec![json!(policy.as_str()), c.who(who), c.dcid(*d)]),
        CaseReturningParent {
            who,
            student_dcid: d,
            account,
            created,
        } => {
            let account = match account {
                PortalAccount::EarlierLink { guardian_id } => json!([guardian_id]),
                PortalAccount::ThisRun {
                    guardian_id,
                    student_dcid,
                } => json!([guardian_id, student_dcid]),
            };
            coded("c", vec![account, c.who(who), flag(*created), c.dcid(*d)])
        }
        Restricted {
            who,
            student_dcid: d,
            from,
            to,
        } => coded(
            "rr",
            vec![json!(from.as_str()), c.tier(*to), c.who(who), c.dcid(*d)],
        ),
        Revoked {
            who,
            student_dcid: d,
        } => coded("rv", vec![c.who(who), c.dcid(*d)]),
        _ => encode_no_link(c, v),
    }
}

fn encode_no_link(c: &Ctx, v: &RuleVerdict) -> Value {
    use Reason::*;
    match &v.reason {
        WebAccessRow {
            guardian_id: g,
            email: e,
            student_dcid: d,
        } => coded("m1", vec![c.gid(*g), c.opt_email(e.as_ref()), c.dcid(*d)]),
        RowNotInSyncSet {
            student_dcid: d,
            guardian_id: g,
        } => coded("ms", vec![c.gid(*g), c.dcid(*d)]),
        UnusableEmail {
            guardian_id: g,
            raw,
            student_dcid: d,
        } => coded("me", vec![json!(&**raw), c.gid(*g), c.dcid(*d)]),
        NoMatchingContact {
            student_dcid: d,
            email: e,
            guardian_id: g,
        } => coded("m3", vec![c.gid(*g), c.opt_email(e.as_ref()), c.dcid(*d)]),
        LinkOfEarlierUser {
            guardian_id: g,
            student_dcid: d,
            email: e,
            user_id: u,
            login,
        }
        | LinkOfUser {
            guardian_id: g,
            student_dcid: d,
            email: e,
            user_id: u,
            login,
        } => coded(
            if matches!(v.reason, LinkOfEarlierUser { .. }) {
                "ml"
            } else {
                "mu"
            },
            vec![
                c.gid(*g),
                c.opt_email(e.as_ref()),
                c.user(*u),
                c.email(login),
                c.dcid(*d),
            ],
        ),
        LinkOfUnverifiedUser {
            guardian_id: g,
            student_dcid: d,
            email: e,
            user_id: u,
        } => coded(
            "mv",
            vec![c.gid(*g), c.opt_email(e.as_ref()), c.user(*u), c.dcid(*d)],
        ),
        LinkOfNewUser {
            guardian_id: g,
            student_dcid: d,
            email: e,
        } => coded("mn", vec![c.gid(*g), c.opt_email(e.as_ref()), c.dcid(*d)]),
        NoAccountLinks {
            student_dcid: d,
            email: e,
            guardian_id: g,
        } => coded(
            "m2",
            vec![c.opt_email(e.as_ref()), c.opt_gid(*g), c.dcid(*d)],
        ),
        // Explain's own reasons and prose: the sentence itself.
        other => json!(["p", v.rule.as_str(), v.passed, other.to_string()]),
    }
}
