//! The users a plan writes: the new users the rules ask for, and the fields
//! the sync owns on existing users (the name of a linked Parent Portal
//! account, the link itself, the incomplete flag) where they change.

use super::changes::KindCounts;
use crate::powerschool::GuardianLink;
use crate::rules::{Decisions, Name, NewUser};
use crate::store::state::UserRow;
use crate::store::write::{NewUserRow, UserUpdate};
use foldhash::{HashMap, HashMapExt};

/// The users' part of a plan.
pub(super) struct UserChanges {
    pub new_users: Vec<NewUserRow>,
    pub updates: Vec<UserUpdate>,
    pub unchanged: u64,
}

impl UserChanges {
    pub fn counts(&self) -> KindCounts {
        user_counts(self.new_users.len(), self.updates.len(), self.unchanged)
    }
}

/// The users' counts: users are created and updated, never removed.
pub(crate) fn user_counts(created: usize, updated: usize, unchanged: u64) -> KindCounts {
    KindCounts {
        created: created as u64,
        updated: updated as u64,
        removed: 0,
        unchanged,
    }
}

pub(super) fn user_changes(
    stored: &[UserRow],
    guardian_rows: &[GuardianLink],
    d: &mut Decisions,
) -> UserChanges {
    // Both sorted by user id (see `Decisions`): searched, not hashed.
    let links = &d.guardian_links;
    let linked_to = |user_id: i64| {
        links
            .binary_search_by_key(&user_id, |&(u, _)| u)
            .ok()
            .and_then(|at| links.get(at))
            .map(|&(_, guardian_id)| guardian_id)
    };
    let incomplete = &d.incomplete_users;
    let names = guardian_names(guardian_rows);
    let mut changes = UserChanges {
        // Moved out of the decisions: a first sync creates most parents.
        new_users: std::mem::take(&mut d.new_users)
            .into_iter()
            .map(new_user_row)
            .collect(),
        updates: Vec::new(),
        unchanged: 0,
    };
    for u in stored {
        let guardian_id = u.powerschool_guardian_id.or_else(|| linked_to(u.user_id));
        let names = guardian_id.and_then(|g| names.get(&g)).copied();
        let is_incomplete = incomplete.binary_search(&u.user_id).is_ok();
        let fields = synced_fields(u, guardian_id, names, is_incomplete);
        // Built (its names copied) only for the users it changes.
        if fields.changes(u) {
            changes.updates.push(fields.update(u.user_id));
        } else {
            changes.unchanged += 1;
        }
    }
    changes
}

fn new_user_row(u: NewUser) -> NewUserRow {
    NewUserRow {
        email: u.email,
        first_name: u.first_name,
        last_name: u.last_name,
        powerschool_guardian_id: Some(u.powerschool_guardian_id),
        incomplete: false,
    }
}

type Names<'a> = (&'a Option<Name>, &'a Option<Name>);

/// The first and last name of each Parent Portal account (of its first row).
fn guardian_names(guardian_rows: &[GuardianLink]) -> HashMap<i64, Names<'_>> {
    let mut names: HashMap<i64, Names<'_>> = HashMap::with_capacity(guardian_rows.len());
    for g in guardian_rows {
        names
            .entry(g.guardian_id)
            .or_insert((&g.first_name, &g.last_name));
    }
    names
}

/// A user's synced fields after the run. PowerSchool owns the name of a
/// linked account, but a blank there never erases a name SchoolEngage
/// already has.
fn synced_fields<'a>(
    u: &'a UserRow,
    guardian_id: Option<i64>,
    linked_names: Option<Names<'a>>,
    incomplete: bool,
) -> SyncedFields<'a> {
    let (mut first_name, mut last_name) = (&u.first_name, &u.last_name);
    if let Some((f, l)) = linked_names {
        if f.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            first_name = f;
        }
        if l.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            last_name = l;
        }
    }
    SyncedFields {
        first_name,
        last_name,
        powerschool_guardian_id: guardian_id,
        incomplete,
    }
}

/// `UserUpdate`, borrowing its names.
struct SyncedFields<'a> {
    first_name: &'a Option<Name>,
    last_name: &'a Option<Name>,
    powerschool_guardian_id: Option<i64>,
    incomplete: bool,
}

impl SyncedFields<'_> {
    fn update(&self, id: i64) -> UserUpdate {
        UserUpdate {
            id,
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            powerschool_guardian_id: self.powerschool_guardian_id,
            incomplete: self.incomplete,
        }
    }

    /// Whether they change any synced field of the stored user (as
    /// `changes_user` tells of an update).
    fn changes(&self, stored: &UserRow) -> bool {
        *self.first_name != stored.first_name
            || *self.last_name != stored.last_name
            || self.powerschool_guardian_id != stored.powerschool_guardian_id
            || self.incomplete != stored.incomplete
    }
}

/// Whether the update changes any synced field of the stored user.
pub(crate) fn changes_user(update: &UserUpdate, stored: &UserRow) -> bool {
    SyncedFields {
        first_name: &update.first_name,
        last_name: &update.last_name,
        powerschool_guardian_id: update.powerschool_guardian_id,
        incomplete: update.incomplete,
    }
    .changes(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(user_id: i64, powerschool_guardian_id: Option<i64>) -> UserRow {
        UserRow {
            user_id,
            email: format!("parent{user_id}@example.org"),
            first_name: Some("Old".into()),
            last_name: Some("Name".into()),
            email_verified: true,
            powerschool_guardian_id,
            incomplete: false,
        }
    }

    fn account(guardian_id: i64, first: &str) -> GuardianLink {
        GuardianLink {
            guardian_id,
            student_dcid: 1,
            email: None,
            first_name: Some(first.into()),
            last_name: Some("Name".into()),
            web_access_account: false,
        }
    }

    /// The links and incomplete flags the rules decided reach exactly their
    /// users, among many that keep theirs (both lists are searched, so this
    /// also checks the search finds the first, the last and none between).
    #[test]
    fn each_user_gets_the_link_name_and_flag_decided_for_them_and_no_other() {
        let stored: Vec<UserRow> = (1..=9)
            .map(|u| user(u, None))
            .chain([user(10, Some(9010))])
            .collect();
        let rows = [
            account(9001, "First"),
            account(9005, "Fifth"),
            account(9009, "Ninth"),
            account(9010, "Tenth"),
        ];
        let mut d = Decisions {
            guardian_links: vec![(1, 9001), (5, 9005), (9, 9009)],
            incomplete_users: vec![2, 5, 9],
            ..Decisions::default()
        };
        let changes = user_changes(&stored, &rows, &mut d);
        let got: Vec<(i64, Option<i64>, String, bool)> = changes
            .updates
            .iter()
            .map(|u| {
                let first = u.first_name.as_deref().unwrap_or_default().to_string();
                (u.id, u.powerschool_guardian_id, first, u.incomplete)
            })
            .collect();
        let expected = vec![
            (1, Some(9001), "First".to_string(), false),
            (2, None, "Old".to_string(), true),
            (5, Some(9005), "Fifth".to_string(), true),
            (9, Some(9009), "Ninth".to_string(), true),
            (10, Some(9010), "Tenth".to_string(), false),
        ];
        assert_eq!(got, expected);
        assert_eq!(changes.unchanged, 5, "users 3, 4, 6, 7 and 8 keep theirs");
    }
}
