//! The access audit's compact form of a decision's reasons: a short JSON
//! array of codes and ids instead of ~1.3 KB of sentences a row. The
//! sentences are rendered from it when the audit is read, word for word as
//! they were (docs/access-rules.md, "What the audit stores").
//!
//! `[guardian_id, email, verdict, verdict, …]`: the row's guardian account
//! and email are stored once; each verdict is a code (`"r1"`) or a code with
//! its arguments (`["r3", [12345]]`). An argument equal to the row's own
//! student, user, guardian account, email or tier after is written `0`, and
//! trailing `0`s are left out. The action, case, limits and guardian id of
//! the row follow from its columns and its verdicts. A reason with no code
//! of its own is stored as its sentence (`["p", rule, passed, sentence]`).
//!
//! `encode` reads its own output back and gives up (returns `None`) unless
//! it gets exactly the same verdicts, so a row is never stored in a form
//! that would read back differently; the caller then stores the sentences.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{ContactFlag, Email, NotCaseC, PortalAccount, Reason, Rule, RuleVerdict, Who};
use crate::rules::{AccessTier, ConnectionCase, Limit, RemovalPolicy};

/// What an audit row's columns already say, so the codes leave it out.
#[derive(Debug, Clone, Copy)]
pub struct RowKeys {
    pub student_dcid: i64,
    pub user_id: i64,
    pub tier_after: Option<AccessTier>,
    pub case: ConnectionCase,
}

/// A decision's reasons as the audit keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReasons {
    pub guardian_id: Option<i64>,
    pub limits: Vec<Limit>,
    pub verdicts: Vec<RuleVerdict>,
}

/// Stored codes that cannot be read (written by hand, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit's reason codes {codes} cannot be read: {problem}")]
pub struct CodesError {
    pub codes: String,
    pub problem: String,
}

/// The defaults an argument is written `0` for.
struct Ctx {
    dcid: i64,
    user: i64,
    gid: Option<i64>,
    email: Option<Email>,
    tier: Option<AccessTier>,
}

/// The compact codes of a decision's reasons (its guardian id, limits and
/// verdicts); `None` when they would not read back exactly (the caller
/// stores the sentences instead).
pub fn encode(
    keys: &RowKeys,
    guardian_id: Option<i64>,
    limits: &[Limit],
    verdicts: &[RuleVerdict],
) -> Option<String> {
    let (hint_gid, email) = hints(verdicts);
    let ctx = Ctx {
        dcid: keys.student_dcid,
        user: keys.user_id,
        gid: guardian_id.or(hint_gid),
        email,
        tier: keys.tier_after,
    };
    let mut out = vec![json!(ctx.gid), json!(ctx.email.as_deref())];
    let coded: Vec<Value> = verdicts.iter().map(|v| encode_verdict(&ctx, v)).collect();
    out.extend(bundle_links(&coded));
    let text = Value::Array(out).to_string();
    match decode(keys, &text) {
        Ok(back)
            if back.guardian_id == guardian_id
                && back.limits == limits
                && back.verdicts == verdicts =>
        {
            Some(text)
        }
        _ => None,
    }
}

/// The reasons stored as `codes` on a row with `keys`.
pub fn decode(keys: &RowKeys, codes: &str) -> Result<AuditReasons, CodesError> {
    let fail = |problem: String| CodesError {
        codes: codes.to_string(),
        problem,
    };
    let value: Value = serde_json::from_str(codes).map_err(|e| fail(e.to_string()))?;
    let Some([gid, email, verdicts @ ..]) = value.as_array().map(Vec::as_slice) else {
        return Err(fail(
            "not an array of guardian id, email and verdicts".into(),
        ));
    };
    let ctx = Ctx {
        dcid: keys.student_dcid,
        user: keys.user_id,
        gid: gid.as_i64(),
        email: email.as_str().map(Email::from),
        tier: keys.tier_after,
    };
    let mut decoded = Vec::with_capacity(verdicts.len() + 3);
    for v in verdicts {
        match contacts_of(v, "L") {
            Some(contacts) => {
                for one in [
                    json!("r1"),
                    json!("r2"),
                    json!(["r3", contacts]),
                    json!(["r4", contacts]),
                ] {
                    decoded.push(decode_verdict(&ctx, &one).map_err(fail)?.verdict());
                }
            }
            None => decoded.push(decode_verdict(&ctx, v).map_err(fail)?.verdict()),
        }
    }
    let verdicts = decoded;
    let mut limits: Vec<Limit> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .filter_map(|v| match v.rule {
            Rule::R4 => Some(Limit::R4),
            Rule::R5 => Some(Limit::R5),
            _ => None,
        })
        .collect();
    limits.sort_unstable();
    limits.dedup();
    let linked = matches!(
        keys.case,
        ConnectionCase::Synced | ConnectionCase::MatchedFormCreator | ConnectionCase::Created
    );
    Ok(AuditReasons {
        guardian_id: if linked { ctx.gid } else { None },
        limits,
        verdicts,
    })
}

/// A valid link's R1-R4, each about the row's own account, email and
/// student, are written as one `["L", contacts]`.
fn bundle_links(coded: &[Value]) -> Vec<Value> {
    let mut out = Vec::with_capacity(coded.len());
    let mut rest = coded;
    loop {
        match rest {
            [r1, r2, r3, r4, tail @ ..]
                if *r1 == json!("r1")
                    && *r2 == json!("r2")
                    && contacts_of(r3, "r3").is_some()
                    && contacts_of(r3, "r3") == contacts_of(r4, "r4") =>
            {
                out.push(json!(["L", contacts_of(r3, "r3")]));
                rest = tail;
            }
            [first, tail @ ..] => {
                out.push(first.clone());
                rest = tail;
            }
            [] => return out,
        }
    }
}

/// The contacts of `["code", contacts]`, a verdict with no other argument.
fn contacts_of<'v>(v: &'v Value, code: &str) -> Option<&'v Value> {
    match v.as_array()?.as_slice() {
        [Value::String(c), contacts] if c == code => Some(contacts),
        _ => None,
    }
}

/// The guardian account and email the verdicts name first: the row's own.
fn hints(verdicts: &[RuleVerdict]) -> (Option<i64>, Option<Email>) {
    let (mut gid, mut email) = (None, None);
    for v in verdicts {
        let (g, e) = match &v.reason {
            Reason::AccountLinked {
                guardian_id, email, ..
            } => (Some(*guardian_id), Some(email)),
            Reason::NoAccountLinks {
                guardian_id, email, ..
            } => (*guardian_id, email.as_ref()),
            Reason::WebAccessRow {
                guardian_id, email, ..
            }
            | Reason::NoMatchingContact {
                guardian_id, email, ..
            } => (Some(*guardian_id), email.as_ref()),
            Reason::CaseAdminConnection { who, .. }
            | Reason::CaseFormConnection { who, .. }
            | Reason::CaseOrphaned { who, .. }
            | Reason::CaseReturningParent { who, .. } => match who {
                Who::User { login, .. } => (None, Some(login)),
                _ => (None, None),
            },
            _ => (None, None),
        };
        gid = gid.or(g);
        if email.is_none() {
            email = e.cloned();
        }
    }
    (gid, email)
}

// ---------------- writing ----------------

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

fn encode_verdict(c: &Ctx, v: &RuleVerdict) -> Value {
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
        } => coded(
            "ml",
            vec![
                c.gid(*g),
                c.opt_email(e.as_ref()),
                c.user(*u),
                c.email(login),
                c.dcid(*d),
            ],
        ),
        LinkOfUser {
            guardian_id: g,
            student_dcid: d,
            email: e,
            user_id: u,
            login,
        } => coded(
            "mu",
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

// ---------------- reading ----------------

/// The arguments of one stored verdict, read in order; a missing one is `0`.
struct Args<'a> {
    ctx: &'a Ctx,
    args: &'a [Value],
    next: usize,
}

impl Args<'_> {
    fn value(&mut self) -> Value {
        let v = self.args.get(self.next).cloned().unwrap_or(json!(0));
        self.next += 1;
        v
    }
    fn int(&mut self) -> Result<i64, String> {
        let v = self.value();
        v.as_i64().ok_or_else(|| format!("{v} is not a number"))
    }
    fn relative(&mut self, default: Option<i64>) -> Result<i64, String> {
        match (self.int()?, default) {
            (0, Some(d)) => Ok(d),
            (0, None) => Err("0 stands for a value the row does not have".into()),
            (v, _) => Ok(v),
        }
    }
    fn dcid(&mut self) -> Result<i64, String> {
        self.relative(Some(self.ctx.dcid))
    }
    fn user(&mut self) -> Result<i64, String> {
        self.relative(Some(self.ctx.user))
    }
    fn gid(&mut self) -> Result<i64, String> {
        self.relative(self.ctx.gid)
    }
    fn opt_gid(&mut self) -> Result<Option<i64>, String> {
        if self.args.get(self.next).is_some_and(Value::is_null) {
            self.next += 1;
            return Ok(None);
        }
        self.gid().map(Some)
    }
    fn email_of(&self, v: &Value) -> Result<Email, String> {
        match v {
            Value::String(s) => Ok(Email::from(s.as_str())),
            v if *v == json!(0) => self
                .ctx
                .email
                .clone()
                .ok_or_else(|| "the row has no email".into()),
            v => Err(format!("{v} is not an email")),
        }
    }
    fn email(&mut self) -> Result<Email, String> {
        let v = self.value();
        self.email_of(&v)
    }
    fn opt_email(&mut self) -> Result<Option<Email>, String> {
        let v = self.value();
        if v.is_null() {
            return Ok(None);
        }
        self.email_of(&v).map(Some)
    }
    fn text(&mut self) -> Result<Option<Box<str>>, String> {
        match self.value() {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.into())),
            v => Err(format!("{v} is not text")),
        }
    }
    fn flag(&mut self) -> Result<bool, String> {
        Ok(self.int()? != 0)
    }
    fn tier(&mut self) -> Result<AccessTier, String> {
        match self.value() {
            Value::String(s) => s.parse().map_err(|_| format!("{s:?} is not a tier")),
            _ => self
                .ctx
                .tier
                .ok_or_else(|| "the row has no tier after".into()),
        }
    }
    fn ints(&mut self) -> Result<Vec<i64>, String> {
        let v = self.value();
        match v.as_array() {
            Some(list) => list
                .iter()
                .map(|i| i.as_i64().ok_or_else(|| format!("{i} is not a number")))
                .collect(),
            None if v == json!(0) => Ok(Vec::new()),
            None => Err(format!("{v} is not a list of numbers")),
        }
    }
    fn contacts(&mut self) -> Result<Arc<[ContactFlag]>, String> {
        Ok(self
            .ints()?
            .into_iter()
            .map(|id| ContactFlag {
                person_id: id.abs(),
                decision_making: id > 0,
            })
            .collect())
    }
    fn who(&mut self) -> Result<Who, String> {
        let v = self.value();
        let email = || {
            self.ctx
                .email
                .clone()
                .ok_or_else(|| "the row has no email".to_string())
        };
        match v.as_array().map(Vec::as_slice) {
            _ if v.is_null() => Ok(Who::ANewUser),
            _ if v == json!(0) => Ok(Who::User {
                id: self.ctx.user,
                login: email()?,
            }),
            _ if v == json!(1) => Ok(Who::NewUser(email()?)),
            Some([Value::String(e)]) => Ok(Who::NewUser(Email::from(e.as_str()))),
            Some([id, login]) => {
                let mut inner = Args {
                    ctx: self.ctx,
                    args: std::slice::from_ref(id),
                    next: 0,
                };
                Ok(Who::User {
                    id: inner.user()?,
                    login: self.email_of(login)?,
                })
            }
            _ => Err(format!("{v} is not a user")),
        }
    }
}

fn decode_verdict(ctx: &Ctx, v: &Value) -> Result<Reason, String> {
    let (code, args) = match v {
        Value::String(code) => (code.as_str(), &[][..]),
        Value::Array(list) => match list.as_slice() {
            [Value::String(code), args @ ..] => (code.as_str(), args),
            _ => return Err(format!("{v} has no code")),
        },
        _ => return Err(format!("{v} is not a verdict")),
    };
    let mut a = Args { ctx, args, next: 0 };
    decode_step1(code, &mut a)
}

fn decode_step1(code: &str, a: &mut Args<'_>) -> Result<Reason, String> {
    use Reason::*;
    Ok(match code {
        "r1" => ParentPortalLink {
            guardian_id: a.gid()?,
            student_dcid: a.dcid()?,
        },
        "r2" => AccountLinked {
            guardian_id: a.gid()?,
            email: a.email()?,
            student_dcid: a.dcid()?,
        },
        "r3" => ContactsHaveEmail {
            contacts: a.contacts()?,
            student_dcid: a.dcid()?,
            email: a.email()?,
        },
        "r4" => DecisionMaking {
            contacts: a.contacts()?,
            student_dcid: a.dcid()?,
            email: a.email()?,
        },
        "r5n" => NotIndependent {
            student_dcid: a.dcid()?,
        },
        "r5o" => IndependentOwnEmail {
            org_email: a.flag()?,
            student_dcid: a.dcid()?,
            email: a.email()?,
        },
        "r5x" => IndependentNotOwnEmail {
            org_email: a.text()?.map(Email::from),
            personal_email: a.text()?.map(Email::from),
            student_dcid: a.dcid()?,
            email: a.email()?,
        },
        "s1" => LinkedEarlier {
            user_id: a.user()?,
            login: a.email()?,
            guardian_id: a.gid()?,
            email: a.email()?,
        },
        "s2" => FormCreatorMatched {
            linked_now: a.opt_gid()?,
            user_id: a.user()?,
            login: a.email()?,
            email: a.email()?,
            student_dcid: a.dcid()?,
        },
        "s3" => VerifiedEmailMatched {
            linked_now: a.opt_gid()?,
            user_id: a.user()?,
            email: a.email()?,
        },
        "s4" => NewUserCreated {
            guardian_id: a.gid()?,
            email: a.email()?,
        },
        "s5" => UnverifiedOnly {
            user_id: a.user()?,
            email: a.email()?,
            guardian_id: a.gid()?,
            student_dcid: a.dcid()?,
        },
        _ => return decode_case(code, a),
    })
}

fn decode_case(code: &str, a: &mut Args<'_>) -> Result<Reason, String> {
    use Reason::*;
    Ok(match code {
        "d" => CaseSynced {
            who: a.who()?,
            tier: a.tier()?,
            others: a.ints()?.into(),
            guardian_id: a.gid()?,
            student_dcid: a.dcid()?,
        },
        "b1" => CaseMatchedFormCreator {
            who: a.who()?,
            tier: a.tier()?,
            others: a.ints()?.into(),
            guardian_id: a.gid()?,
            student_dcid: a.dcid()?,
        },
        "b2" => CaseCreated {
            who: a.who()?,
            tier: a.tier()?,
            others: a.ints()?.into(),
            guardian_id: a.gid()?,
            student_dcid: a.dcid()?,
            email: a.email()?,
        },
        "a" => CaseAdminConnection {
            who: a.who()?,
            kept: a.tier()?,
            student_dcid: a.dcid()?,
        },
        "af" => CaseFormConnection {
            who: a.who()?,
            missing: if a.flag()? {
                NotCaseC::NoPortalAccount
            } else {
                NotCaseC::NoForm
            },
            kept: a.tier()?,
            student_dcid: a.dcid()?,
        },
        "ao" => {
            let policy = a.text()?.unwrap_or_default();
            CaseOrphaned {
                policy: policy
                    .parse::<RemovalPolicy>()
                    .map_err(|_| format!("{policy:?} is not a removal policy"))?,
                who: a.who()?,
                student_dcid: a.dcid()?,
            }
        }
        "c" => {
            let account = match a.ints()?.as_slice() {
                [g] => PortalAccount::EarlierLink { guardian_id: *g },
                [g, d] => PortalAccount::ThisRun {
                    guardian_id: *g,
                    student_dcid: *d,
                },
                other => return Err(format!("{other:?} is not a Parent Portal account")),
            };
            CaseReturningParent {
                account,
                who: a.who()?,
                created: a.flag()?,
                student_dcid: a.dcid()?,
            }
        }
        "rr" => {
            let from = a.text()?.unwrap_or_default();
            Restricted {
                from: from
                    .parse()
                    .map_err(|_| format!("{from:?} is not a tier"))?,
                to: a.tier()?,
                who: a.who()?,
                student_dcid: a.dcid()?,
            }
        }
        "rv" => Revoked {
            who: a.who()?,
            student_dcid: a.dcid()?,
        },
        _ => decode_no_link(code, a)?,
    })
}

fn decode_no_link(code: &str, a: &mut Args<'_>) -> Result<Reason, String> {
    use Reason::*;
    Ok(match code {
        "m1" => WebAccessRow {
            guardian_id: a.gid()?,
            email: a.opt_email()?,
            student_dcid: a.dcid()?,
        },
        "ms" => RowNotInSyncSet {
            guardian_id: a.gid()?,
            student_dcid: a.dcid()?,
        },
        "me" => UnusableEmail {
            raw: a.text()?.unwrap_or_default(),
            guardian_id: a.gid()?,
            student_dcid: a.dcid()?,
        },
        "m3" => NoMatchingContact {
            guardian_id: a.gid()?,
            email: a.opt_email()?,
            student_dcid: a.dcid()?,
        },
        "ml" => LinkOfEarlierUser {
            guardian_id: a.gid()?,
            email: a.opt_email()?,
            user_id: a.user()?,
            login: a.email()?,
            student_dcid: a.dcid()?,
        },
        "mu" => LinkOfUser {
            guardian_id: a.gid()?,
            email: a.opt_email()?,
            user_id: a.user()?,
            login: a.email()?,
            student_dcid: a.dcid()?,
        },
        "mv" => LinkOfUnverifiedUser {
            guardian_id: a.gid()?,
            email: a.opt_email()?,
            user_id: a.user()?,
            student_dcid: a.dcid()?,
        },
        "mn" => LinkOfNewUser {
            guardian_id: a.gid()?,
            email: a.opt_email()?,
            student_dcid: a.dcid()?,
        },
        "m2" => NoAccountLinks {
            email: a.opt_email()?,
            guardian_id: a.opt_gid()?,
            student_dcid: a.dcid()?,
        },
        "p" => {
            let rule = a.text()?.unwrap_or_default();
            let passed = match a.value() {
                Value::Bool(b) => b,
                v => return Err(format!("{v} is not passed or failed")),
            };
            Prose {
                rule: rule
                    .parse()
                    .map_err(|_| format!("{rule:?} is not a rule"))?,
                passed,
                detail: a.text()?.unwrap_or_default(),
            }
        }
        _ => return Err(format!("unknown code {code:?}")),
    })
}
