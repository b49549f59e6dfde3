//! Reading a verdict's code back into its reason; an argument left out or
//! written `0` is the row's own value.

use std::sync::Arc;

use serde_json::{json, Value};

use super::Ctx;
use crate::rules::verdict::{ContactFlag, Email, NotCaseC, PortalAccount, Reason, Who};
use crate::rules::{AccessTier, RemovalPolicy};

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
        match self.int()? {
            0 => Ok(self.ctx.rows_user()),
            id => Ok(id),
        }
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
                id: self.ctx.rows_user(),
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

pub(super) fn decode_verdict(ctx: &Ctx, v: &Value) -> Result<Reason, String> {
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
