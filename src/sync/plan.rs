//! The plan of one run: every create, update and removal it would make,
//! computed in memory from the fetched snapshot and the loaded state. Nothing
//! is written here, so `plan` can be shown, stored or thrown away, and a row
//! whose synced fields are unchanged simply never appears in it.

use crate::config::SyncSettings;
use crate::powerschool::DistrictSnapshot;
use crate::rules::{
    self, eligibility, AccessTier, ConnectionAction, ConnectionCase, ConnectionDecision,
    ConnectionFacts, ContactFacts, Decisions, DistrictFacts, FormFacts, GuardianRowFacts, Origin,
    Policy, StudentFacts, UserFacts, UserRef,
};
use crate::store::state::{
    ConnectionRow, ContactRow, CurrentState, GuardianAccountRow, StudentRow,
};
use crate::store::write::{NewUserRow, ProblemRow, UserUpdate};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Creates, updates and removals of one kind of PowerSchool-owned row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowChanges<T, K> {
    pub create: Vec<T>,
    pub update: Vec<T>,
    pub remove: Vec<K>,
    pub unchanged: u64,
}

impl<T, K> Default for RowChanges<T, K> {
    fn default() -> Self {
        RowChanges {
            create: Vec::new(),
            update: Vec::new(),
            remove: Vec::new(),
            unchanged: 0,
        }
    }
}

impl<T, K> RowChanges<T, K> {
    pub fn counts(&self) -> KindCounts {
        KindCounts {
            created: self.create.len() as u64,
            updated: self.update.len() as u64,
            removed: self.remove.len() as u64,
            unchanged: self.unchanged,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionChangeKind {
    Create,
    Update,
    Remove,
}

/// One connection the run writes, with the decision behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionChange {
    pub kind: ConnectionChangeKind,
    pub before: Option<ConnectionRow>,
    pub user: UserRef,
    pub origin: Origin,
    pub decision: ConnectionDecision,
}

impl ConnectionChange {
    pub fn tier_before(&self) -> Option<AccessTier> {
        self.before.as_ref().map(|b| b.tier)
    }
    pub fn tier_after(&self) -> Option<AccessTier> {
        match self.kind {
            ConnectionChangeKind::Remove => None,
            _ => Some(self.decision.tier),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionCounts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub tier_up: u64,
    pub tier_down: u64,
    pub orphaned: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchCounts {
    pub guardians: u64,
    pub students: u64,
    pub independent_students: u64,
    pub contacts: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanCounts {
    pub fetched: FetchCounts,
    pub students: KindCounts,
    pub contacts: KindCounts,
    pub guardian_accounts: KindCounts,
    pub users: KindCounts,
    pub connections: ConnectionCounts,
    pub scheduling_year_excluded: u64,
    pub problems: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub students: RowChanges<StudentRow, i64>,
    /// Students in the sync set until now that leave it in this plan (their
    /// updates are in `students.update`).
    #[serde(default)]
    pub leaving: Vec<i64>,
    pub contacts: RowChanges<ContactRow, (i64, i64)>,
    pub guardian_accounts: RowChanges<GuardianAccountRow, (i64, i64)>,
    pub new_users: Vec<NewUserRow>,
    pub user_updates: Vec<UserUpdate>,
    pub connections: Vec<ConnectionChange>,
    pub problems: Vec<ProblemRow>,
    pub counts: PlanCounts,
    pub decisions: DecisionsSummary,
}

/// What the rules reported, kept for the run report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecisionsSummary {
    pub report: rules::DecisionReport,
    pub incomplete_users: u64,
}

fn problem(kind: &str, record_id: String, message: String) -> ProblemRow {
    ProblemRow {
        kind: kind.to_string(),
        query: None,
        record_id: Some(record_id),
        field: None,
        value: None,
        message,
    }
}

/// Builds the whole plan. `today` is the district's local date.
pub fn plan(
    snapshot: &DistrictSnapshot,
    state: &CurrentState,
    settings: &SyncSettings,
    today: NaiveDate,
) -> Plan {
    let mut plan = Plan::default();
    plan.counts.fetched = FetchCounts {
        guardians: snapshot.guardians.len() as u64,
        students: snapshot.students.len() as u64,
        independent_students: snapshot.independent_students.len() as u64,
        contacts: snapshot.contacts.len() as u64,
    };
    for p in &snapshot.problems {
        plan.problems.push(ProblemRow {
            kind: "bad_record".into(),
            query: Some(p.query.clone()),
            record_id: Some(p.record_id.clone()),
            field: Some(p.field.clone()),
            value: Some(p.value.clone()),
            message: p.message.clone(),
        });
    }

    // Step 4: the sync set.
    let independent: HashMap<i64, &crate::powerschool::IndependentStudent> = snapshot
        .independent_students
        .iter()
        .filter(|i| eligibility::is_independent(&i.enrollment_types))
        .map(|i| (i.dcid, i))
        .collect();
    let mut in_set: BTreeMap<i64, StudentRow> = BTreeMap::new();
    for s in &snapshot.students {
        match eligibility::sync_set_status(
            s.enroll_status,
            s.entry_date,
            today,
            settings.include_scheduling_year,
        ) {
            eligibility::Eligibility::Included => {}
            eligibility::Eligibility::SchedulingYearExcluded => {
                plan.counts.scheduling_year_excluded += 1;
                continue;
            }
            eligibility::Eligibility::NotEnrolled => continue,
        }
        let login = eligibility::student_login(
            s.org_email.as_deref(),
            s.personal_email.as_deref(),
            settings.student_login_field,
        );
        if login.is_none() {
            plan.problems.push(problem(
                "student_without_login",
                s.dcid.to_string(),
                format!(
                    "student {} has no usable email in its login field ({}); synced without a login of its own",
                    s.dcid,
                    settings.student_login_field
                ),
            ));
        }
        in_set.insert(
            s.dcid,
            StudentRow {
                dcid: s.dcid,
                powerschool_id: s.id,
                student_number: s.student_number.clone(),
                first_name: s.first_name.clone(),
                last_name: s.last_name.clone(),
                grade_level: s.grade_level,
                school_number: s.school_number,
                enroll_status: s.enroll_status,
                entry_date: s.entry_date,
                org_email: s.org_email.clone(),
                personal_email: s.personal_email.clone(),
                independent: independent.contains_key(&s.dcid),
                login_email: login,
                in_sync_set: true,
            },
        );
    }

    // Students: create, update, or mark as gone from the sync set.
    for (dcid, row) in &in_set {
        match state.students.get(dcid) {
            None => plan.students.create.push(row.clone()),
            Some(old) if old != row => plan.students.update.push(row.clone()),
            Some(_) => plan.students.unchanged += 1,
        }
    }
    let mut gone: Vec<&StudentRow> = state
        .students
        .values()
        .filter(|s| s.in_sync_set && !in_set.contains_key(&s.dcid))
        .collect();
    gone.sort_by_key(|s| s.dcid);
    for s in gone {
        let mut row = s.clone();
        row.in_sync_set = false;
        plan.leaving.push(row.dcid);
        plan.students.update.push(row);
    }
    plan.students.unchanged += state
        .students
        .values()
        .filter(|s| !s.in_sync_set && !in_set.contains_key(&s.dcid))
        .count() as u64;

    // Contacts and guardian accounts mirror PowerSchool for the sync set.
    let mut contacts: BTreeMap<(i64, i64), ContactRow> = BTreeMap::new();
    for c in snapshot
        .contacts
        .iter()
        .filter(|c| in_set.contains_key(&c.student_dcid))
    {
        contacts.insert(
            (c.student_dcid, c.person_id),
            ContactRow {
                student_dcid: c.student_dcid,
                person_id: c.person_id,
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                email: c.email.clone(),
                is_decision_making: c.is_decision_making,
            },
        );
    }
    plan.contacts = diff_rows(contacts, &state.contacts);
    let mut accounts: BTreeMap<(i64, i64), GuardianAccountRow> = BTreeMap::new();
    for g in snapshot
        .guardians
        .iter()
        .filter(|g| in_set.contains_key(&g.student_dcid))
    {
        accounts.insert(
            (g.guardian_id, g.student_dcid),
            GuardianAccountRow {
                guardian_id: g.guardian_id,
                student_dcid: g.student_dcid,
                email: g.email.clone(),
                first_name: g.first_name.clone(),
                last_name: g.last_name.clone(),
                web_access_account: g.web_access_account,
            },
        );
    }
    plan.guardian_accounts = diff_rows(accounts, &state.guardian_accounts);

    // The rules.
    let facts = district_facts(snapshot, state, &in_set, settings);
    drop(in_set);
    let mut decisions = rules::decide(&facts);
    // The facts copy every fetched row; free them before the plan grows.
    drop(facts);
    plan_users_and_connections(&mut plan, state, snapshot, &mut decisions);
    report_problems(&mut plan, &decisions);

    plan.counts.students = plan.students.counts();
    plan.counts.contacts = plan.contacts.counts();
    plan.counts.guardian_accounts = plan.guardian_accounts.counts();
    plan.counts.problems = plan.problems.len() as u64;
    plan.decisions = DecisionsSummary {
        incomplete_users: decisions.incomplete_users.len() as u64,
        report: decisions.report,
    };
    plan
}

/// Moves each fresh row into the changes (or drops it when unchanged): no
/// second copy of PowerSchool's rows stays alive while the rules run.
fn diff_rows<K: Ord + Copy + std::hash::Hash, T: Clone + PartialEq>(
    fresh: BTreeMap<K, T>,
    current: &HashMap<K, T>,
) -> RowChanges<T, K> {
    let mut changes = RowChanges::default();
    let mut gone: Vec<K> = current
        .keys()
        .filter(|k| !fresh.contains_key(k))
        .copied()
        .collect();
    for (key, row) in fresh {
        match current.get(&key) {
            None => changes.create.push(row),
            Some(old) if *old != row => changes.update.push(row),
            Some(_) => changes.unchanged += 1,
        }
    }
    gone.sort();
    changes.remove = gone;
    changes
}

/// The rules' view of this run: the sync set, PowerSchool's rows and
/// SchoolEngage's users, connections and forms.
pub fn district_facts(
    snapshot: &DistrictSnapshot,
    state: &CurrentState,
    in_set: &BTreeMap<i64, StudentRow>,
    settings: &SyncSettings,
) -> DistrictFacts {
    with_schoolengage_side(
        in_set
            .values()
            .map(|s| StudentFacts {
                dcid: s.dcid,
                independent: s.independent,
                org_email: s.org_email.clone(),
                personal_email: s.personal_email.clone(),
            })
            .collect(),
        snapshot
            .contacts
            .iter()
            .map(|c| ContactFacts {
                student_dcid: c.student_dcid,
                person_id: c.person_id,
                email: c.email.clone(),
                is_decision_making: c.is_decision_making,
            })
            .collect(),
        snapshot
            .guardians
            .iter()
            .map(|g| GuardianRowFacts {
                guardian_id: g.guardian_id,
                student_dcid: g.student_dcid,
                email: g.email.clone(),
                first_name: g.first_name.clone(),
                last_name: g.last_name.clone(),
                web_access_account: g.web_access_account,
            })
            .collect(),
        state,
        settings,
    )
}

/// The facts from PowerSchool's side (however they were read: fetched now,
/// or as the last sync stored them) completed with SchoolEngage's users,
/// connections and forms and the district's removal policy. `plan` and
/// `explain` both build the rules' facts through here.
pub fn with_schoolengage_side(
    students: Vec<StudentFacts>,
    contacts: Vec<ContactFacts>,
    guardian_rows: Vec<GuardianRowFacts>,
    state: &CurrentState,
    settings: &SyncSettings,
) -> DistrictFacts {
    DistrictFacts {
        students,
        contacts,
        guardian_rows,
        users: state.users.iter().map(user_facts).collect(),
        connections: state
            .connections
            .iter()
            .map(ConnectionFacts::from)
            .collect(),
        forms: state
            .forms
            .iter()
            .map(|f| FormFacts {
                student_dcid: f.student_dcid,
                created_by_user_id: f.created_by_user_id,
            })
            .collect(),
        policy: Policy {
            on_powerschool_removal: settings.on_powerschool_removal,
        },
    }
}

fn user_facts(u: &crate::store::state::UserRow) -> UserFacts {
    UserFacts {
        user_id: u.id,
        email: u.email.clone(),
        email_verified: u.email_verified,
        powerschool_guardian_id: u.powerschool_guardian_id,
        incomplete: u.incomplete,
    }
}

impl From<&ConnectionRow> for ConnectionFacts {
    fn from(c: &ConnectionRow) -> ConnectionFacts {
        ConnectionFacts {
            student_dcid: c.student_dcid,
            user_id: c.user_id,
            tier: c.tier,
            case: c.case_code,
            limits: c.limits.clone(),
            origin: c.origin,
        }
    }
}

/// Whether the stored case already says what the rules decided, reading a
/// case a past run created as the next night sees it.
fn same_case(stored: Option<ConnectionCase>, decided: ConnectionCase) -> bool {
    stored.is_some_and(|s| s.on_a_later_night() == decided.on_a_later_night())
}

/// The PowerSchool account a connection is linked to after the run: the one
/// backing it now, or the last one it had when its link is gone (kept for
/// the orphaned report and `explain`).
pub fn guardian_id_after(dec: &ConnectionDecision, before: Option<&ConnectionRow>) -> Option<i64> {
    if dec.present_in_powerschool {
        dec.guardian_id
    } else {
        before.and_then(|b| b.powerschool_guardian_id)
    }
}

fn plan_users_and_connections(
    plan: &mut Plan,
    state: &CurrentState,
    snapshot: &DistrictSnapshot,
    d: &mut Decisions,
) {
    // Users: new ones, then synced fields of existing ones.
    for u in &d.new_users {
        plan.new_users.push(NewUserRow {
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            powerschool_guardian_id: Some(u.powerschool_guardian_id),
            incomplete: false,
        });
    }
    let links: HashMap<i64, i64> = d.guardian_links.iter().copied().collect();
    let incomplete: HashSet<i64> = d.incomplete_users.iter().copied().collect();
    let mut names_by_guardian: HashMap<i64, (&Option<String>, &Option<String>)> = HashMap::new();
    for g in &snapshot.guardians {
        names_by_guardian
            .entry(g.guardian_id)
            .or_insert((&g.first_name, &g.last_name));
    }
    let mut users_unchanged = 0u64;
    for u in &state.users {
        let guardian_id = u
            .powerschool_guardian_id
            .or_else(|| links.get(&u.id).copied());
        let (mut first, mut last) = (u.first_name.clone(), u.last_name.clone());
        if let Some((f, l)) = guardian_id.and_then(|g| names_by_guardian.get(&g)) {
            // PowerSchool owns the name of a linked account, but a blank there
            // never erases a name SchoolEngage already has.
            if f.as_deref().is_some_and(|s| !s.trim().is_empty()) {
                first = (*f).clone();
            }
            if l.as_deref().is_some_and(|s| !s.trim().is_empty()) {
                last = (*l).clone();
            }
        }
        let update = UserUpdate {
            id: u.id,
            first_name: first,
            last_name: last,
            powerschool_guardian_id: guardian_id,
            incomplete: incomplete.contains(&u.id),
        };
        let unchanged = update.first_name == u.first_name
            && update.last_name == u.last_name
            && update.powerschool_guardian_id == u.powerschool_guardian_id
            && update.incomplete == u.incomplete;
        if unchanged {
            users_unchanged += 1;
        } else {
            plan.user_updates.push(update);
        }
    }
    plan.counts.users = KindCounts {
        created: plan.new_users.len() as u64,
        updated: plan.user_updates.len() as u64,
        removed: 0,
        unchanged: users_unchanged,
    };

    // Connections.
    let existing: HashMap<(i64, i64), &ConnectionRow> = state
        .connections
        .iter()
        .map(|c| ((c.student_dcid, c.user_id), c))
        .collect();
    let mut counts = ConnectionCounts {
        orphaned: d.report.orphaned.len() as u64,
        ..Default::default()
    };
    // Each decision moves into its change (no copy of every verdict's prose).
    for owned in std::mem::take(&mut d.connections) {
        let dec = &owned;
        let before = match dec.user {
            UserRef::Existing(id) => existing.get(&(dec.student_dcid, id)).copied(),
            UserRef::New(_) => None,
        };
        let kind = match (dec.action, before) {
            (ConnectionAction::Remove, Some(_)) => ConnectionChangeKind::Remove,
            (ConnectionAction::Remove, None) => continue,
            (_, None) => ConnectionChangeKind::Create,
            (_, Some(b)) => {
                let mut stored_limits = b.limits.clone();
                stored_limits.sort();
                let unchanged = b.tier == dec.tier
                    && same_case(b.case_code, dec.case)
                    && stored_limits == dec.limits
                    && b.present_in_powerschool == dec.present_in_powerschool
                    && b.powerschool_guardian_id == guardian_id_after(dec, Some(b));
                if unchanged {
                    counts.unchanged += 1;
                    continue;
                }
                ConnectionChangeKind::Update
            }
        };
        let origin = match before {
            Some(b) => b.origin,
            None if dec.case == ConnectionCase::UnlinkedReturningParent => Origin::Form,
            None => Origin::Powerschool,
        };
        match kind {
            ConnectionChangeKind::Create => counts.created += 1,
            ConnectionChangeKind::Update => counts.updated += 1,
            ConnectionChangeKind::Remove => counts.removed += 1,
        }
        let before_tier = before.map(|b| b.tier);
        if kind != ConnectionChangeKind::Remove {
            if let Some(bt) = before_tier {
                if dec.tier > bt {
                    counts.tier_up += 1;
                } else if dec.tier < bt {
                    counts.tier_down += 1;
                }
            }
        }
        plan.connections.push(ConnectionChange {
            kind,
            before: before.cloned(),
            user: dec.user,
            origin,
            decision: owned,
        });
    }
    plan.counts.connections = counts;
}

fn report_problems(plan: &mut Plan, d: &Decisions) {
    let r = &d.report;
    for (gid, dcid) in &r.rows_for_unknown_students {
        plan.problems.push(problem(
            "row_for_student_outside_sync_set",
            format!("guardian {gid}, student {dcid}"),
            format!("guardian account {gid} is linked to student {dcid}, who is not in the sync set (not enrolled, or a scheduling-year student); the row is ignored"),
        ));
    }
    for (gid, dcid, email) in &r.links_without_matching_contact {
        plan.problems.push(problem(
            "link_without_matching_contact",
            format!("guardian {gid}, student {dcid}"),
            format!("R3: no contact of student {dcid} has the email {email} of guardian account {gid}; the link is not used. Fix the contact's email in PowerSchool"),
        ));
    }
    for (gid, dcid, email) in &r.unverified_email_matches {
        plan.problems.push(problem(
            "unverified_email_match",
            format!("guardian {gid}, student {dcid}"),
            format!("guardian account {gid} (student {dcid}) has the email {email}, which belongs only to a SchoolEngage user who has not verified it; not linked until the user verifies the email"),
        ));
    }
    for (uid, login, ps) in &r.email_differs {
        plan.problems.push(problem(
            "email_differs",
            format!("user {uid}"),
            format!("user {uid} logs in as {login} but the linked PowerSchool account's email is {ps}; the login email is SchoolEngage's and was not changed"),
        ));
    }
    for (gid, dcid) in &r.accounts_without_email {
        plan.problems.push(problem(
            "account_without_email",
            format!("guardian {gid}, student {dcid}"),
            format!("guardian account {gid} (student {dcid}) has no usable email; no user can be made for it. Add the email in PowerSchool"),
        ));
    }
    for (dcid, uid) in &r.orphaned {
        plan.problems.push(problem(
            "orphaned_from_powerschool",
            format!("student {dcid}, user {uid}"),
            format!("the connection of user {uid} to student {dcid} was made by an earlier sync, and PowerSchool no longer links them"),
        ));
    }
    for (dcid, uid) in &r.form_creator_only {
        plan.problems.push(problem(
            "form_creator_only",
            format!("student {dcid}, user {uid}"),
            format!("user {uid} created a form for student {dcid} but holds no Parent Portal account; nothing changes until registration links them"),
        ));
    }
}
