//! The facts, indexed once: students, contacts, users, connections and forms
//! by the keys the spec's steps look them up by. Every later step reads the
//! district through here, in O(1) per lookup, so a district of 150,000
//! students is decided in a handful of passes.
//!
//! Duplicate keys are bad data, but they must still give one answer whatever
//! the row order, so each index keeps a value-ordered choice.

use foldhash::{HashMap, HashMapExt, HashSet};
use std::borrow::Cow;
use std::cmp::Reverse;

use crate::rules::email::normalise_email;
use crate::rules::verdict::Email;
use crate::rules::{ConnectionFacts, DistrictFacts, StudentContact, StudentFacts, UserFacts};

/// A student of the sync set. Its own emails are normalised when R5 asks
/// (only an independent student's are ever looked at), so the district's
/// students cost the index one reference each.
#[derive(Clone, Copy)]
pub(super) struct Student<'a> {
    pub(super) facts: &'a StudentFacts,
}

impl<'a> Student<'a> {
    /// The student's `orgemail`, normalised.
    pub(super) fn org_email(&self) -> Option<Cow<'a, str>> {
        normalised(self.facts.org_email.as_deref())
    }

    /// The student's `personalemail`, normalised.
    pub(super) fn personal_email(&self) -> Option<Cow<'a, str>> {
        normalised(self.facts.personal_email.as_deref())
    }

    /// R5: the email is the student's `orgemail` or `personalemail`.
    pub(super) fn is_own_email(&self, email: &str) -> bool {
        self.org_email().as_deref() == Some(email)
            || self.personal_email().as_deref() == Some(email)
    }
}

/// A SchoolEngage login.
pub(super) struct User<'a> {
    pub(super) facts: &'a UserFacts,
    /// The login, normalised once here because SE's "already normalised"
    /// is a promise the rules do not lean on; shared by every verdict that
    /// names it.
    pub(super) email: Option<Email>,
}

/// The district's facts by the keys the rules look them up by.
pub(super) struct FactsIndex<'a> {
    pub(super) students: HashMap<i64, Student<'a>>,
    /// Contacts with an email, by student, then normalised email, then
    /// person id (see `ContactIndex`).
    contacts: ContactIndex<'a>,
    pub(super) users: Sorted<i64, User<'a>>,
    /// User ids by normalised login email, ascending.
    pub(super) verified_by_email: UsersByEmail,
    pub(super) unverified_by_email: UsersByEmail,
    /// Lowest user id linked to each PowerSchool guardian id before the run.
    pub(super) user_by_guardian: Sorted<i64, i64>,
    pub(super) connections: ConnectionIndex<'a>,
    /// (student, user) pairs with at least one form.
    pub(super) forms: HashSet<(i64, i64)>,
}

impl<'a> FactsIndex<'a> {
    pub(super) fn new(facts: &'a DistrictFacts) -> FactsIndex<'a> {
        let users = index_users(&facts.users);
        let (verified_by_email, unverified_by_email) = index_user_emails(&users);
        FactsIndex {
            students: index_students(&facts.students),
            contacts: ContactIndex::new(&facts.contacts),
            user_by_guardian: index_user_by_guardian(&users),
            users,
            verified_by_email,
            unverified_by_email,
            connections: index_connections(&facts.connections),
            forms: facts
                .forms
                .iter()
                .map(|f| (f.student_dcid, f.created_by_user_id))
                .collect(),
        }
    }

    /// The contacts of the student whose normalised email is `email`.
    pub(super) fn contacts_with_email(
        &self,
        student_dcid: i64,
        email: &str,
    ) -> &[&'a StudentContact] {
        self.contacts.with_email(student_dcid, email)
    }

    /// The user's login as the reasons show it.
    pub(super) fn login_of(&self, user_id: i64) -> Email {
        match self.users.get(&user_id) {
            Some(u) => u
                .email
                .clone()
                .unwrap_or_else(|| Email::from(u.facts.email.as_str())),
            None => Email::from("unknown login"),
        }
    }

    /// The user's normalised login, if the user exists and it is usable.
    pub(super) fn login_email(&self, user_id: i64) -> Option<&Email> {
        self.users.get(&user_id).and_then(|u| u.email.as_ref())
    }

    /// The PowerSchool account an earlier sync linked the user to.
    pub(super) fn earlier_guardian_id(&self, user_id: i64) -> Option<i64> {
        self.users
            .get(&user_id)
            .and_then(|u| u.facts.powerschool_guardian_id)
    }
}

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
        let entry = Student { facts: s };
        match index.get(&s.dcid) {
            Some(kept) if key(kept.facts) <= key(s) => {}
            _ => {
                index.insert(s.dcid, entry);
            }
        }
    }
    index
}

/// The contacts that have a usable email, as two arrays in the same order:
/// (student, normalised email) and the contact, sorted by student, email,
/// then person id. One lookup is two binary searches; a district's
/// contacts cost 40 bytes each here, and an email is copied only when
/// normalising changed it.
struct ContactIndex<'a> {
    keys: Vec<(i64, Cow<'a, str>)>,
    contacts: Vec<&'a StudentContact>,
}

impl<'a> ContactIndex<'a> {
    fn new(contacts: &'a [StudentContact]) -> ContactIndex<'a> {
        let mut entries: Vec<((i64, Cow<'a, str>), &'a StudentContact)> = contacts
            .iter()
            .filter_map(|c| Some(((c.student_dcid, normalised(c.email.as_deref())?), c)))
            .collect();
        type Entry<'e> = ((i64, Cow<'e, str>), &'e StudentContact);
        let order = |(ka, a): &Entry<'_>, (kb, b): &Entry<'_>| {
            ka.cmp(kb).then_with(|| {
                (a.person_id, a.is_decision_making, &a.email).cmp(&(
                    b.person_id,
                    b.is_decision_making,
                    &b.email,
                ))
            })
        };
        // A run's contacts come sorted by student: then only each student's
        // few are sorted (the same order, without a district-wide sort).
        if entries.is_sorted_by_key(|((student, _), _)| *student) {
            for one_student in entries.chunk_by_mut(|a, b| a.0 .0 == b.0 .0) {
                one_student.sort_by(order);
            }
        } else {
            entries.sort_by(order);
        }
        let (keys, contacts) = entries.into_iter().unzip();
        ContactIndex { keys, contacts }
    }

    /// The student's contacts whose normalised email is `email`.
    fn with_email(&self, student_dcid: i64, email: &str) -> &[&'a StudentContact] {
        let start = self
            .keys
            .partition_point(|(s, e)| (*s, e.as_ref()) < (student_dcid, email));
        let end = self
            .keys
            .partition_point(|(s, e)| (*s, e.as_ref()) <= (student_dcid, email));
        self.contacts.get(start..end).unwrap_or(&[])
    }
}

/// The normalised email, borrowed when normalising changed nothing (the
/// usual case), so a district's emails are not copied into the index.
pub(super) fn normalised(raw: Option<&str>) -> Option<Cow<'_, str>> {
    let raw = raw?;
    let email = normalise_email(raw)?;
    Some(if email == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(email)
    })
}

fn index_users(users: &[UserFacts]) -> Sorted<i64, User<'_>> {
    let mut sorted: Vec<&UserFacts> = users.iter().collect();
    // Of duplicate ids, the smallest of these wins, whatever the row order.
    fn key(u: &UserFacts) -> (i64, &str, bool, Option<i64>, bool) {
        (
            u.user_id,
            &u.email,
            !u.email_verified,
            u.powerschool_guardian_id,
            u.incomplete,
        )
    }
    sorted.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    sorted.dedup_by_key(|u| u.user_id);
    Sorted(
        sorted
            .into_iter()
            .map(|u| {
                let email = normalise_email(&u.email).map(Email::from);
                (u.user_id, User { facts: u, email })
            })
            .collect(),
    )
}

/// Values by a unique key, sorted, found by binary search: the index's
/// district-wide tables of users are these rather than hash maps (a hash
/// table of 123,000 users reserves room for 262,144).
pub(super) struct Sorted<K, V>(Vec<(K, V)>);

impl<K: Ord, V> Sorted<K, V> {
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        let at = self.0.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        self.0.get(at).map(|(_, v)| v)
    }
}

/// User ids by normalised login: two arrays in the same order, sorted by
/// email, then id (24 bytes a user; the emails are the users' own).
#[derive(Default)]
pub(super) struct UsersByEmail {
    emails: Vec<Email>,
    ids: Vec<i64>,
}

impl UsersByEmail {
    fn new(mut entries: Vec<(Email, i64)>) -> UsersByEmail {
        entries.sort_unstable();
        let (emails, ids) = entries.into_iter().unzip();
        UsersByEmail { emails, ids }
    }

    /// The ids of the users with this login, ascending; `None` if none.
    pub(super) fn get(&self, email: &str) -> Option<&[i64]> {
        let start = self.emails.partition_point(|e| &**e < email);
        let end = self.emails.partition_point(|e| &**e <= email);
        self.ids.get(start..end).filter(|ids| !ids.is_empty())
    }
}

/// (verified, unverified) user ids by normalised login, each list ascending.
fn index_user_emails(users: &Sorted<i64, User<'_>>) -> (UsersByEmail, UsersByEmail) {
    let (mut verified, mut unverified) = (Vec::with_capacity(users.0.len()), Vec::new());
    for (id, user) in &users.0 {
        if let Some(email) = &user.email {
            let by_email = if user.facts.email_verified {
                &mut verified
            } else {
                &mut unverified
            };
            by_email.push((email.clone(), *id));
        }
    }
    (UsersByEmail::new(verified), UsersByEmail::new(unverified))
}

/// The lowest user id an earlier sync linked to each guardian account.
fn index_user_by_guardian(users: &Sorted<i64, User<'_>>) -> Sorted<i64, i64> {
    let mut linked: Vec<(i64, i64)> = users
        .0
        .iter()
        .filter_map(|(id, user)| Some((user.facts.powerschool_guardian_id?, *id)))
        .collect();
    linked.sort_unstable();
    linked.dedup_by_key(|(guardian_id, _)| *guardian_id);
    Sorted(linked)
}

/// The stored connections by (student, user), one each, sorted: a
/// reference a connection, looked up by binary search.
pub(super) struct ConnectionIndex<'a>(Vec<&'a ConnectionFacts>);

impl<'a> ConnectionIndex<'a> {
    pub(super) fn get(&self, &(student_dcid, user_id): &(i64, i64)) -> Option<&'a ConnectionFacts> {
        let at = self
            .0
            .binary_search_by_key(&(student_dcid, user_id), pair)
            .ok()?;
        self.0.get(at).copied()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn contains_key(&self, key: &(i64, i64)) -> bool {
        self.get(key).is_some()
    }

    /// Each connection with its (student, user), ascending.
    pub(super) fn iter(&self) -> impl Iterator<Item = ((i64, i64), &'a ConnectionFacts)> + '_ {
        self.0.iter().map(|c| (pair(c), *c))
    }
}

fn pair(c: &&ConnectionFacts) -> (i64, i64) {
    (c.student_dcid, c.user_id)
}

fn index_connections(connections: &[ConnectionFacts]) -> ConnectionIndex<'_> {
    let mut sorted: Vec<&ConnectionFacts> = connections.iter().collect();
    // Of duplicates, an admin one wins: it is never orphaned or revoked.
    sorted.sort_unstable_by(|a, b| {
        (pair(a), a.origin, Reverse(a.tier), a.case, &a.limits).cmp(&(
            pair(b),
            b.origin,
            Reverse(b.tier),
            b.case,
            &b.limits,
        ))
    });
    sorted.dedup_by_key(|c| pair(c));
    ConnectionIndex(sorted)
}
