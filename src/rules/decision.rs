//! The decision table of access-rules.md, steps 1–3, with the binding choices
//! of decisions.md: every row of the table lives here and nowhere else, so the
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
    /// decisions.md §11: ignored and counted.
    StudentNotInSyncSet,
    /// decisions.md §2: the account's email is empty or malformed.
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

        // decisions.md §5: one connection per (student, user), from its best link.
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
            connections.push(self.linked_connection(student_dcid, user, pair));
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
            connections.push(decision);
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
                    connections.push(self.returning_parent_from_form(
                        student_dcid,
                        user_id,
                        &account,
                    ));
                }
                None => report.form_creator_only.push((student_dcid, user_id)),
            }
        }

        connections.sort_by_key(|c| (c.student_dcid, c.user));

        // decisions.md §10: exactly the holders of a case C connection.
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

    /// decisions.md §9: a returning parent's form becomes a case C connection.
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

    /// decisions.md §8: the user holds a Parent Portal account when a valid
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
