//! The part of a district that an `explain` question can depend on, so that
//! `explain` decides a family, not the district: at a million students
//! deciding everything, with every verdict kept as a structure, took 41 s
//! and 2.3 GB for one answer.
//!
//! Every lookup the decision table makes goes through one of four keys: a
//! student (its rows, contacts, own emails, connections, forms), a
//! normalised email (users found by a row's email, new users by email), a
//! PowerSchool guardian account (users linked earlier, the lowest account
//! of a user) and a SchoolEngage user (its connections, forms, login and
//! earlier link). A contact's email and a student's own emails are only
//! ever compared with the rows of the same student, so they join nothing:
//! a placeholder address on thousands of contacts does not make every
//! family one. Records that share none of those keys with a pair's
//! records never change its decision. So the scope of a question is the
//! connected part of the district reached from its student and email
//! through those keys, taken whole: every record that shares a key with
//! the scope joins it, until nothing more does. Deciding the scope gives
//! each pair inside it the decision the whole district gives it
//! (`tests/explain_scope.rs` checks that `explain` reads the same both
//! ways on generated districts where everything shares an email).
//!
//! The one thing that is the district's and not the family's is a new
//! user's number: `UserRef::New(i)` counts the users the rules would create
//! in what was decided, so in the JSON of a scoped `explain` it counts them
//! within the scope. Nothing else reads it.

use foldhash::HashSet;
use std::hash::BuildHasher;

use crate::rules::email::normalise_optional;
use crate::rules::DistrictFacts;

/// A normalised email as the scope compares it: 64 bits of a hash of it, 0
/// for none (empty or malformed). Two emails that happen to hash alike join
/// their records: the scope grows, and stays right.
pub fn email_key(raw: Option<&str>) -> u64 {
    match normalise_optional(raw) {
        Some(email) => foldhash::fast::FixedState::with_seed(0)
            .hash_one(email.as_str())
            .max(1),
        None => 0,
    }
}

/// The keys of the records that join others (guardian rows, users,
/// connections and forms), and nothing else of them: what the scope is
/// found from. At a million students they take some 100 MB, where the
/// records themselves take gigabytes; the store reads them from its tables
/// and then only the records of the scope.
#[derive(Debug, Default)]
pub struct ScopeKeys {
    /// Guardian rows: (student, guardian account, email).
    pub rows: Vec<(i64, i64, u64)>,
    /// Users: (user, email, PowerSchool guardian account).
    pub users: Vec<(i64, u64, Option<i64>)>,
    /// Connections and forms: (student, user).
    pub pairs: Vec<(i64, i64)>,
}

impl ScopeKeys {
    /// The keys of a district's facts.
    pub fn of(facts: &DistrictFacts) -> ScopeKeys {
        let key = |e: &Option<String>| email_key(e.as_deref());
        ScopeKeys {
            rows: (facts.guardian_rows.iter())
                .map(|r| (r.student_dcid, r.guardian_id, key(&r.email)))
                .collect(),
            users: (facts.users.iter())
                .map(|u| {
                    (
                        u.user_id,
                        email_key(Some(&u.email)),
                        u.powerschool_guardian_id,
                    )
                })
                .collect(),
            pairs: (facts.connections.iter())
                .map(|c| (c.student_dcid, c.user_id))
                .chain(
                    facts
                        .forms
                        .iter()
                        .map(|f| (f.student_dcid, f.created_by_user_id)),
                )
                .collect(),
        }
    }
}

/// The students and users a question's decision can depend on, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub students: Vec<i64>,
    pub users: Vec<i64>,
}

/// The keys reached so far.
#[derive(Default)]
struct Reach {
    students: HashSet<i64>,
    emails: HashSet<u64>,
    guardians: HashSet<i64>,
    users: HashSet<i64>,
}

impl Reach {
    fn size(&self) -> usize {
        self.students.len() + self.emails.len() + self.guardians.len() + self.users.len()
    }

    fn has_email(&self, email: u64) -> bool {
        email != 0 && self.emails.contains(&email)
    }

    fn add_email(&mut self, email: u64) {
        if email != 0 {
            self.emails.insert(email);
        }
    }

    /// One pass over every record: each that shares a key with the scope
    /// adds its own keys.
    fn grow(&mut self, keys: &ScopeKeys) {
        for &(student, guardian, email) in &keys.rows {
            if self.students.contains(&student)
                || self.guardians.contains(&guardian)
                || self.has_email(email)
            {
                self.students.insert(student);
                self.guardians.insert(guardian);
                self.add_email(email);
            }
        }
        for &(user, email, guardian) in &keys.users {
            if self.users.contains(&user)
                || self.has_email(email)
                || guardian.is_some_and(|g| self.guardians.contains(&g))
            {
                self.users.insert(user);
                self.add_email(email);
                self.guardians.extend(guardian);
            }
        }
        for &(student, user) in &keys.pairs {
            if self.students.contains(&student) || self.users.contains(&user) {
                self.students.insert(student);
                self.users.insert(user);
            }
        }
    }
}

/// The scope of `asked`'s (student, email) pairs: every record that shares
/// a key with it joins it, pass after pass, until none does (see the
/// module's words).
pub fn reach(keys: &ScopeKeys, asked: &[(i64, &str)]) -> Scope {
    reach_from(
        keys,
        asked.iter().map(|a| a.0),
        asked.iter().map(|a| Some(a.1)),
        [],
    )
}

/// The scope reached from these students, emails (as PowerSchool or a user
/// wrote them) and PowerSchool guardian accounts: what a spot sync's
/// students and the records it fetched for them can depend on.
pub fn reach_from<'e>(
    keys: &ScopeKeys,
    students: impl IntoIterator<Item = i64>,
    emails: impl IntoIterator<Item = Option<&'e str>>,
    guardians: impl IntoIterator<Item = i64>,
) -> Scope {
    let mut reach = Reach::default();
    reach.students.extend(students);
    for email in emails {
        reach.add_email(email_key(email));
    }
    reach.guardians.extend(guardians);
    loop {
        let before = reach.size();
        reach.grow(keys);
        if reach.size() == before {
            break;
        }
    }
    let sorted = |set: HashSet<i64>| {
        let mut v: Vec<i64> = set.into_iter().collect();
        v.sort_unstable();
        v
    };
    Scope {
        students: sorted(reach.students),
        users: sorted(reach.users),
    }
}

/// The facts of `asked`'s (student, email) pairs and of everything joined
/// to them; the rest of `facts` is dropped. The records keep their order.
pub fn scope_of(mut facts: DistrictFacts, asked: &[(i64, &str)]) -> DistrictFacts {
    let scope = reach(&ScopeKeys::of(&facts), asked);
    let student = |s: &i64| scope.students.binary_search(s).is_ok();
    // Every record that shares a key with the scope put its own keys in it,
    // so its student (or, for a user, the user) is in the scope; a
    // student's contacts and own emails come with the student.
    facts.students.retain(|s| student(&s.dcid));
    facts.contacts.retain(|c| student(&c.student_dcid));
    (facts.guardian_rows).retain(|r| student(&r.student_dcid));
    (facts.users).retain(|u| scope.users.binary_search(&u.user_id).is_ok());
    (facts.connections).retain(|c| student(&c.student_dcid));
    facts.forms.retain(|f| student(&f.student_dcid));
    facts
}
