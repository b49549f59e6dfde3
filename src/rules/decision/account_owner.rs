//! Step 2 of access-rules.md: which SchoolEngage user a valid link's account
//! is (an earlier link, a form creator, a verified email, or a new user), and
//! what that means across all rows: the users the run creates, the accounts
//! it links, and who holds a Parent Portal account this run.

use foldhash::{HashMap, HashMapExt};
use std::collections::BTreeMap;

use super::facts_index::FactsIndex;
use super::{Engine, JudgedRow};
use crate::rules::verdict::{Email, Reason};
use crate::rules::{GuardianLink, Name, NewUser, RuleVerdict, UserRef};

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
    pub(super) fn user(self) -> Option<i64> {
        match self {
            Found::LinkedAccount(u) | Found::FormCreator(u) | Found::VerifiedEmail(u) => Some(u),
            Found::NewUser | Found::UnverifiedOnly(_) => None,
        }
    }
}

/// Step 2 for one valid link with the normalised `email`: first hit wins.
pub(super) fn find_owner(index: &FactsIndex<'_>, row: &GuardianLink, email: &str) -> Found {
    if let Some(&user) = index.user_by_guardian.get(&row.guardian_id) {
        return Found::LinkedAccount(user);
    }
    if let Some(ids) = index.verified_by_email.get(email) {
        let form_creator = ids
            .iter()
            .find(|&&u| index.forms.contains(&(row.student_dcid, u)));
        if let Some(&u) = form_creator {
            return Found::FormCreator(u);
        }
        if let Some(&u) = ids.first() {
            return Found::VerifiedEmail(u);
        }
    }
    // Nobody gains a student by signing up with someone else's address.
    match index
        .unverified_by_email
        .get(email)
        .and_then(|ids| ids.first())
    {
        Some(&u) => Found::UnverifiedOnly(u),
        None => Found::NewUser,
    }
}

/// What step 2 means for users across all rows.
#[derive(Default)]
pub(super) struct Accounts {
    /// Step 2.4's users, sorted by email; one per email (so found by
    /// binary search, see `new_user_of`).
    pub(super) new_users: Vec<NewUser>,
    /// Existing users that step 2.2/2.3 found and no earlier sync linked:
    /// user id -> lowest guardian id of the accounts that found them.
    pub(super) guardian_links: BTreeMap<i64, i64>,
    /// Users a valid link resolved to this run: user id -> lowest (student, guardian id).
    pub(super) linked_this_run: HashMap<i64, (i64, i64)>,
}

impl Accounts {
    /// The users the run creates, the accounts it links, who holds a
    /// Parent Portal account, from what steps 1 and 2 made of every row.
    pub(super) fn settle(index: &FactsIndex<'_>, judged: &[JudgedRow<'_>]) -> Accounts {
        let mut accounts = Accounts::default();
        // Lowest (guardian id, student, names) wins, so a new user's record
        // does not depend on row order. Gathered by hash and sorted by email
        // once at the end: a first night at a million students finds some
        // 800,000 new emails, and a B-tree of them cost each row dozens of
        // string comparisons, most of them cache misses.
        let mut new_user_rows: HashMap<&str, &GuardianLink> = HashMap::new();
        for judged in judged {
            let row = judged.link;
            let Some(found) = judged.found else {
                continue;
            };
            let gid = row.guardian_id;
            if let Some(u) = found.user() {
                let seen = accounts
                    .linked_this_run
                    .entry(u)
                    .or_insert((row.student_dcid, gid));
                *seen = (*seen).min((row.student_dcid, gid));
            }
            match found {
                Found::FormCreator(u) | Found::VerifiedEmail(u)
                    if index
                        .users
                        .get(&u)
                        .is_some_and(|user| user.facts.powerschool_guardian_id.is_none()) =>
                {
                    let link = accounts.guardian_links.entry(u).or_insert(gid);
                    *link = (*link).min(gid);
                }
                // Only rows with a usable email reach step 2.
                Found::NewUser => {
                    let Some(email) = judged.email.as_deref() else {
                        continue;
                    };
                    let best = new_user_rows.entry(email).or_insert(row);
                    if new_user_key(row) < new_user_key(best) {
                        *best = row;
                    }
                }
                _ => {}
            }
        }
        let mut new_user_rows: Vec<(&str, &GuardianLink)> = new_user_rows.into_iter().collect();
        new_user_rows.sort_unstable_by_key(|&(email, _)| email);
        accounts.new_users = new_user_rows
            .iter()
            .map(|(email, row)| NewUser {
                email: email.to_string(),
                first_name: row.first_name.clone(),
                last_name: row.last_name.clone(),
                powerschool_guardian_id: row.guardian_id,
            })
            .collect();
        accounts
    }

    /// Sets each row's owner from step 2's answer: the existing user it
    /// found, or the new user of its email. The new users are looked up by
    /// hash, once per row: a district's rows are more than a million at the
    /// largest, and a search of the sorted users would cost each row some
    /// twenty string comparisons, each a cache miss.
    pub(super) fn set_owners(&self, rows: &mut [JudgedRow<'_>]) {
        let mut new_user_at: HashMap<&str, usize> = HashMap::with_capacity(self.new_users.len());
        new_user_at.extend(
            self.new_users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.email.as_str(), i)),
        );
        for row in rows {
            row.owner = match row.found {
                Some(Found::NewUser) => new_user_at
                    .get(row.email_or_empty())
                    .map(|&i| UserRef::New(i)),
                Some(found) => found.user().map(UserRef::Existing),
                None => None,
            };
        }
    }
}

fn new_user_key(row: &GuardianLink) -> (i64, i64, &Option<Name>, &Option<Name>) {
    (
        row.guardian_id,
        row.student_dcid,
        &row.first_name,
        &row.last_name,
    )
}

impl Engine<'_> {
    /// Step 2's verdict: how the account of a valid link was matched to `user`.
    pub(super) fn owner_verdict(
        &self,
        row: &GuardianLink,
        email: &Email,
        found: Found,
        user: UserRef,
    ) -> RuleVerdict {
        let guardian_id = row.guardian_id;
        let student_dcid = row.student_dcid;
        let linked_now = |u: i64| self.accounts.guardian_links.get(&u).copied();
        let reason = match found {
            Found::LinkedAccount(user_id) => Reason::LinkedEarlier {
                user_id,
                login: self.index.login_of(user_id),
                guardian_id,
                email: email.clone(),
            },
            Found::FormCreator(user_id) => Reason::FormCreatorMatched {
                user_id,
                login: self.index.login_of(user_id),
                email: email.clone(),
                student_dcid,
                linked_now: linked_now(user_id),
            },
            Found::VerifiedEmail(user_id) => Reason::VerifiedEmailMatched {
                user_id,
                email: email.clone(),
                linked_now: linked_now(user_id),
            },
            Found::NewUser => Reason::NewUserCreated {
                email: email.clone(),
                guardian_id: match user {
                    UserRef::New(i) => self
                        .accounts
                        .new_users
                        .get(i)
                        .map(|n| n.powerschool_guardian_id)
                        .unwrap_or(guardian_id),
                    UserRef::Existing(_) => guardian_id,
                },
            },
            Found::UnverifiedOnly(user_id) => Reason::UnverifiedOnly {
                user_id,
                email: email.clone(),
                guardian_id,
                student_dcid,
            },
        };
        reason.verdict()
    }
}
