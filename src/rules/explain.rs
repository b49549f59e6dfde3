//! `explain`: why does this parent see (or not see) this child? Answers from
//! the very same engine as the nightly run (`decide`), then gathers every
//! record the rules looked at, so a district admin can check the answer
//! against PowerSchool and SchoolEngage record by record.

use serde::Serialize;

use super::decision::{Engine, Found, RowOutcome};
use super::email::{normalise_email, normalise_optional};
use super::tiers::{TierMatrix, TierPermissions};
use super::{
    AccessTier, ConnectionAction, ConnectionCase, ConnectionDecision, DistrictFacts, Limit, Origin,
    RuleVerdict, UserRef,
};

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

pub fn explain_pair(
    facts: &DistrictFacts,
    matrix: &TierMatrix,
    student_dcid: i64,
    email: &str,
) -> Explanation {
    // `decide` is `Engine::new(facts).decisions()`; keeping the engine lets
    // explain also read what steps 1 and 2 made of each row, with the same code.
    let engine = Engine::new(facts);
    let decisions = engine.decisions();
    let normalised = normalise_email(email);
    let wanted = normalised.as_deref();

    let student = facts
        .students
        .iter()
        .filter(|s| s.dcid == student_dcid)
        .min_by_key(|s| {
            (
                !s.independent,
                s.org_email.clone(),
                s.personal_email.clone(),
            )
        })
        .filter(|_| engine.in_sync_set(student_dcid))
        .map(|s| {
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
        });

    // The user with the email: an existing one (verified first, as step 2
    // prefers them), or the new one the run creates with it.
    let existing_user = wanted.and_then(|n| {
        facts
            .users
            .iter()
            .filter(|u| normalise_email(&u.email).as_deref() == Some(n))
            .min_by_key(|u| (!u.email_verified, u.user_id))
    });
    let user_ref = match existing_user {
        Some(u) => Some(UserRef::Existing(u.user_id)),
        None => wanted.and_then(|n| {
            decisions
                .new_users
                .iter()
                .position(|nu| nu.email == n)
                .map(UserRef::New)
        }),
    };
    let user_id = existing_user.map(|u| u.user_id);

    let mut guardian_rows: Vec<GuardianRowSummary> = Vec::new();
    for (i, row) in facts.guardian_rows.iter().enumerate() {
        if row.student_dcid != student_dcid {
            continue;
        }
        let (outcome, row_email, found) = engine.row_outcome(i);
        guardian_rows.push(GuardianRowSummary {
            guardian_id: row.guardian_id,
            email: row.email.clone(),
            has_this_email: wanted.is_some() && row_email == wanted,
            web_access_account: row.web_access_account,
            outcome: describe_row(outcome, found, &decisions.new_users, row_email),
        });
    }
    guardian_rows.sort_by(|a, b| {
        (a.guardian_id, &a.email, a.web_access_account, &a.outcome).cmp(&(
            b.guardian_id,
            &b.email,
            b.web_access_account,
            &b.outcome,
        ))
    });
    guardian_rows.dedup();

    let mut contacts: Vec<ContactSummary> = facts
        .contacts
        .iter()
        .filter(|c| c.student_dcid == student_dcid)
        .map(|c| ContactSummary {
            person_id: c.person_id,
            email: c.email.clone(),
            has_this_email: wanted.is_some()
                && normalise_optional(c.email.as_deref()).as_deref() == wanted,
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

    let user = match (existing_user, user_ref) {
        (Some(u), _) => Some(UserSummary {
            user: UserRef::Existing(u.user_id),
            email: u.email.clone(),
            email_verified: u.email_verified,
            powerschool_guardian_id: u.powerschool_guardian_id,
            linked_this_run: decisions
                .guardian_links
                .iter()
                .find(|(linked, _)| *linked == u.user_id)
                .map(|&(_, gid)| gid),
            incomplete_before: u.incomplete,
            incomplete_after: decisions.incomplete_users.binary_search(&u.user_id).is_ok(),
            parent_portal_account: engine.parent_portal_account_of(u.user_id),
        }),
        (None, Some(UserRef::New(i))) => {
            let new = &decisions.new_users[i];
            Some(UserSummary {
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
            })
        }
        (None, _) => None,
    };

    let forms_by_user_for_student = user_id.map_or(0, |u| {
        facts
            .forms
            .iter()
            .filter(|f| f.student_dcid == student_dcid && f.created_by_user_id == u)
            .count()
    });
    let existing_connection = user_id.and_then(|u| {
        facts
            .connections
            .iter()
            .filter(|c| c.student_dcid == student_dcid && c.user_id == u)
            .min_by_key(|c| (c.origin, std::cmp::Reverse(c.tier)))
            .map(|c| ExistingConnection {
                tier: c.tier,
                case: c.case,
                limits: c.limits.clone(),
                origin: c.origin,
            })
    });

    let decision: Option<&ConnectionDecision> = user_ref.and_then(|r| {
        decisions
            .connections
            .binary_search_by(|c| (c.student_dcid, c.user).cmp(&(student_dcid, r)))
            .ok()
            .map(|i| &decisions.connections[i])
    });

    let sees_student = decision.is_some_and(|d| d.action != ConnectionAction::Remove);
    let mut verdicts: Vec<RuleVerdict>;
    let mut reasons: Vec<String> = Vec::new();
    match decision {
        Some(d) => {
            verdicts = d.verdicts.clone();
            if !sees_student {
                reasons.extend(
                    verdicts
                        .iter()
                        .filter(|v| v.rule == "removal")
                        .map(|v| format!("{}: {}", v.rule, v.detail)),
                );
            }
        }
        None => {
            verdicts = Vec::new();
            if wanted.is_none() {
                verdicts.push(RuleVerdict {
                    rule: "email".into(),
                    passed: false,
                    detail: format!(
                        "The email {email:?} is malformed or empty after normalising, so it matches no contact, account or user."
                    ),
                });
            } else if student.is_none() {
                let untouched = if existing_connection.is_some() {
                    " Its existing connection with this user is left untouched."
                } else {
                    ""
                };
                verdicts.push(RuleVerdict {
                    rule: "sync_set".into(),
                    passed: false,
                    detail: format!(
                        "Student {student_dcid} is not in this run's sync set (not enrolled, or a scheduling-year student), so no rule is applied to it.{untouched}"
                    ),
                });
            } else {
                if existing_user.is_none() {
                    verdicts.push(RuleVerdict {
                        rule: "step2".into(),
                        passed: false,
                        detail: format!(
                            "No SchoolEngage user has the email {}, and no valid PowerSchool link creates one.",
                            wanted.unwrap_or_default()
                        ),
                    });
                }
                verdicts.extend(engine.why_no_link(student_dcid, wanted, user_id));
                if let Some(u) = user_id {
                    if decisions
                        .report
                        .form_creator_only
                        .binary_search(&(student_dcid, u))
                        .is_ok()
                    {
                        verdicts.push(RuleVerdict {
                            rule: "case".into(),
                            passed: false,
                            detail: format!(
                                "form_creator_only: user {u} created a form for student {student_dcid} but holds no Parent Portal account, so nothing changes (registration handles a new family)."
                            ),
                        });
                    }
                }
            }
            reasons.extend(
                verdicts
                    .iter()
                    .filter(|v| !v.passed)
                    .map(|v| format!("{}: {}", v.rule, v.detail)),
            );
        }
    }

    let tier = decision.filter(|_| sees_student).map(|d| d.tier);
    let limits = decision
        .filter(|_| sees_student)
        .map(|d| d.limits.clone())
        .unwrap_or_default();
    let allows = tier.map(|t| *matrix.permissions(t));
    let allows_text = allows.map(|p| p.describe()).unwrap_or_default();
    let shown_email = wanted
        .map(str::to_string)
        .unwrap_or_else(|| format!("{email:?}"));
    let summary = match (decision, tier) {
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
    };

    Explanation {
        student_dcid,
        email_given: email.to_string(),
        email: normalised.clone(),
        sees_student,
        summary,
        reasons,
        student,
        guardian_rows,
        contacts,
        user,
        forms_by_user_for_student,
        existing_connection,
        decision: decision.map(|d| DecisionSummary {
            action: d.action,
            case: d.case,
            case_letter: d.case.letter().to_string(),
            tier: d.tier,
            limits: d.limits.clone(),
            guardian_id: d.guardian_id,
            present_in_powerschool: d.present_in_powerschool,
            orphaned: d.orphaned,
        }),
        verdicts,
        tier,
        limits,
        allows,
        allows_text,
    }
}

fn describe_row(
    outcome: &RowOutcome,
    found: Option<Found>,
    new_users: &[super::NewUser],
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
            let tier = super::decision::tier_under(limits);
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
            let user = match found {
                Some(Found::LinkedAccount(u)) => {
                    format!("user {u} (linked to this account by an earlier sync)")
                }
                Some(Found::FormCreator(u)) => {
                    format!("user {u} (verified form creator of the student with this email)")
                }
                Some(Found::VerifiedEmail(u)) => {
                    format!("user {u} (verified user with this email)")
                }
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
            };
            format!(
                "valid link, tier {}{limited}; belongs to {user}",
                tier.as_str()
            )
        }
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn or_none(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("none")
}

impl Explanation {
    /// For humans at a terminal: headings, one fact per line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        let shown = self
            .email
            .clone()
            .unwrap_or_else(|| format!("{:?}", self.email_given));
        line(format!("Does {shown} see student {}?", self.student_dcid));
        line(format!(
            "Answer: {} - {}",
            if self.sees_student { "YES" } else { "NO" },
            self.summary
        ));

        if !self.reasons.is_empty() {
            line(String::new());
            line("Why not".into());
            for reason in &self.reasons {
                line(format!("  - {reason}"));
            }
        }

        line(String::new());
        line(format!("Student {}", self.student_dcid));
        match &self.student {
            None => line("  in the sync set: no".into()),
            Some(s) => {
                line("  in the sync set: yes".into());
                line(format!("  independent: {}", yes_no(s.independent)));
                line(format!(
                    "  orgemail: {} (is this email: {})",
                    or_none(&s.org_email),
                    yes_no(s.email_is_org_email)
                ));
                line(format!(
                    "  personalemail: {} (is this email: {})",
                    or_none(&s.personal_email),
                    yes_no(s.email_is_personal_email)
                ));
            }
        }

        line(String::new());
        line(format!(
            "Guardian PowerQuery rows of student {}",
            self.student_dcid
        ));
        if self.guardian_rows.is_empty() {
            line("  none".into());
        }
        for row in &self.guardian_rows {
            line(format!(
                "  - guardian account {}: email {}{}{}; {}",
                row.guardian_id,
                or_none(&row.email),
                if row.has_this_email {
                    " (this email)"
                } else {
                    ""
                },
                if row.web_access_account {
                    ", Web Access Account"
                } else {
                    ""
                },
                row.outcome
            ));
        }

        line(String::new());
        line(format!("Contacts of student {}", self.student_dcid));
        if self.contacts.is_empty() {
            line("  none".into());
        }
        for contact in &self.contacts {
            line(format!(
                "  - contact {}: email {}{}; decision-making: {}",
                contact.person_id,
                or_none(&contact.email),
                if contact.has_this_email {
                    " (this email)"
                } else {
                    ""
                },
                yes_no(contact.is_decision_making)
            ));
        }

        line(String::new());
        line("SchoolEngage user".into());
        match &self.user {
            None => line("  none with this email".into()),
            Some(u) => {
                match u.user {
                    UserRef::Existing(id) => line(format!("  user {id}: {}", u.email)),
                    UserRef::New(_) => line(format!(
                        "  no user yet; the rules would create one: {}",
                        u.email
                    )),
                }
                if let UserRef::Existing(_) = u.user {
                    line(format!("  email verified: {}", yes_no(u.email_verified)));
                }
                line(format!(
                    "  linked guardian account: {}",
                    u.powerschool_guardian_id
                        .map_or("none".to_string(), |g| g.to_string())
                ));
                if let (Some(g), UserRef::Existing(_)) = (u.linked_this_run, u.user) {
                    line(format!("  the rules link it to guardian account: {g}"));
                }
                line(format!(
                    "  Parent Portal account: {}",
                    u.parent_portal_account.as_deref().unwrap_or("none")
                ));
                line(format!(
                    "  incomplete: {} now, {} by the rules",
                    yes_no(u.incomplete_before),
                    yes_no(u.incomplete_after)
                ));
                line(format!(
                    "  forms created for student {}: {}",
                    self.student_dcid, self.forms_by_user_for_student
                ));
            }
        }

        line(String::new());
        line("Connection as stored now".into());
        match &self.existing_connection {
            None => line("  none".into()),
            Some(c) => {
                line(format!("  tier: {}", c.tier.as_str()));
                line(format!("  origin: {}", c.origin.as_str()));
                line(format!(
                    "  case: {}",
                    c.case.map_or("none", |case| case.as_str())
                ));
                line(format!("  limits: {}", join_limits(&c.limits)));
            }
        }

        line(String::new());
        line("What the rules decide from the PowerSchool data last synced".into());
        match &self.decision {
            None => line("  no connection".into()),
            Some(d) => {
                line(format!("  action: {}", action_name(d.action)));
                line(format!("  case: {} ({})", d.case_letter, d.case.as_str()));
                line(format!("  tier: {}", d.tier.as_str()));
                line(format!("  limits: {}", join_limits(&d.limits)));
                line(format!(
                    "  backed by guardian account: {}",
                    d.guardian_id.map_or("none".to_string(), |g| g.to_string())
                ));
                line(format!(
                    "  present in PowerSchool: {}",
                    yes_no(d.present_in_powerschool)
                ));
                line(format!(
                    "  orphaned from PowerSchool: {}",
                    yes_no(d.orphaned)
                ));
            }
        }

        line(String::new());
        line("Rules".into());
        for v in &self.verdicts {
            line(format!(
                "  {} {}: {}",
                v.rule,
                if v.passed { "passed" } else { "failed" },
                v.detail
            ));
        }

        if let Some(tier) = self.tier {
            line(String::new());
            line(format!("What tier {} allows", tier.as_str()));
            for text in &self.allows_text {
                line(format!("  {text}"));
            }
        }
        out
    }
}

fn join_limits(limits: &[Limit]) -> String {
    if limits.is_empty() {
        "none".to_string()
    } else {
        limits
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn action_name(action: ConnectionAction) -> &'static str {
    match action {
        ConnectionAction::Create => "create",
        ConnectionAction::Keep => "keep",
        ConnectionAction::Remove => "remove",
    }
}
