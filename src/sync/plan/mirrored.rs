//! The diff of the rows the database mirrors from PowerSchool: students
//! (a student leaving the sync set is kept, marked as out of it), and the
//! contacts and guardian accounts of the sync set's students (removed when
//! PowerSchool no longer has them). A row equal to its stored copy is only
//! counted.

use super::changes::RowChanges;
use crate::powerschool::{GuardianLink, StudentContact};
use crate::store::digest::{self, Digests, MirroredDigests};
use crate::store::state::{CurrentState, StudentRow};
use crate::store::write::MirroredRow;
use std::collections::HashMap;
use std::hash::Hash;

/// The stored rows of one mirrored table, as a plan compares with them:
/// in full, or by digest (see `store::digest`).
pub(super) trait Stored<K, T> {
    /// For each row (its key at the same position of `keys`, in ascending
    /// order): `None` when no row of that key is stored, else whether it
    /// equals the stored one.
    fn same(&self, keys: &[K], rows: &[T]) -> Vec<Option<bool>>;
    fn count(&self) -> usize;
    /// The stored keys not in `seen` (sorted), in key order.
    fn gone(&self, seen: &[K]) -> Vec<K>;
}

impl<K: Ord + Copy + Hash, T: PartialEq> Stored<K, T> for HashMap<K, T> {
    fn same(&self, keys: &[K], rows: &[T]) -> Vec<Option<bool>> {
        keys.iter()
            .zip(rows)
            .map(|(key, row)| self.get(key).map(|old| old == row))
            .collect()
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

/// Both sides are in key order, so both walks are merges (see
/// `digest::Cursor`).
impl<K: Ord + Copy, T: MirroredRow> Stored<K, T> for Digests<K> {
    fn same(&self, keys: &[K], rows: &[T]) -> Vec<Option<bool>> {
        let mut stored = self.cursor();
        let mut line = Vec::new();
        keys.iter()
            .zip(rows)
            .map(|(key, row)| {
                stored
                    .get(key)
                    .map(|old| old == digest::of_row(row, &mut line))
            })
            .collect()
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn gone(&self, seen: &[K]) -> Vec<K> {
        let mut seen = seen.iter().peekable();
        self.keys()
            .filter(|k| {
                while seen.next_if(|s| *s < k).is_some() {}
                seen.peek() != Some(&k)
            })
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
    let mut changes = diff_rows(in_set, |r| r.student.dcid, &current.students);
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

/// The students' changes (`in_set` in dcid order, one row per dcid), and
/// the dcids of those leaving the sync set (their rows are in the updates,
/// with `in_sync_set` off; a student already out of it and still not
/// returned stays as it is).
fn student_changes(
    in_set: Vec<StudentRow>,
    current: &HashMap<i64, StudentRow>,
) -> (RowChanges<StudentRow, i64>, Vec<i64>) {
    let mut changes = diff_rows(in_set, |r| r.student.dcid, current);
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
    in_set: &[i64],
    current: &dyn Stored<(i64, i64), StudentContact>,
) -> RowChanges<StudentContact, (i64, i64)> {
    let key = |c: &StudentContact| (c.student_dcid, c.person_id);
    let fresh = of_sync_set(fetched, in_set, |c| c.student_dcid, key);
    diff_rows(fresh, key, current)
}

pub(super) fn guardian_account_changes(
    fetched: Vec<GuardianLink>,
    in_set: &[i64],
    current: &dyn Stored<(i64, i64), GuardianLink>,
) -> RowChanges<GuardianLink, (i64, i64)> {
    let key = |g: &GuardianLink| (g.guardian_id, g.student_dcid);
    let fresh = of_sync_set(fetched, in_set, |g| g.student_dcid, key);
    diff_rows(fresh, key, current)
}

/// The fetched records whose student is in the sync set, in key order, one
/// per key (a later record of the same key wins), sorted and filtered in
/// place (never copied). A fetch comes sorted, so the sort is one pass.
fn of_sync_set<R, K: Ord + Copy>(
    mut fetched: Vec<R>,
    in_set: &[i64],
    student_of: impl Fn(&R) -> i64,
    key_of: impl Fn(&R) -> K,
) -> Vec<R> {
    fetched.retain(|r| in_set.binary_search(&student_of(r)).is_ok());
    fetched.sort_by_key(&key_of);
    fetched.dedup_by(|later, earlier| {
        let same = key_of(later) == key_of(earlier);
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    fetched
}

/// Splits the fresh rows (in key order, one per key) into the changes,
/// comparing each with the stored row: the new ones stay where they are
/// (on a first sync the fetched rows become the creates without a copy),
/// the changed ones move to the updates, and the unchanged ones are counted
/// and freed. The stored keys PowerSchool no longer has are removed, in key
/// order; when every stored key was met (a quiet night), no search for them
/// is made.
fn diff_rows<K: Ord + Copy, T, S: Stored<K, T> + ?Sized>(
    mut fresh: Vec<T>,
    key_of: impl Fn(&T) -> K,
    current: &S,
) -> RowChanges<T, K> {
    let seen: Vec<K> = fresh.iter().map(&key_of).collect();
    let stored = current.same(&seen, &fresh);
    let mut changes = RowChanges::default();
    let mut at = stored.iter();
    changes.update = fresh
        .extract_if(.., |_| at.next() == Some(&Some(false)))
        .collect();
    let mut at = stored.iter().filter(|s| **s != Some(false));
    fresh.retain(|_| at.next() == Some(&None));
    changes.unchanged = stored.iter().filter(|s| **s == Some(true)).count() as u64;
    // On a quiet night the buffer is nearly empty now: give it back.
    fresh.shrink_to_fit();
    changes.create = fresh;
    let met = stored.iter().filter(|s| s.is_some()).count();
    if met < current.count() {
        changes.remove = current.gone(&seen);
    }
    changes
}
