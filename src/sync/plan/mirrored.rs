//! The diff of the rows the database mirrors from PowerSchool: students
//! (a student leaving the sync set is kept, marked as out of it), and the
//! contacts and guardian accounts of the sync set's students (removed when
//! PowerSchool no longer has them). A row equal to its stored copy is only
//! counted.

use super::changes::RowChanges;
use crate::powerschool::{GuardianLink, StudentContact};
use crate::store::digest::{self, Digests, MirroredDigests};
use crate::store::state::{CurrentState, StudentRow};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// The stored rows of one mirrored table, as a plan compares with them:
/// in full, or by digest (see `store::digest`).
pub(super) trait Stored<K, T> {
    /// `None` when no row of that key is stored; else whether it equals `row`.
    fn same(&self, key: &K, row: &T) -> Option<bool>;
    fn count(&self) -> usize;
    /// The stored keys not in `seen` (sorted), in key order.
    fn gone(&self, seen: &[K]) -> Vec<K>;
}

impl<K: Ord + Copy + Hash, T: PartialEq> Stored<K, T> for HashMap<K, T> {
    fn same(&self, key: &K, row: &T) -> Option<bool> {
        self.get(key).map(|old| old == row)
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn gone(&self, seen: &[K]) -> Vec<K> {
        let mut gone: Vec<K> = self
            .keys()
            .filter(|k| seen.binary_search(k).is_err())
            .copied()
            .collect();
        gone.sort();
        gone
    }
}

impl<K: Ord + Copy, T: Hash> Stored<K, T> for Digests<K> {
    fn same(&self, key: &K, row: &T) -> Option<bool> {
        self.get(key).map(|old| old == digest::digest(row))
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn gone(&self, seen: &[K]) -> Vec<K> {
        self.keys()
            .filter(|k| seen.binary_search(k).is_err())
            .collect()
    }
}

/// The students' changes against the state in whichever form it was read.
/// With digests, the rows of the students leaving the sync set are not at
/// hand: their dcids are returned, and the caller reads the rows (see
/// `Plan::add_leaving_rows`).
pub(super) fn student_changes_in(
    in_set: Vec<StudentRow>,
    state: &CurrentState,
) -> (RowChanges<StudentRow, i64>, Vec<i64>) {
    match &state.digests {
        None => student_changes(in_set, &state.students),
        Some(d) => student_changes_by_digest(in_set, d),
    }
}

/// `student_changes` against digests: the leaving students' dcids only.
fn student_changes_by_digest(
    in_set: Vec<StudentRow>,
    current: &MirroredDigests,
) -> (RowChanges<StudentRow, i64>, Vec<i64>) {
    let fresh = in_set.into_iter().map(|r| (r.student.dcid, Cow::Owned(r)));
    let mut changes = diff_rows(fresh, &current.students);
    let mut leaving = Vec::new();
    for dcid in std::mem::take(&mut changes.remove) {
        if current.in_sync_set(dcid) {
            leaving.push(dcid);
        } else {
            changes.unchanged += 1;
        }
    }
    (changes, leaving)
}

/// The students' changes (`in_set` in dcid order, one row per dcid), and the dcids of those leaving the sync set
/// (their rows are in the updates, with `in_sync_set` off; a student
/// already out of it and still not returned stays as it is).
fn student_changes(
    in_set: Vec<StudentRow>,
    current: &HashMap<i64, StudentRow>,
) -> (RowChanges<StudentRow, i64>, Vec<i64>) {
    let fresh = in_set.into_iter().map(|r| (r.student.dcid, Cow::Owned(r)));
    let mut changes = diff_rows(fresh, current);
    let mut leaving = Vec::new();
    for dcid in std::mem::take(&mut changes.remove) {
        match current.get(&dcid) {
            Some(old) if old.in_sync_set => {
                leaving.push(dcid);
                changes.update.push(StudentRow {
                    in_sync_set: false,
                    ..old.clone()
                });
            }
            _ => changes.unchanged += 1,
        }
    }
    (changes, leaving)
}

pub(super) fn contact_changes(
    fetched: Vec<StudentContact>,
    in_set: &HashSet<i64>,
    current: &dyn Stored<(i64, i64), StudentContact>,
) -> RowChanges<StudentContact, (i64, i64)> {
    let fresh = of_sync_set(
        fetched,
        in_set,
        |c| c.student_dcid,
        |c| (c.student_dcid, c.person_id),
    );
    diff_rows(fresh.into_iter().map(|(k, r)| (k, Cow::Owned(r))), current)
}

pub(super) fn guardian_account_changes(
    fetched: Vec<GuardianLink>,
    in_set: &HashSet<i64>,
    current: &dyn Stored<(i64, i64), GuardianLink>,
) -> RowChanges<GuardianLink, (i64, i64)> {
    let fresh = of_sync_set(
        fetched,
        in_set,
        |g| g.student_dcid,
        |g| (g.guardian_id, g.student_dcid),
    );
    diff_rows(fresh.into_iter().map(|(k, r)| (k, Cow::Owned(r))), current)
}

/// The fetched records whose student is in the sync set, in key order, one
/// per key (a later record of the same key wins), moved (never copied). A
/// fetch comes sorted, so the sort is one pass.
fn of_sync_set<R, K: Ord + Copy>(
    fetched: Vec<R>,
    in_set: &HashSet<i64>,
    student_of: impl Fn(&R) -> i64,
    key_of: impl Fn(&R) -> K,
) -> Vec<(K, R)> {
    let mut fresh: Vec<(K, R)> = fetched
        .into_iter()
        .filter(|r| in_set.contains(&student_of(r)))
        .map(|r| (key_of(&r), r))
        .collect();
    fresh.sort_by_key(|(k, _)| *k);
    fresh.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    fresh
}

/// Puts each fresh row (in key order, one per key) that is new or changed
/// into the changes (copied only then) and counts the others, comparing in
/// place with the stored row. The stored keys PowerSchool no longer has are
/// removed, in key order; when every stored key was met (a quiet night),
/// no search for them is made.
fn diff_rows<'a, K: Ord + Copy, T: Clone + 'a, S: Stored<K, T> + ?Sized>(
    fresh: impl Iterator<Item = (K, Cow<'a, T>)>,
    current: &S,
) -> RowChanges<T, K> {
    let mut changes = RowChanges::default();
    let mut met = 0usize;
    let mut seen: Vec<K> = Vec::new();
    for (key, row) in fresh {
        seen.push(key);
        match current.same(&key, &row) {
            None => changes.create.push(row.into_owned()),
            Some(same) => {
                met += 1;
                if same {
                    changes.unchanged += 1;
                } else {
                    changes.update.push(row.into_owned());
                }
            }
        }
    }
    if met < current.count() {
        changes.remove = current.gone(&seen);
    }
    changes
}
