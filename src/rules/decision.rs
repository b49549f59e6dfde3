//! The decision table of access-rules.md, steps 1–3, with the binding choices
//! of the README's decisions: every row of the table lives here and nowhere else, so the
//! nightly run, `plan` and `explain` can never disagree about a parent.
//!
//! The work is a handful of passes over hash indexes (O(rows)), because a
//! district of 150,000 students is decided in one go; every output is sorted
//! and every tie broken on values, never on input order, so the same district
//! gives the same decisions however PowerSchool happened to list its rows.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::email::{normalise_email, normalise_optional};
use super::{
    AccessTier, ConnectionAction, ConnectionCase, ConnectionDecision, ConnectionFacts,
    ContactFacts, DecisionReport, Decisions, DistrictFacts, GuardianRowFacts, Limit, NewUser,
    Origin, RemovalPolicy, RuleVerdict, StudentFacts, UserFacts, UserRef,
};

/// Decides every connection of the district from the facts.
pub fn decide(facts: &DistrictFacts) -> Decisions {
    Engine::new(facts).decisions()
}

/// The tier a valid link gets: `full`, lowered to the lowest ceiling of the
/// limits that failed (access-rules.md, "the lowest tier wins").
pub fn tier_under(limits: &[Limit]) -> AccessTier {
    limits
        .iter()
        .map(|limit| limit.ceiling())
        .min()
        .unwrap_or(AccessTier::Full)
}

/// What step 1 made of one guardian row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowOutcome {
    /// R1 failed: a Web Access Account link, ignored entirely.
    WebAccessAccount,
    /// README decision 11: ignored and counted.
    StudentNotInSyncSet,
    /// README decision 2: the account's email is empty or malformed.
    NoUsableEmail,
    /// R3 failed: treated as absent from PowerSchool.
    NoMatchingContact,
    /// R1–R3 hold; R4/R5 may have lowered the tier.
    Valid { limits: Vec<Limit> },
}

/// How step 2 found the user of a valid link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// 2.1: linked to the account's PowerSchool id by an earlier sync.
    LinkedAccount(i64),
    /// 2.2: a verified form creator of the student with the account's email.
    FormCreator(i64),
    /// 2.3: a verified user with the account's email.
    VerifiedEmail(i64),
    /// 2.4: nobody has the email; the run creates a user.
    NewUser,
    /// 2.4 refused: only an unverified user has the email.
    UnverifiedOnly(i64),
}

impl Found {
    /// The existing user the link belongs to, if any.
    fn user(self) -> Option<i64> {
        match self {
            Found::LinkedAccount(u) | Found::FormCreator(u) | Found::VerifiedEmail(u) => Some(u),
            Found::NewUser | Found::UnverifiedOnly(_) => None,
        }
    }
}

struct Student<'a> {
    facts: &'a StudentFacts,
    org_email: Option<String>,
    personal_email: Option<String>,
}

struct User<'a> {
    facts: &'a UserFacts,
    /// The login, normalised once here because SE's "already normalised"
    /// is a promise the rules do not lean on.
    email: Option<String>,
}

/// The facts, indexed once; step 1 and step 2 are worked out for every row
/// on construction, the rest of the table in `decisions`.
pub(crate) struct Engine<'a> {
    facts: &'a DistrictFacts,
    students: HashMap<i64, Student<'a>>,
    /// Contacts by student, then by normalised email; each list sorted by person id.
    contacts: HashMap<i64, HashMap<String, Vec<&'a ContactFacts>>>,
    users: HashMap<i64, User<'a>>,
    /// User ids by normalised login email, ascending.
    verified_by_email: HashMap<String, Vec<i64>>,
    unverified_by_email: HashMap<String, Vec<i64>>,
    /// Lowest user id linked to each PowerSchool guardian id before the run.
    user_by_guardian: HashMap<i64, i64>,
    connections: HashMap<(i64, i64), &'a ConnectionFacts>,
    forms: HashSet<(i64, i64)>,
    /// Per guardian row, by position in `facts.guardian_rows`.
    row_emails: Vec<Option<String>>,
    outcomes: Vec<RowOutcome>,
    found: Vec<Option<Found>>,
    rows_by_student: HashMap<i64, Vec<usize>>,
    /// Step 2.4's users, sorted by email; one per email.
    new_users: Vec<NewUser>,
    new_user_index: HashMap<String, usize>,
    /// Existing users that step 2.2/2.3 found and no earlier sync linked:
    /// user id -> lowest guardian id of the accounts that found them.
    guardian_links: BTreeMap<i64, i64>,
    /// Users a valid link resolved to this run: user id -> lowest (student, guardian id).
    linked_this_run: HashMap<i64, (i64, i64)>,
}

impl<'a> Engine<'a> {
    pub(crate) fn new(facts: &'a DistrictFacts) -> Engine<'a> {
        let mut engine = Engine {
            facts,
            students: index_students(&facts.students),
            contacts: index_contacts(&facts.contacts),
            users: index_users(&facts.users),
            verified_by_email: HashMap::new(),
            unverified_by_email: HashMap::new(),
            user_by_guardian: HashMap::new(),
            connections: index_connections(&facts.connections),
            forms: facts
                .forms
                .iter()
                .map(|f| (f.student_dcid, f.created_by_user_id))
                .collect(),
            row_emails: Vec::with_capacity(facts.guardian_rows.len()),
            outcomes: Vec::with_capacity(facts.guardian_rows.len()),
            found: Vec::with_capacity(facts.guardian_rows.len()),
            rows_by_student: HashMap::new(),
            new_users: Vec::new(),
            new_user_index: HashMap::new(),
            guardian_links: BTreeMap::new(),
            linked_this_run: HashMap::new(),
        };
        for (&id, user) in &engine.users {
            if let Some(email) = &user.email {
                let by_email = if user.facts.email_verified {
                    &mut engine.verified_by_email
                } else {
                    &mut engine.unverified_by_email
                };
                by_email.entry(email.clone()).or_default().push(id);
            }
            if let Some(guardian_id) = user.facts.powerschool_guardian_id {
                let linked = engine.user_by_guardian.entry(guardian_id).or_insert(id);
                *linked = (*linked).min(id);
            }
        }
        for ids in engine
            .verified_by_email
            .values_mut()
            .chain(engine.unverified_by_email.values_mut())
        {
            ids.sort_unstable();
        }

        for (i, row) in facts.guardian_rows.iter().enumerate() {
            let email = normalise_optional(row.email.as_deref());
            let outcome = engine.step1(row, email.as_deref());
            let found = match (&outcome, &email) {
                (RowOutcome::Valid { .. }, Some(email)) => Some(engine.step2(row, email)),
                _ => None,
            };
            engine.row_emails.push(email);
            engine.outcomes.push(outcome);
            engine.found.push(found);
            engine
                .rows_by_student
                .entry(row.student_dcid)
                .or_default()
                .push(i);
        }
        engine.settle_users();
        engine
    }

    /// What step 2 means for users across all rows: the users the run
    /// creates, the accounts it links, who holds a Parent Portal account.
    fn settle_users(&mut self) {
        // Lowest (guardian id, student, names) wins, so a new user's record
        // does not depend on row order.
        let mut new_user_rows: BTreeMap<&str, &GuardianRowFacts> = BTreeMap::new();
        for (i, row) in self.facts.guardian_rows.iter().enumerate() {
            let Some(found) = self.found[i] else {
                continue;
            };
            let gid = row.guardian_id;
            if let Some(u) = found.user() {
                let seen = self
                    .linked_this_run
                    .entry(u)
                    .or_insert((row.student_dcid, gid));
                *seen = (*seen).min((row.student_dcid, gid));
            }
            match found {
                Found::FormCreator(u) | Found::VerifiedEmail(u)
                    if self.users[&u].facts.powerschool_guardian_id.is_none() =>
                {
                    let link = self.guardian_links.entry(u).or_insert(gid);
                    *link = (*link).min(gid);
                }
                Found::NewUser => {
                    let email = self.row_emails[i]
                        .as_deref()
                        .expect("only rows with a usable email reach step 2");
                    let best = new_user_rows.entry(email).or_insert(row);
                    if new_user_key(row) < new_user_key(best) {
                        *best = row;
                    }
                }
                _ => {}
            }
        }
        self.new_users = new_user_rows
            .iter()
            .map(|(email, row)| NewUser {
                email: email.to_string(),
                first_name: row.first_name.clone(),
                last_name: row.last_name.clone(),
                powerschool_guardian_id: row.guardian_id,
            })
            .collect();
        self.new_user_index = self
            .new_users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.email.clone(), i))
            .collect();
    }

    // ---------------- step 1: which PowerSchool links are valid ----------------

    fn step1(&self, row: &GuardianRowFacts, email: Option<&str>) -> RowOutcome {
        // R1 before the sync set: a Web Access row is never a link, for any student.
        if row.web_access_account {
            return RowOutcome::WebAccessAccount;
        }
        let Some(student) = self.students.get(&row.student_dcid) else {
            return RowOutcome::StudentNotInSyncSet;
        };
        // R2 holds by construction: the row is in the guardian PowerQuery.
        let Some(email) = email else {
            return RowOutcome::NoUsableEmail;
        };
        let contacts = self.contacts_with_email(row.student_dcid, email);
        if contacts.is_empty() {
            return RowOutcome::NoMatchingContact;
        }
        let mut limits = Vec::new();
        if contacts.iter().any(|c| !c.is_decision_making) {
            limits.push(Limit::R4);
        }
        if student.facts.independent && !student.is_own_email(email) {
            limits.push(Limit::R5);
        }
        RowOutcome::Valid { limits }
    }

    fn contacts_with_email(&self, student_dcid: i64, email: &str) -> &[&'a ContactFacts] {
        self.contacts
            .get(&student_dcid)
            .and_then(|by_email| by_email.get(email))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    // ---------------- step 2: which user an account is ----------------

    fn step2(&self, row: &GuardianRowFacts, email: &str) -> Found {
        if let Some(&user) = self.user_by_guardian.get(&row.guardian_id) {
            return Found::LinkedAccount(user);
        }
        if let Some(ids) = self.verified_by_email.get(email) {
            let form_creator = ids
                .iter()
                .find(|&&u| self.forms.contains(&(row.student_dcid, u)));
            return match form_creator {
                Some(&u) => Found::FormCreator(u),
                None => Found::VerifiedEmail(ids[0]),
            };
        }
        // Nobody gains a student by signing up with someone else's address.
        if let Some(ids) = self.unverified_by_email.get(email) {
            return Found::UnverifiedOnly(ids[0]);
        }
        Found::NewUser
    }

    // ---------------- step 3: the connection cases ----------------

    pub(crate) fn decisions(&self) -> Decisions {
        let rows = &self.facts.guardian_rows;
        let mut report = DecisionReport::default();
        let mut email_differs = BTreeSet::new();
        for (i, row) in rows.iter().enumerate() {
            let gid = row.guardian_id;
            let dcid = row.student_dcid;
            match (&self.outcomes[i], self.found[i]) {
                (RowOutcome::WebAccessAccount, _) => report.web_access_rows_ignored += 1,
                (RowOutcome::StudentNotInSyncSet, _) => {
                    report.rows_for_unknown_students.push((gid, dcid))
                }
                (RowOutcome::NoUsableEmail, _) => report.accounts_without_email.push((gid, dcid)),
                (RowOutcome::NoMatchingContact, _) => report.links_without_matching_contact.push((
                    gid,
                    dcid,
                    self.row_email(i).to_string(),
                )),
                (RowOutcome::Valid { .. }, Some(Found::LinkedAccount(u))) => {
                    let user = &self.users[&u];
                    if user.email.as_deref() != Some(self.row_email(i)) {
                        email_differs.insert((
                            u,
                            user.facts.email.clone(),
                            self.row_email(i).to_string(),
                        ));
                    }
                }
                (RowOutcome::Valid { .. }, Some(Found::UnverifiedOnly(_))) => report
                    .unverified_email_matches
                    .push((gid, dcid, self.row_email(i).to_string())),
                (RowOutcome::Valid { .. }, _) => {}
            }
        }

        // README decision 5: one connection per (student, user), from its best link.
        let mut links: HashMap<(i64, UserRef), PairLinks> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let Some(user) = self.user_of_row(i) else {
                continue;
            };
            let pair = links.entry((row.student_dcid, user)).or_insert(PairLinks {
                best: i,
                guardian_ids: BTreeSet::new(),
            });
            pair.guardian_ids.insert(row.guardian_id);
            if self.link_rank(i) < self.link_rank(pair.best) {
                pair.best = i;
            }
        }

        let mut connections = Vec::with_capacity(links.len() + self.facts.connections.len());
        for (&(student_dcid, user), pair) in &links {
            connections.push(compact(self.linked_connection(student_dcid, user, pair)));
        }

        // Connections with no valid link: cases C and A, and the removal policy.
        for (&(student_dcid, user_id), connection) in &self.connections {
            if !self.students.contains_key(&student_dcid)
                || links.contains_key(&(student_dcid, UserRef::Existing(user_id)))
            {
                continue;
            }
            let decision = self.unlinked_connection(connection);
            if decision.orphaned {
                report.orphaned.push((student_dcid, user_id));
            }
            connections.push(compact(decision));
        }

        // Form creators with neither a connection nor a valid link.
        let mut form_pairs: Vec<(i64, i64)> = self.forms.iter().copied().collect();
        form_pairs.sort_unstable();
        for (student_dcid, user_id) in form_pairs {
            if !self.students.contains_key(&student_dcid)
                || self.connections.contains_key(&(student_dcid, user_id))
                || links.contains_key(&(student_dcid, UserRef::Existing(user_id)))
            {
                continue;
            }
            match self.parent_portal_account(user_id) {
                Some(account) => {
                    connections.push(compact(self.returning_parent_from_form(
                        student_dcid,
                        user_id,
                        &account,
                    )));
                }
                None => report.form_creator_only.push((student_dcid, user_id)),
            }
        }

        connections.sort_by_key(|c| (c.student_dcid, c.user));

        // README decision 10: exactly the holders of a case C connection.
        let mut incomplete_users: Vec<i64> = connections
            .iter()
            .filter(|c| c.case == ConnectionCase::UnlinkedReturningParent)
            .filter_map(|c| match c.user {
                UserRef::Existing(u) => Some(u),
                UserRef::New(_) => None,
            })
            .collect();
        incomplete_users.sort_unstable();
        incomplete_users.dedup();

        report.email_differs = email_differs.into_iter().collect();
        sort_dedup(&mut report.rows_for_unknown_students);
        sort_dedup(&mut report.links_without_matching_contact);
        sort_dedup(&mut report.unverified_email_matches);
        sort_dedup(&mut report.accounts_without_email);
        sort_dedup(&mut report.orphaned);
        sort_dedup(&mut report.form_creator_only);

        Decisions {
            connections,
            new_users: self.new_users.clone(),
            guardian_links: self.guardian_links.iter().map(|(&u, &g)| (u, g)).collect(),
            incomplete_users,
            report,
        }
    }

    /// Cases D, B1 and B2: the pair has a valid link.
    fn linked_connection(
        &self,
        student_dcid: i64,
        user: UserRef,
        pair: &PairLinks,
    ) -> ConnectionDecision {
        let row = &self.facts.guardian_rows[pair.best];
        let email = self.row_email(pair.best);
        let limits = self.limits_of(pair.best).to_vec();
        let tier = tier_under(&limits);
        let found = self.found[pair.best].expect("a linked pair has a step 2 result");

        let mut verdicts = self.link_verdicts(row, email, &limits);
        verdicts.push(self.step2_verdict(row, email, found, user));

        let gid = row.guardian_id;
        let also = if pair.guardian_ids.len() > 1 {
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
        } else {
            String::new()
        };
        let who = self.describe_user(user);
        let (case, action, why) = match user {
            UserRef::Existing(u) if self.connections.contains_key(&(student_dcid, u)) => (
                ConnectionCase::Synced,
                ConnectionAction::Keep,
                format!(
                    "the connection of student {student_dcid} and {who} exists and guardian account {gid} links them in PowerSchool, so its tier is {} from R4/R5",
                    tier.as_str()
                ),
            ),
            UserRef::Existing(u) if self.forms.contains(&(student_dcid, u)) => (
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
    fn unlinked_connection(&self, connection: &ConnectionFacts) -> ConnectionDecision {
        let student_dcid = connection.student_dcid;
        let user_id = connection.user_id;
        let login = self.users.get(&user_id).and_then(|u| u.email.as_deref());
        let mut verdicts = self.why_no_link(student_dcid, login, Some(user_id));
        let who = self.describe_user(UserRef::Existing(user_id));

        let made_a_form = self.forms.contains(&(student_dcid, user_id));
        let account = self.parent_portal_account(user_id);
        // Case C outranks case A only when the connection exists because of a form.
        if connection.origin == Origin::Form && made_a_form {
            if let Some(account) = account {
                verdicts.push(case_verdict(
                    ConnectionCase::UnlinkedReturningParent,
                    true,
                    format!(
                        "{who} created a form for student {student_dcid} and holds a Parent Portal account ({account}), but PowerSchool has no valid link to this student, so the connection is kept with tier incomplete and the user is flagged incomplete until the link exists."
                    ),
                ));
                return ConnectionDecision {
                    student_dcid,
                    user: UserRef::Existing(user_id),
                    action: ConnectionAction::Keep,
                    case: ConnectionCase::UnlinkedReturningParent,
                    tier: AccessTier::Incomplete,
                    limits: Vec::new(),
                    guardian_id: None,
                    present_in_powerschool: false,
                    orphaned: false,
                    verdicts,
                };
            }
        }

        let kept = connection.tier.as_str();
        let orphaned = connection.origin == Origin::Powerschool;
        let mut tier = connection.tier;
        let mut action = ConnectionAction::Keep;
        let why = match connection.origin {
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
            Origin::Powerschool => {
                let policy = self.facts.policy.on_powerschool_removal;
                match policy {
                    RemovalPolicy::Keep => {}
                    RemovalPolicy::Restrict => {
                        let before = tier;
                        tier = tier.min(AccessTier::Restricted);
                        verdicts.push(RuleVerdict {
                            rule: "removal".into(),
                            passed: false,
                            detail: format!(
                                "on_powerschool_removal = restrict lowers the orphaned connection of student {student_dcid} and {who} from {} to {}.",
                                before.as_str(),
                                tier.as_str()
                            ),
                        });
                    }
                    RemovalPolicy::Revoke => {
                        action = ConnectionAction::Remove;
                        verdicts.push(RuleVerdict {
                            rule: "removal".into(),
                            passed: false,
                            detail: format!(
                                "on_powerschool_removal = revoke removes the orphaned connection of student {student_dcid} and {who}."
                            ),
                        });
                    }
                }
                format!(
                    "an earlier sync created the connection of student {student_dcid} and {who} from PowerSchool and its link has gone, so it is orphaned from PowerSchool; on_powerschool_removal = {}",
                    policy_name(policy)
                )
            }
        };
        verdicts.insert(
            verdicts
                .iter()
                .position(|v| v.rule == "removal")
                .unwrap_or(verdicts.len()),
            case_verdict(
                ConnectionCase::SchoolengageOnly,
                action != ConnectionAction::Remove,
                format!("{why}."),
            ),
        );
        ConnectionDecision {
            student_dcid,
            user: UserRef::Existing(user_id),
            action,
            case: ConnectionCase::SchoolengageOnly,
            tier,
            limits: Vec::new(),
            guardian_id: None,
            present_in_powerschool: false,
            orphaned,
            verdicts,
        }
    }

    /// README decision 9: a returning parent's form becomes a case C connection.
    fn returning_parent_from_form(
        &self,
        student_dcid: i64,
        user_id: i64,
        account: &str,
    ) -> ConnectionDecision {
        let login = self.users.get(&user_id).and_then(|u| u.email.as_deref());
        let mut verdicts = self.why_no_link(student_dcid, login, Some(user_id));
        let who = self.describe_user(UserRef::Existing(user_id));
        verdicts.push(case_verdict(
            ConnectionCase::UnlinkedReturningParent,
            true,
            format!(
                "{who} created a form for student {student_dcid} and holds a Parent Portal account ({account}), but PowerSchool has no valid link to this student, so a connection is created with tier incomplete and the user is flagged incomplete until the link exists."
            ),
        ));
        ConnectionDecision {
            student_dcid,
            user: UserRef::Existing(user_id),
            action: ConnectionAction::Create,
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
    fn parent_portal_account(&self, user_id: i64) -> Option<String> {
        let earlier = self
            .users
            .get(&user_id)
            .and_then(|u| u.facts.powerschool_guardian_id);
        if let Some(gid) = earlier {
            return Some(format!("guardian account {gid}, linked by an earlier sync"));
        }
        self.linked_this_run.get(&user_id).map(|(dcid, gid)| {
            format!("guardian account {gid}, which validly links them to student {dcid} this run")
        })
    }

    // ---------------- verdicts: the reasons, in the district's words ----------------

    /// R1–R5 for a valid link.
    fn link_verdicts(
        &self,
        row: &GuardianRowFacts,
        email: &str,
        limits: &[Limit],
    ) -> Vec<RuleVerdict> {
        let gid = row.guardian_id;
        let dcid = row.student_dcid;
        let contacts = self.contacts_with_email(dcid, email);
        let flags = contact_flags(contacts);
        let mut verdicts = vec![
            RuleVerdict {
                rule: "R1".into(),
                passed: true,
                detail: format!(
                    "The row of guardian account {gid} for student {dcid} is a Parent Portal link, not a Web Access Account."
                ),
            },
            RuleVerdict {
                rule: "R2".into(),
                passed: true,
                detail: format!(
                    "Guardian account {gid} ({email}) is linked to student {dcid} in the guardian PowerQuery (an active Parent Portal account with Data Access)."
                ),
            },
            RuleVerdict {
                rule: "R3".into(),
                passed: true,
                detail: format!(
                    "Contact {} of student {dcid} has the email {email}.",
                    contacts
                        .iter()
                        .map(|c| c.person_id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        ];
        verdicts.push(if limits.contains(&Limit::R4) {
            RuleVerdict {
                rule: "R4".into(),
                passed: false,
                detail: format!(
                    "Not every contact of student {dcid} with the email {email} is decision-making ({flags}), so the tier is at most restricted."
                ),
            }
        } else {
            RuleVerdict {
                rule: "R4".into(),
                passed: true,
                detail: format!(
                    "Every contact of student {dcid} with the email {email} is decision-making ({flags})."
                ),
            }
        });
        let student = &self.students[&dcid];
        verdicts.push(if !student.facts.independent {
            RuleVerdict {
                rule: "R5".into(),
                passed: true,
                detail: format!(
                    "Student {dcid} is not an independent student, so R5 does not limit the link."
                ),
            }
        } else if limits.contains(&Limit::R5) {
            RuleVerdict {
                rule: "R5".into(),
                passed: false,
                detail: format!(
                    "Student {dcid} is independent and {email} is neither the student's orgemail ({}) nor personalemail ({}), so the tier is at most read_only (a parent with a Release of Information).",
                    student.org_email.as_deref().unwrap_or("none"),
                    student.personal_email.as_deref().unwrap_or("none"),
                ),
            }
        } else {
            RuleVerdict {
                rule: "R5".into(),
                passed: true,
                detail: format!(
                    "Student {dcid} is independent and {email} is the student's own {}.",
                    if student.org_email.as_deref() == Some(email) {
                        "orgemail"
                    } else {
                        "personalemail"
                    }
                ),
            }
        });
        verdicts
    }

    fn step2_verdict(
        &self,
        row: &GuardianRowFacts,
        email: &str,
        found: Found,
        user: UserRef,
    ) -> RuleVerdict {
        let gid = row.guardian_id;
        let dcid = row.student_dcid;
        let linked_now = |u: i64| match self.guardian_links.get(&u) {
            Some(g) => format!("; this run links it to guardian account {g}"),
            None => String::new(),
        };
        let (passed, detail) = match found {
            Found::LinkedAccount(u) => {
                let login = self.login_of(u);
                let differs = if self.users[&u].email.as_deref() != Some(email) {
                    format!(
                        "; its login {login} differs from PowerSchool's {email} and is left as it is (SchoolEngage owns the login)"
                    )
                } else {
                    String::new()
                };
                (
                    true,
                    format!(
                        "User {u} ({login}) was linked to guardian account {gid} by an earlier sync{differs}."
                    ),
                )
            }
            Found::FormCreator(u) => (
                true,
                format!(
                    "User {u} ({}) is a verified user with the email {email} who created a form for student {dcid}{}.",
                    self.login_of(u),
                    linked_now(u)
                ),
            ),
            Found::VerifiedEmail(u) => (
                true,
                format!(
                    "User {u} is the verified user with the email {email}{}.",
                    linked_now(u)
                ),
            ),
            Found::NewUser => {
                let linked_to = match user {
                    UserRef::New(i) => self
                        .new_users
                        .get(i)
                        .map(|n| n.powerschool_guardian_id)
                        .unwrap_or(gid),
                    UserRef::Existing(_) => gid,
                };
                (
                    true,
                    format!(
                        "No SchoolEngage user has the email {email}, so a new user is created with it, linked to guardian account {linked_to}."
                    ),
                )
            }
            Found::UnverifiedOnly(u) => (
                false,
                format!(
                    "User {u} has the email {email} but SchoolEngage has not verified it, so guardian account {gid} is not linked to that user and no connection to student {dcid} is made."
                ),
            ),
        };
        RuleVerdict {
            rule: "step2".into(),
            passed,
            detail,
        }
    }

    /// Why (student, email/user) has no valid link: a verdict for every
    /// guardian row of the student that carries the email or the user's
    /// account, or R2 when there is none.
    pub(crate) fn why_no_link(
        &self,
        student_dcid: i64,
        email: Option<&str>,
        user_id: Option<i64>,
    ) -> Vec<RuleVerdict> {
        let account = user_id
            .and_then(|u| self.users.get(&u))
            .and_then(|u| u.facts.powerschool_guardian_id);
        let mut verdicts: BTreeMap<(String, String), bool> = BTreeMap::new();
        for &i in self
            .rows_by_student
            .get(&student_dcid)
            .into_iter()
            .flatten()
        {
            let row = &self.facts.guardian_rows[i];
            let row_email = self.row_emails[i].as_deref();
            let related = (email.is_some() && row_email == email)
                || (account.is_some() && account == Some(row.guardian_id));
            if !related {
                continue;
            }
            let gid = row.guardian_id;
            let shown = row_email.unwrap_or("no usable email");
            let (rule, passed, detail) = match &self.outcomes[i] {
                RowOutcome::WebAccessAccount => (
                    "R1",
                    false,
                    format!(
                        "The row of guardian account {gid} ({shown}) for student {student_dcid} is a link through a Web Access Account, which R1 ignores."
                    ),
                ),
                RowOutcome::StudentNotInSyncSet => (
                    "sync_set",
                    false,
                    format!(
                        "Student {student_dcid} is not in this run's sync set (not enrolled, or a scheduling-year student), so the row of guardian account {gid} is ignored."
                    ),
                ),
                RowOutcome::NoUsableEmail => (
                    "email",
                    false,
                    format!(
                        "Guardian account {gid} has no usable email ({:?}), so its link to student {student_dcid} cannot be checked against contacts or users.",
                        row.email.as_deref().unwrap_or("")
                    ),
                ),
                RowOutcome::NoMatchingContact => (
                    "R3",
                    false,
                    format!(
                        "No contact of student {student_dcid} has the email {shown}, so the link of guardian account {gid} is treated as absent from PowerSchool."
                    ),
                ),
                RowOutcome::Valid { .. } => {
                    let found = self.found[i].expect("step 2 ran for every valid link");
                    let detail = match found {
                        _ if found.user().is_some() && found.user() == user_id => continue,
                        Found::LinkedAccount(u) => format!(
                            "Guardian account {gid} validly links student {student_dcid} with {shown}, but an earlier sync linked that account to user {u} ({}), who gets the connection instead.",
                            self.login_of(u)
                        ),
                        Found::FormCreator(u) | Found::VerifiedEmail(u) => format!(
                            "Guardian account {gid} validly links student {student_dcid} with {shown}, and that link belongs to user {u} ({}).",
                            self.login_of(u)
                        ),
                        Found::UnverifiedOnly(u) => format!(
                            "Guardian account {gid} validly links student {student_dcid} with {shown}, but user {u} has not verified that email in SchoolEngage, so no connection is made."
                        ),
                        Found::NewUser => format!(
                            "Guardian account {gid} validly links student {student_dcid} with {shown}, and that link belongs to the new user the run creates with that email."
                        ),
                    };
                    ("step2", false, detail)
                }
            };
            verdicts.insert((rule.to_string(), detail), passed);
        }
        if verdicts.is_empty() {
            let whose = match (email, account) {
                (Some(e), Some(g)) => format!("the email {e} or to guardian account {g}"),
                (Some(e), None) => format!("the email {e}"),
                (None, Some(g)) => format!("guardian account {g}"),
                (None, None) => "this user (no usable login email)".to_string(),
            };
            verdicts.insert(
                (
                    "R2".to_string(),
                    format!(
                        "No Parent Portal account in the guardian PowerQuery links student {student_dcid} to {whose}."
                    ),
                ),
                false,
            );
        }
        verdicts
            .into_iter()
            .map(|((rule, detail), passed)| RuleVerdict {
                rule,
                passed,
                detail,
            })
            .collect()
    }

    // ---------------- small lookups ----------------

    fn row_email(&self, i: usize) -> &str {
        self.row_emails[i]
            .as_deref()
            .expect("only rows with a usable email get this far")
    }

    /// The user a valid link gives the student to, if any.
    fn user_of_row(&self, i: usize) -> Option<UserRef> {
        match self.found[i]? {
            Found::NewUser => Some(UserRef::New(self.new_user_index[self.row_email(i)])),
            found => found.user().map(UserRef::Existing),
        }
    }

    /// Orders the links of one pair: highest tier first, then the lowest
    /// guardian id, so the chosen link never depends on row order.
    fn link_rank(&self, i: usize) -> (Reverse<AccessTier>, i64, &str) {
        (
            Reverse(tier_under(self.limits_of(i))),
            self.facts.guardian_rows[i].guardian_id,
            self.row_email(i),
        )
    }

    fn limits_of(&self, i: usize) -> &[Limit] {
        match &self.outcomes[i] {
            RowOutcome::Valid { limits } => limits,
            _ => &[],
        }
    }

    fn login_of(&self, user_id: i64) -> String {
        match self.users.get(&user_id) {
            Some(u) => u.email.clone().unwrap_or_else(|| u.facts.email.clone()),
            None => "unknown login".to_string(),
        }
    }

    fn describe_user(&self, user: UserRef) -> String {
        match user {
            UserRef::Existing(u) => format!("user {u} ({})", self.login_of(u)),
            UserRef::New(i) => match self.new_users.get(i) {
                Some(n) => format!("the new user {}", n.email),
                None => "a new user".to_string(),
            },
        }
    }

    // ---------------- for explain ----------------

    pub(crate) fn row_outcome(&self, i: usize) -> (&RowOutcome, Option<&str>, Option<Found>) {
        (
            &self.outcomes[i],
            self.row_emails[i].as_deref(),
            self.found[i],
        )
    }

    pub(crate) fn in_sync_set(&self, student_dcid: i64) -> bool {
        self.students.contains_key(&student_dcid)
    }

    pub(crate) fn parent_portal_account_of(&self, user_id: i64) -> Option<String> {
        self.parent_portal_account(user_id)
    }
}

struct PairLinks {
    /// Row index of the link that gives the highest tier.
    best: usize,
    guardian_ids: BTreeSet<i64>,
}

impl Student<'_> {
    fn is_own_email(&self, email: &str) -> bool {
        self.org_email.as_deref() == Some(email) || self.personal_email.as_deref() == Some(email)
    }
}

fn new_user_key(row: &GuardianRowFacts) -> (i64, i64, &Option<String>, &Option<String>) {
    (
        row.guardian_id,
        row.student_dcid,
        &row.first_name,
        &row.last_name,
    )
}

/// Gives back the spare capacity of a decision's verdicts: a district keeps
/// every decision (with its prose) until the plan is made, and `format!`
/// leaves up to half of each detail's buffer unused.
fn compact(mut decision: ConnectionDecision) -> ConnectionDecision {
    for v in &mut decision.verdicts {
        v.detail.shrink_to_fit();
    }
    decision.verdicts.shrink_to_fit();
    decision
}

fn case_verdict(case: ConnectionCase, passed: bool, why: String) -> RuleVerdict {
    RuleVerdict {
        rule: "case".into(),
        passed,
        detail: format!("Case {} ({}): {why}", case.letter(), case.as_str()),
    }
}

fn policy_name(policy: RemovalPolicy) -> &'static str {
    match policy {
        RemovalPolicy::Keep => "keep",
        RemovalPolicy::Restrict => "restrict",
        RemovalPolicy::Revoke => "revoke",
    }
}

fn contact_flags(contacts: &[&ContactFacts]) -> String {
    contacts
        .iter()
        .map(|c| {
            format!(
                "contact {}: isdecisionmaking = {}",
                c.person_id,
                u8::from(c.is_decision_making)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sort_dedup<T: Ord>(list: &mut Vec<T>) {
    list.sort_unstable();
    list.dedup();
}

// ---------------- indexes ----------------
//
// Duplicate keys are bad data, but they must still give one answer whatever
// the row order, so each index keeps a value-ordered choice.

fn index_students(students: &[StudentFacts]) -> HashMap<i64, Student<'_>> {
    let mut index: HashMap<i64, Student> = HashMap::with_capacity(students.len());
    // An independent duplicate wins: R5 then limits rather than widens.
    let key = |s: &StudentFacts| {
        (
            !s.independent,
            s.org_email.clone(),
            s.personal_email.clone(),
        )
    };
    for s in students {
        let entry = Student {
            facts: s,
            org_email: normalise_optional(s.org_email.as_deref()),
            personal_email: normalise_optional(s.personal_email.as_deref()),
        };
        match index.get(&s.dcid) {
            Some(kept) if key(kept.facts) <= key(s) => {}
            _ => {
                index.insert(s.dcid, entry);
            }
        }
    }
    index
}

fn index_contacts(contacts: &[ContactFacts]) -> HashMap<i64, HashMap<String, Vec<&ContactFacts>>> {
    let mut index: HashMap<i64, HashMap<String, Vec<&ContactFacts>>> = HashMap::new();
    for c in contacts {
        if let Some(email) = normalise_optional(c.email.as_deref()) {
            index
                .entry(c.student_dcid)
                .or_default()
                .entry(email)
                .or_default()
                .push(c);
        }
    }
    for by_email in index.values_mut() {
        for list in by_email.values_mut() {
            list.sort_by_key(|c| (c.person_id, c.is_decision_making, c.email.clone()));
        }
    }
    index
}

fn index_users(users: &[UserFacts]) -> HashMap<i64, User<'_>> {
    let mut index: HashMap<i64, User> = HashMap::with_capacity(users.len());
    let key = |u: &UserFacts| {
        (
            u.email.clone(),
            !u.email_verified,
            u.powerschool_guardian_id,
            u.incomplete,
        )
    };
    for u in users {
        match index.get(&u.user_id) {
            Some(kept) if key(kept.facts) <= key(u) => {}
            _ => {
                index.insert(
                    u.user_id,
                    User {
                        facts: u,
                        email: normalise_email(&u.email),
                    },
                );
            }
        }
    }
    index
}

fn index_connections(connections: &[ConnectionFacts]) -> HashMap<(i64, i64), &ConnectionFacts> {
    let mut index: HashMap<(i64, i64), &ConnectionFacts> =
        HashMap::with_capacity(connections.len());
    // An admin duplicate wins: it is never orphaned or revoked.
    let key = |c: &ConnectionFacts| (c.origin, Reverse(c.tier), c.case, c.limits.clone());
    for c in connections {
        let slot = index.entry((c.student_dcid, c.user_id)).or_insert(c);
        if key(c) < key(slot) {
            *slot = c;
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_facts::*;
    use crate::rules::{FormFacts, Policy};
    use AccessTier::*;

    const MEI: &str = "mei.lee@example.com";

    /// The example world of shared/worlds: one independent student, one parent.
    fn example_world() -> DistrictFacts {
        DistrictFacts {
            students: vec![independent_student(5001, "ava.lee@students.example.org")],
            contacts: vec![contact(5001, 801, MEI, true)],
            guardian_rows: vec![row(9001, 5001, "Mei.Lee@example.com")],
            users: vec![user(1, MEI)],
            connections: vec![connection(5001, 1, Full, Origin::Admin)],
            forms: vec![form(5001, 1)],
            policy: Policy::default(),
        }
    }

    /// A plain family: student 5001, decision-making contact, one account.
    fn family() -> DistrictFacts {
        DistrictFacts {
            students: vec![student(5001)],
            contacts: vec![contact(5001, 801, MEI, true)],
            guardian_rows: vec![row(9001, 5001, MEI)],
            ..DistrictFacts::default()
        }
    }

    fn with_policy(mut facts: DistrictFacts, policy: RemovalPolicy) -> DistrictFacts {
        facts.policy.on_powerschool_removal = policy;
        facts
    }

    #[test]
    fn tier_under_takes_the_lowest_ceiling() {
        assert_eq!(tier_under(&[]), Full);
        assert_eq!(tier_under(&[Limit::R4]), Restricted);
        assert_eq!(tier_under(&[Limit::R5]), ReadOnly);
        assert_eq!(tier_under(&[Limit::R4, Limit::R5]), ReadOnly);
    }

    #[test]
    fn example_world_independent_parent_is_read_only_and_admin_connection_is_synced() {
        let d = decide(&example_world());
        assert_eq!(d.connections.len(), 1);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::Synced);
        assert_eq!(c.action, ConnectionAction::Keep);
        assert_eq!(c.tier, ReadOnly);
        assert_eq!(c.limits, vec![Limit::R5]);
        assert_eq!(c.guardian_id, Some(9001));
        assert!(c.present_in_powerschool);
        assert!(!c.orphaned);
        assert!(d.new_users.is_empty());
        assert!(d.incomplete_users.is_empty());
        // Found by email with no earlier link: the run links the account.
        assert_eq!(d.guardian_links, vec![(1, 9001)]);
        let rules: Vec<&str> = c.verdicts.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(rules, ["R1", "R2", "R3", "R4", "R5", "step2", "case"]);
        let r5 = verdict(c, "R5");
        assert!(!r5.passed);
        assert!(r5.detail.contains("5001") && r5.detail.contains(MEI));
        assert!(r5.detail.contains("ava.lee@students.example.org"));
        assert!(verdict(c, "R3").detail.contains("801"));
        assert!(verdict(c, "case").detail.starts_with("Case D (synced)"));
    }

    #[test]
    fn r5_holds_when_the_account_is_the_students_own_email() {
        let mut facts = example_world();
        facts.contacts = vec![contact(5001, 801, "ava.lee@students.example.org", true)];
        facts.guardian_rows = vec![row(9001, 5001, " Ava.Lee@Students.Example.org")];
        facts.connections.clear();
        facts.forms.clear();
        facts.users.clear();
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::New(0));
        assert_eq!((c.tier, c.limits.clone()), (Full, vec![]));
        assert!(verdict(c, "R5").passed);
    }

    #[test]
    fn r4_and_r5_together_give_read_only_with_both_limits() {
        let facts = DistrictFacts {
            students: vec![independent_student(5001, "ava@students.example.org")],
            contacts: vec![contact(5001, 801, MEI, false)],
            guardian_rows: vec![row(9001, 5001, MEI)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::New(0));
        assert_eq!(c.tier, ReadOnly);
        assert_eq!(c.limits, vec![Limit::R4, Limit::R5]);
        assert!(!verdict(c, "R4").passed);
        assert!(!verdict(c, "R5").passed);
        assert_eq!(c.case, ConnectionCase::Created);
    }

    #[test]
    fn web_access_row_is_ignored_entirely() {
        let mut facts = family();
        facts.guardian_rows = vec![web_access_row(9001, 5001, MEI)];
        let d = decide(&facts);
        assert!(d.connections.is_empty());
        assert!(d.new_users.is_empty());
        assert_eq!(d.report.web_access_rows_ignored, 1);
        assert!(d.report.links_without_matching_contact.is_empty());

        // Beside a normal row of another account, only the normal one counts.
        facts
            .contacts
            .push(contact(5001, 802, "dad@example.com", true));
        facts.guardian_rows.push(row(9002, 5001, "dad@example.com"));
        let d = decide(&facts);
        assert_eq!(d.connections.len(), 1);
        assert_eq!(d.new_users.len(), 1);
        assert_eq!(d.new_users[0].email, "dad@example.com");
        assert_eq!(d.report.web_access_rows_ignored, 1);
    }

    #[test]
    fn web_access_row_for_a_student_outside_the_sync_set_is_still_r1() {
        let mut facts = family();
        facts.guardian_rows = vec![web_access_row(9001, 7777, MEI)];
        let d = decide(&facts);
        assert_eq!(d.report.web_access_rows_ignored, 1);
        assert!(d.report.rows_for_unknown_students.is_empty());
    }

    #[test]
    fn email_case_and_whitespace_differences_match() {
        let facts = DistrictFacts {
            students: vec![student(5001)],
            contacts: vec![contact(5001, 801, "  MEI.lee@Example.com ", true)],
            guardian_rows: vec![row(9001, 5001, "mei.LEE@example.COM\t")],
            users: vec![user(1, " Mei.Lee@example.com")],
            connections: vec![connection(5001, 1, Restricted, Origin::Powerschool)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::Synced);
        assert_eq!(c.tier, Full);
        assert!(d.new_users.is_empty());
        assert!(d.report.email_differs.is_empty());
    }

    #[test]
    fn malformed_guardian_email_links_nothing_and_is_listed() {
        for bad in ["mei.lee@example", "mei lee@example.com", "", "   "] {
            let mut facts = family();
            facts.guardian_rows = vec![row(9001, 5001, bad)];
            let d = decide(&facts);
            assert!(d.connections.is_empty(), "{bad:?}");
            assert!(d.new_users.is_empty(), "{bad:?}");
            assert_eq!(
                d.report.accounts_without_email,
                vec![(9001, 5001)],
                "{bad:?}"
            );
        }
        let mut facts = family();
        facts.guardian_rows[0].email = None;
        assert_eq!(
            decide(&facts).report.accounts_without_email,
            vec![(9001, 5001)]
        );
    }

    #[test]
    fn malformed_contact_email_matches_nothing() {
        let mut facts = family();
        facts.contacts = vec![contact(5001, 801, "mei.lee@@example.com", true)];
        facts.guardian_rows = vec![row(9001, 5001, "mei.lee@@example.com")];
        let d = decide(&facts);
        assert!(d.connections.is_empty());
        assert_eq!(d.report.accounts_without_email, vec![(9001, 5001)]);
    }

    #[test]
    fn r3_without_a_matching_contact_the_link_is_absent() {
        let mut facts = family();
        facts.contacts = vec![contact(5001, 801, "someone.else@example.com", true)];
        facts.users = vec![user(1, MEI)];
        facts.connections = vec![connection(5001, 1, Full, Origin::Admin)];
        let d = decide(&facts);
        assert_eq!(
            d.report.links_without_matching_contact,
            vec![(9001, 5001, MEI.to_string())]
        );
        assert!(d.new_users.is_empty());
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
        assert_eq!(c.tier, Full);
        let r3 = verdict(c, "R3");
        assert!(!r3.passed);
        assert!(r3
            .detail
            .contains("No contact of student 5001 has the email mei.lee@example.com"));
    }

    #[test]
    fn two_contacts_with_one_email_and_mixed_flags_is_restricted() {
        let mut facts = family();
        facts.contacts = vec![
            contact(5001, 801, MEI, true),
            contact(5001, 802, "MEI.LEE@example.com", false),
        ];
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::New(0));
        assert_eq!(c.tier, Restricted);
        assert_eq!(c.limits, vec![Limit::R4]);
        let r4 = verdict(c, "R4");
        assert!(!r4.passed);
        assert!(r4.detail.contains("contact 801: isdecisionmaking = 1"));
        assert!(r4.detail.contains("contact 802: isdecisionmaking = 0"));
    }

    #[test]
    fn siblings_sharing_a_guardian_get_one_user_and_two_connections() {
        let facts = DistrictFacts {
            students: vec![student(5001), student(5002)],
            contacts: vec![contact(5001, 801, MEI, true), contact(5002, 801, MEI, true)],
            guardian_rows: vec![row(9001, 5002, MEI), row(9001, 5001, MEI)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        assert_eq!(d.new_users.len(), 1);
        assert_eq!(d.new_users[0].email, MEI);
        assert_eq!(d.new_users[0].powerschool_guardian_id, 9001);
        let students: Vec<(i64, UserRef)> = d
            .connections
            .iter()
            .map(|c| (c.student_dcid, c.user))
            .collect();
        assert_eq!(
            students,
            vec![(5001, UserRef::New(0)), (5002, UserRef::New(0))]
        );
        assert!(d
            .connections
            .iter()
            .all(|c| c.case == ConnectionCase::Created));
    }

    #[test]
    fn unverified_user_with_the_guardians_email_gets_no_connection_and_is_reported() {
        let mut facts = family();
        facts.users = vec![unverified_user(1, MEI)];
        let d = decide(&facts);
        assert!(d.connections.is_empty());
        assert!(d.new_users.is_empty(), "no second user for the same email");
        assert!(d.guardian_links.is_empty());
        assert_eq!(
            d.report.unverified_email_matches,
            vec![(9001, 5001, MEI.to_string())]
        );
    }

    #[test]
    fn unverified_user_already_linked_by_guardian_id_is_found() {
        let mut facts = family();
        facts.users = vec![UserFacts {
            email_verified: false,
            ..linked_user(1, MEI, 9001)
        }];
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::Created);
        assert!(d.report.unverified_email_matches.is_empty());
    }

    fn orphan() -> DistrictFacts {
        DistrictFacts {
            students: vec![student(5001)],
            users: vec![linked_user(1, MEI, 9001)],
            connections: vec![connection(5001, 1, Full, Origin::Powerschool)],
            ..DistrictFacts::default()
        }
    }

    #[test]
    fn orphaned_powerschool_connection_is_kept_by_default() {
        let d = decide(&orphan());
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
        assert_eq!(c.action, ConnectionAction::Keep);
        assert_eq!(c.tier, Full);
        assert!(c.limits.is_empty());
        assert!(c.orphaned);
        assert!(!c.present_in_powerschool);
        assert_eq!(d.report.orphaned, vec![(5001, 1)]);
        assert!(c.verdicts.iter().all(|v| v.rule != "removal"));
        assert!(verdict(c, "R2").detail.contains("9001"));
    }

    #[test]
    fn orphaned_powerschool_connection_is_restricted_under_restrict() {
        let d = decide(&with_policy(orphan(), RemovalPolicy::Restrict));
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
        assert_eq!(c.action, ConnectionAction::Keep);
        assert_eq!(c.tier, Restricted);
        assert!(c.orphaned);
        assert!(verdict(c, "removal")
            .detail
            .contains("from full to restricted"));
        assert_eq!(d.report.orphaned, vec![(5001, 1)]);

        // Never raises a lower tier.
        let mut facts = with_policy(orphan(), RemovalPolicy::Restrict);
        facts.connections[0].tier = ReadOnly;
        let d = decide(&facts);
        assert_eq!(decision_for(&d, 5001, UserRef::Existing(1)).tier, ReadOnly);
    }

    #[test]
    fn orphaned_powerschool_connection_is_removed_under_revoke() {
        let d = decide(&with_policy(orphan(), RemovalPolicy::Revoke));
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.action, ConnectionAction::Remove);
        assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
        assert!(c.orphaned);
        assert!(!verdict(c, "removal").passed);
        assert_eq!(d.report.orphaned, vec![(5001, 1)]);
    }

    #[test]
    fn removal_policy_never_touches_admin_or_form_connections() {
        for origin in [Origin::Admin, Origin::Form] {
            let mut facts = with_policy(orphan(), RemovalPolicy::Revoke);
            facts.connections[0].origin = origin;
            let d = decide(&facts);
            let c = decision_for(&d, 5001, UserRef::Existing(1));
            assert_eq!(c.action, ConnectionAction::Keep, "{origin:?}");
            assert!(!c.orphaned);
            assert!(d.report.orphaned.is_empty());
        }
    }

    #[test]
    fn admin_connection_without_link_keeps_its_tier_as_case_a() {
        // Even a returning parent with a form: admin connections are never case C.
        let facts = DistrictFacts {
            students: vec![student(5001)],
            users: vec![linked_user(1, MEI, 9001)],
            connections: vec![connection(5001, 1, Restricted, Origin::Admin)],
            forms: vec![form(5001, 1)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
        assert_eq!(c.tier, Restricted);
        assert!(c.limits.is_empty());
        assert!(!c.orphaned);
        assert!(d.incomplete_users.is_empty());
        assert!(verdict(c, "case").detail.contains("administrator"));
    }

    /// Mei holds a Parent Portal account through sibling 5002, created a
    /// form for 5001, and PowerSchool does not link her to 5001.
    fn returning_parent() -> DistrictFacts {
        DistrictFacts {
            students: vec![student(5001), student(5002)],
            contacts: vec![contact(5002, 801, MEI, true)],
            guardian_rows: vec![row(9001, 5002, MEI)],
            users: vec![UserFacts {
                incomplete: false,
                ..user(1, MEI)
            }],
            connections: vec![connection(5001, 1, Full, Origin::Form)],
            forms: vec![form(5001, 1)],
            ..DistrictFacts::default()
        }
    }

    #[test]
    fn form_connection_of_a_returning_parent_is_case_c_and_user_incomplete() {
        let d = decide(&returning_parent());
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::UnlinkedReturningParent);
        assert_eq!(c.action, ConnectionAction::Keep);
        assert_eq!(c.tier, Incomplete);
        assert!(c.limits.is_empty());
        assert!(!c.present_in_powerschool);
        assert_eq!(d.incomplete_users, vec![1]);
        assert!(verdict(c, "case").detail.contains("5002"));
        // The sibling link is case B1? No: no form for 5002, so B2.
        let sibling = decision_for(&d, 5002, UserRef::Existing(1));
        assert_eq!(sibling.case, ConnectionCase::Created);
    }

    #[test]
    fn returning_parent_by_an_earlier_guardian_id_is_case_c() {
        let facts = DistrictFacts {
            students: vec![student(5001)],
            users: vec![linked_user(1, MEI, 9001)],
            forms: vec![form(5001, 1)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::UnlinkedReturningParent);
        assert_eq!(c.action, ConnectionAction::Create);
        assert_eq!(c.tier, Incomplete);
        assert_eq!(d.incomplete_users, vec![1]);
        assert!(verdict(c, "case").detail.contains("guardian account 9001"));
    }

    #[test]
    fn form_connection_without_parent_portal_account_is_case_a() {
        let mut facts = returning_parent();
        facts.guardian_rows.clear();
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
        assert_eq!(c.tier, Full);
        assert!(d.incomplete_users.is_empty());
    }

    #[test]
    fn form_creator_without_parent_portal_account_changes_nothing() {
        let facts = DistrictFacts {
            students: vec![student(5001)],
            users: vec![user(1, MEI)],
            forms: vec![form(5001, 1), form(5001, 1)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        assert!(d.connections.is_empty());
        assert_eq!(d.report.form_creator_only, vec![(5001, 1)]);
        assert!(d.incomplete_users.is_empty());
    }

    #[test]
    fn b1_form_creator_is_matched_and_linked() {
        let mut facts = family();
        facts.users = vec![user(1, MEI)];
        facts.forms = vec![form(5001, 1)];
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::MatchedFormCreator);
        assert_eq!(c.action, ConnectionAction::Create);
        assert_eq!(c.tier, Full);
        assert_eq!(d.guardian_links, vec![(1, 9001)]);
        assert!(verdict(c, "step2")
            .detail
            .contains("created a form for student 5001"));
        assert!(d.new_users.is_empty());
        assert!(d.report.form_creator_only.is_empty());
    }

    #[test]
    fn b2_two_accounts_sharing_an_email_create_exactly_one_user() {
        let facts = DistrictFacts {
            students: vec![student(5001), student(5002)],
            contacts: vec![contact(5001, 801, MEI, true), contact(5002, 802, MEI, true)],
            guardian_rows: vec![
                GuardianRowFacts {
                    first_name: Some("Later".into()),
                    ..row(9002, 5001, MEI)
                },
                row(9001, 5002, " Mei.Lee@Example.com"),
                row(9002, 5002, MEI),
            ],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        assert_eq!(d.new_users.len(), 1);
        assert_eq!(
            d.new_users[0],
            NewUser {
                email: MEI.into(),
                first_name: Some("Mei".into()),
                last_name: Some("Lee".into()),
                powerschool_guardian_id: 9001,
            }
        );
        assert_eq!(d.connections.len(), 2);
        assert!(d.connections.iter().all(|c| c.user == UserRef::New(0)));
        assert!(d
            .connections
            .iter()
            .all(|c| c.case == ConnectionCase::Created));
        // Both accounts link student 5002: one connection, from the lower id.
        let c = decision_for(&d, 5002, UserRef::New(0));
        assert_eq!(c.guardian_id, Some(9001));
        assert!(verdict(c, "case").detail.contains("9002 also link"));
    }

    #[test]
    fn d_existing_full_connection_is_lowered_by_r4_and_r5() {
        // Case D: "tier from R4/R5" also lowers an existing connection.
        let facts = DistrictFacts {
            students: vec![independent_student(5001, "ava@students.example.org")],
            contacts: vec![contact(5001, 801, MEI, false)],
            guardian_rows: vec![row(9001, 5001, MEI)],
            users: vec![user(1, MEI)],
            connections: vec![connection(5001, 1, Full, Origin::Powerschool)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::Synced);
        assert_eq!(c.action, ConnectionAction::Keep);
        assert_eq!(c.tier, ReadOnly);
        assert_eq!(c.limits, vec![Limit::R4, Limit::R5]);
        assert!(c.present_in_powerschool);
        assert!(!c.orphaned);
        assert!(d.report.orphaned.is_empty());
    }

    #[test]
    fn step2_3_verified_user_with_the_email_is_used_and_linked() {
        // Step 2.3: no earlier link, no form, a verified user with the email:
        // that user gets the connection (case B2) and no new user is made.
        let mut facts = family();
        facts.users = vec![user(7, " MEI.Lee@example.com")];
        let d = decide(&facts);
        assert!(d.new_users.is_empty());
        let c = decision_for(&d, 5001, UserRef::Existing(7));
        assert_eq!(c.case, ConnectionCase::Created);
        assert_eq!(c.action, ConnectionAction::Create);
        assert_eq!(c.tier, Full);
        assert_eq!(c.guardian_id, Some(9001));
        assert_eq!(d.guardian_links, vec![(7, 9001)]);
        assert!(verdict(c, "step2").detail.contains("verified user"));
    }

    #[test]
    fn unverified_form_creator_is_not_matched_as_b1() {
        // Step 2.2 uses only verified users: an unverified form creator with
        // the account's email is reported, gets no connection and no link.
        let mut facts = family();
        facts.users = vec![unverified_user(1, MEI)];
        facts.forms = vec![form(5001, 1)];
        let d = decide(&facts);
        assert!(d.connections.is_empty(), "{:#?}", d.connections);
        assert!(d.new_users.is_empty());
        assert!(d.guardian_links.is_empty());
        assert_eq!(
            d.report.unverified_email_matches,
            vec![(9001, 5001, MEI.to_string())]
        );
        assert_eq!(d.report.form_creator_only, vec![(5001, 1)]);
    }

    #[test]
    fn existing_user_linked_by_guardian_id_wins_over_email() {
        let mut facts = family();
        facts.users = vec![linked_user(1, "mei@old.example.com", 9001), user(2, MEI)];
        let d = decide(&facts);
        assert_eq!(d.connections.len(), 1);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::Created);
        assert!(verdict(c, "step2").detail.contains("earlier sync"));
        assert_eq!(
            d.report.email_differs,
            vec![(1, "mei@old.example.com".to_string(), MEI.to_string())]
        );
        assert!(d.guardian_links.is_empty(), "user 1 is already linked");
    }

    #[test]
    fn user_with_another_guardian_id_is_not_relinked() {
        let mut facts = family();
        facts.users = vec![linked_user(1, MEI, 8000)];
        let d = decide(&facts);
        assert_eq!(
            decision_for(&d, 5001, UserRef::Existing(1)).case,
            ConnectionCase::Created
        );
        assert!(d.guardian_links.is_empty());
    }

    #[test]
    fn several_links_for_one_pair_keep_the_best_tier() {
        let facts = DistrictFacts {
            students: vec![student(5001)],
            contacts: vec![
                contact(5001, 801, "a@example.com", false),
                contact(5001, 802, "b@example.com", true),
            ],
            guardian_rows: vec![
                row(9001, 5001, "a@example.com"),
                row(9002, 5001, "b@example.com"),
            ],
            users: vec![linked_user(1, "b@example.com", 9001)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        assert_eq!(d.connections.len(), 1);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.tier, Full);
        assert!(c.limits.is_empty());
        assert_eq!(c.guardian_id, Some(9002));
    }

    #[test]
    fn incomplete_flag_is_cleared_once_the_link_exists() {
        let mut facts = family();
        facts.users = vec![UserFacts {
            incomplete: true,
            ..user(1, MEI)
        }];
        facts.connections = vec![connection(5001, 1, Incomplete, Origin::Form)];
        facts.forms = vec![form(5001, 1)];
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(1));
        assert_eq!(c.case, ConnectionCase::Synced);
        assert_eq!(c.tier, Full);
        assert!(d.incomplete_users.is_empty());
    }

    #[test]
    fn students_outside_the_sync_set_are_counted_and_left_untouched() {
        let facts = DistrictFacts {
            students: vec![student(5001)],
            contacts: vec![contact(6000, 801, MEI, true)],
            guardian_rows: vec![row(9001, 6000, MEI)],
            users: vec![user(1, MEI)],
            connections: vec![connection(6000, 1, Full, Origin::Powerschool)],
            forms: vec![form(6000, 1)],
            policy: Policy {
                on_powerschool_removal: RemovalPolicy::Revoke,
            },
        };
        let d = decide(&facts);
        assert!(d.connections.is_empty());
        assert!(d.new_users.is_empty());
        assert_eq!(d.report.rows_for_unknown_students, vec![(9001, 6000)]);
        assert!(d.report.orphaned.is_empty());
        assert!(d.report.form_creator_only.is_empty());
    }

    #[test]
    fn connections_to_unknown_users_are_case_a() {
        let facts = DistrictFacts {
            students: vec![student(5001)],
            connections: vec![connection(5001, 42, ReadOnly, Origin::Form)],
            forms: vec![form(5001, 42)],
            ..DistrictFacts::default()
        };
        let d = decide(&facts);
        let c = decision_for(&d, 5001, UserRef::Existing(42));
        assert_eq!(c.case, ConnectionCase::SchoolengageOnly);
        assert_eq!(c.tier, ReadOnly);
    }

    /// Everything at once, to check that row order never matters.
    fn busy_district() -> DistrictFacts {
        DistrictFacts {
            students: vec![
                student(5001),
                independent_student(5002, "kid@students.example.org"),
                student(5003),
            ],
            contacts: vec![
                contact(5001, 801, MEI, true),
                contact(5001, 802, "Dad@Example.com", false),
                contact(5002, 801, MEI, true),
                contact(5002, 803, "dad@example.com", true),
                contact(5003, 804, "kid@students.example.org", true),
            ],
            guardian_rows: vec![
                row(9001, 5001, MEI),
                row(9002, 5001, "dad@example.com"),
                row(9002, 5002, "DAD@example.com"),
                row(9001, 5002, MEI),
                web_access_row(9003, 5003, "kid@students.example.org"),
                row(9004, 5003, "nobody@example.com"),
                row(9005, 7000, "gone@example.com"),
            ],
            users: vec![
                user(1, MEI),
                unverified_user(2, "dad@example.com"),
                linked_user(3, "gran@example.com", 9009),
            ],
            connections: vec![
                connection(5001, 1, Full, Origin::Admin),
                connection(5003, 3, Full, Origin::Form),
                connection(5003, 1, ReadOnly, Origin::Powerschool),
            ],
            forms: vec![form(5003, 3), form(5002, 1), form(5001, 3)],
            policy: Policy {
                on_powerschool_removal: RemovalPolicy::Restrict,
            },
        }
    }

    #[test]
    fn decisions_do_not_depend_on_row_order() {
        let facts = busy_district();
        let expected = decide(&facts);
        let mut reversed = facts.clone();
        reversed.students.reverse();
        reversed.contacts.reverse();
        reversed.guardian_rows.reverse();
        reversed.users.reverse();
        reversed.connections.reverse();
        reversed.forms.reverse();
        assert_eq!(decide(&reversed), expected);
        let mut rotated = facts.clone();
        rotated.guardian_rows.rotate_left(3);
        rotated.contacts.rotate_left(2);
        assert_eq!(decide(&rotated), expected);
    }

    #[test]
    fn busy_district_decides_every_case() {
        let d = decide(&busy_district());
        let summary: Vec<(i64, UserRef, ConnectionCase, AccessTier, ConnectionAction)> = d
            .connections
            .iter()
            .map(|c| (c.student_dcid, c.user, c.case, c.tier, c.action))
            .collect();
        use ConnectionAction::*;
        use ConnectionCase::*;
        assert_eq!(
            summary,
            vec![
                (5001, UserRef::Existing(1), Synced, Full, Keep),
                (
                    5001,
                    UserRef::Existing(3),
                    UnlinkedReturningParent,
                    Incomplete,
                    Create
                ),
                (
                    5002,
                    UserRef::Existing(1),
                    MatchedFormCreator,
                    ReadOnly,
                    Create
                ),
                (5003, UserRef::Existing(1), SchoolengageOnly, ReadOnly, Keep),
                (
                    5003,
                    UserRef::Existing(3),
                    UnlinkedReturningParent,
                    Incomplete,
                    Keep
                ),
            ]
        );
        assert_eq!(d.incomplete_users, vec![3]);
        assert_eq!(d.report.web_access_rows_ignored, 1);
        assert_eq!(d.report.rows_for_unknown_students, vec![(9005, 7000)]);
        assert_eq!(
            d.report.links_without_matching_contact,
            vec![(9004, 5003, "nobody@example.com".to_string())]
        );
        assert_eq!(
            d.report.unverified_email_matches,
            vec![
                (9002, 5001, "dad@example.com".to_string()),
                (9002, 5002, "dad@example.com".to_string())
            ]
        );
        assert_eq!(d.report.orphaned, vec![(5003, 1)]);
        assert!(d.new_users.is_empty());
        assert_eq!(d.guardian_links, vec![(1, 9001)]);
        let _unused: Vec<FormFacts> = Vec::new();
    }

    /// A district of the size the brief names: 150,000 students, ~225,000
    /// guardian rows, ~300,000 contacts. Run with
    /// `cargo test --release --lib large_district -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn large_district_is_decided_quickly() {
        let mut facts = DistrictFacts::default();
        for s in 0..150_000i64 {
            let dcid = 100_000 + s;
            let family = s / 2; // siblings share a family
            facts.students.push(StudentFacts {
                dcid,
                independent: s % 50 == 0,
                org_email: Some(format!("kid{s}@students.example.org")),
                personal_email: None,
            });
            let mother = format!("mother{family}@example.com");
            let father = format!("Father{family}@Example.com ");
            facts
                .contacts
                .push(contact(dcid, 3 * family, &mother, true));
            facts
                .contacts
                .push(contact(dcid, 3 * family + 1, &father, s % 7 != 0));
            facts
                .guardian_rows
                .push(row(1_000_000 + 2 * family, dcid, &mother));
            if s % 2 == 0 {
                facts
                    .guardian_rows
                    .push(row(1_000_001 + 2 * family, dcid, &father));
                facts
                    .guardian_rows
                    .push(row(1_000_001 + 2 * family, dcid + 1, &father));
            }
            if s % 3 == 0 {
                facts.users.push(user(family, &mother));
                facts
                    .connections
                    .push(connection(dcid, family, Full, Origin::Powerschool));
                facts.forms.push(form(dcid, family));
            }
        }
        let started = std::time::Instant::now();
        let engine = Engine::new(&facts);
        println!("engine built in {:?}", started.elapsed());
        let d = engine.decisions();
        let elapsed = started.elapsed();
        println!(
            "{} students, {} rows, {} contacts: {} decisions, {} new users in {elapsed:?}",
            facts.students.len(),
            facts.guardian_rows.len(),
            facts.contacts.len(),
            d.connections.len(),
            d.new_users.len()
        );
        assert!(d.connections.len() >= 150_000);
        if !cfg!(debug_assertions) {
            assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
        }
    }
}
