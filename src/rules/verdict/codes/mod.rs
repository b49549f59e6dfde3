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

use serde_json::{json, Value};

use super::{Email, Reason, Rule, RuleVerdict, Who};
use crate::rules::{AccessTier, ConnectionCase, Limit};

mod read;
mod write;

use read::decode_verdict;
use write::encode_verdict;

/// What an audit row's columns already say, so the codes leave it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Set when a code stood for the row's user (see `user`).
    user_read: std::cell::Cell<bool>,
}

impl Ctx {
    /// The row's user, for a code that stands for it; noted, so the caller
    /// knows whether the codes read the same under any user.
    fn rows_user(&self) -> i64 {
        self.user_read.set(true);
        self.user
    }
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
    encode_noting_user(keys, guardian_id, limits, verdicts).map(|(text, _)| text)
}

/// `encode`, and whether a code stands for the row's user (`keys.user_id`):
/// read back to check, the codes tell.
fn encode_noting_user(
    keys: &RowKeys,
    guardian_id: Option<i64>,
    limits: &[Limit],
    verdicts: &[RuleVerdict],
) -> Option<(String, bool)> {
    let (hint_gid, email) = hints(verdicts);
    let ctx = Ctx {
        dcid: keys.student_dcid,
        user: keys.user_id,
        gid: guardian_id.or(hint_gid),
        email,
        tier: keys.tier_after,
        user_read: Default::default(),
    };
    let mut out = vec![json!(ctx.gid), json!(ctx.email.as_deref())];
    let coded: Vec<Value> = verdicts.iter().map(|v| encode_verdict(&ctx, v)).collect();
    out.extend(bundle_links(&coded));
    let text = Value::Array(out).to_string();
    match decode_noting_user(keys, &text) {
        Ok((back, user_read))
            if back.guardian_id == guardian_id
                && back.limits == limits
                && back.verdicts == verdicts =>
        {
            Some((text, user_read))
        }
        _ => None,
    }
}

/// A decision's reasons already coded: a run codes them as it decides, so a
/// district's worth of sentences is never held at once. They are made with
/// the decision's own keys (`ConnectionDecision::audit_keys`), whose user is
/// 0 for a user the run creates: its id is given when the run writes, and no
/// verdict names it, so the codes read the same under it (`for_row` checks).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CodedReasons {
    pub codes: Box<str>,
    /// No code stands for the row's user, so the codes read the same under
    /// any user id (false when unknown: a plan held before this was kept).
    #[serde(default)]
    pub user_free: bool,
}

impl CodedReasons {
    /// The codes of the reasons, made against `keys`; `None` when they
    /// would not read back exactly (the verdicts are then kept as they are).
    pub fn encode(
        keys: &RowKeys,
        guardian_id: Option<i64>,
        limits: &[Limit],
        verdicts: &[RuleVerdict],
    ) -> Option<CodedReasons> {
        let (codes, user_read) = encode_noting_user(keys, guardian_id, limits, verdicts)?;
        Some(CodedReasons {
            codes: codes.into_boxed_str(),
            user_free: !user_read,
        })
    }

    /// The reasons, read back against `made`, the keys they were made
    /// with (`ConnectionDecision::audit_keys`).
    pub fn decode(&self, made: &RowKeys) -> Result<AuditReasons, CodesError> {
        decode(made, &self.codes)
    }

    /// The codes to store on the audit row with `row`, made with `made`:
    /// as they are when the keys are the same; otherwise (a user created
    /// since) once they are seen to read back the same under `row`. `Err`
    /// holds the reasons to store as sentences instead, or why the codes
    /// cannot be read at all (then nothing may be stored).
    pub fn for_row(
        &self,
        made: &RowKeys,
        row: &RowKeys,
    ) -> Result<&str, Result<AuditReasons, CodesError>> {
        if made == row {
            return Ok(&self.codes);
        }
        // Codes that never stand for the row's user read the same under
        // any user, such as the id a new user is given when the run writes.
        let only_user_differs = RowKeys {
            user_id: row.user_id,
            ..*made
        } == *row;
        if self.user_free && only_user_differs {
            return Ok(&self.codes);
        }
        let made = self.decode(made);
        match (&made, decode(row, &self.codes)) {
            (Ok(made), Ok(read)) if *made == read => Ok(&self.codes),
            _ => Err(made),
        }
    }
}

/// The reasons stored as `codes` on a row with `keys`.
pub fn decode(keys: &RowKeys, codes: &str) -> Result<AuditReasons, CodesError> {
    decode_noting_user(keys, codes).map(|(reasons, _)| reasons)
}

/// `decode`, and whether a code stood for the row's user (`keys.user_id`).
fn decode_noting_user(keys: &RowKeys, codes: &str) -> Result<(AuditReasons, bool), CodesError> {
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
        user_read: Default::default(),
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
    let reasons = AuditReasons {
        guardian_id: if linked { ctx.gid } else { None },
        limits,
        verdicts,
    };
    Ok((reasons, ctx.user_read.get()))
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
