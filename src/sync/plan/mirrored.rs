//! The diff of the rows the database mirrors from PowerSchool: students
//! (a student leaving the sync set is kept, marked as out of it), and the
//! contacts and guardian accounts of the sync set's students (removed when
//! PowerSchool no longer has them). A row equal to its stored copy is only
//! counted.

use super::changes::RowChanges;
use crate::powerschool::{GuardianLink, StudentContact};
use crate::store::state::StudentRow;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// The students' changes (`in_set` in dcid order, one row per dcid), and the dcids of those leaving the sync set
/// (their rows are in the updates, with `in_sync_set` off; a student
/// already out of it and still not returned stays as it is).
pub(super) fn student_changes(
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
    fetched: &[StudentContact],
    in_set: &HashSet<i64>,
    current: &HashMap<(i64, i64), StudentContact>,
) -> RowChanges<StudentContact, (i64, i64)> {
    let fresh = of_sync_set(
        fetched,
        in_set,
        |c| c.student_dcid,
        |c| (c.student_dcid, c.person_id),
    );
    diff_rows(
        fresh.into_iter().map(|(k, r)| (k, Cow::Borrowed(r))),
        current,
    )
}

pub(super) fn guardian_account_changes(
    fetched: &[GuardianLink],
    in_set: &HashSet<i64>,
    current: &HashMap<(i64, i64), GuardianLink>,
) -> RowChanges<GuardianLink, (i64, i64)> {
    let fresh = of_sync_set(
        fetched,
        in_set,
        |g| g.student_dcid,
        |g| (g.guardian_id, g.student_dcid),
    );
    diff_rows(
        fresh.into_iter().map(|(k, r)| (k, Cow::Borrowed(r))),
        current,
    )
}

/// The fetched records whose student is in the sync set, in key order, one
/// per key (a later record of the same key wins); borrowed, so only the
/// changed ones are ever copied. A fetch comes sorted, so the sort is one
/// pass.
fn of_sync_set<'a, R, K: Ord + Copy>(
    fetched: &'a [R],
    in_set: &HashSet<i64>,
    student_of: impl Fn(&R) -> i64,
    key_of: impl Fn(&R) -> K,
) -> Vec<(K, &'a R)> {
    let mut fresh: Vec<(K, &'a R)> = fetched
        .iter()
        .filter(|r| in_set.contains(&student_of(r)))
        .map(|r| (key_of(r), r))
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
fn diff_rows<'a, K: Ord + Copy + Hash, T: PartialEq + Clone + 'a>(
    fresh: impl Iterator<Item = (K, Cow<'a, T>)>,
    current: &HashMap<K, T>,
) -> RowChanges<T, K> {
    let mut changes = RowChanges::default();
    let mut met = 0usize;
    let mut seen: Vec<K> = Vec::new();
    for (key, row) in fresh {
        seen.push(key);
        match current.get(&key) {
            None => changes.create.push(row.into_owned()),
            Some(old) => {
                met += 1;
                if *old != *row {
                    changes.update.push(row.into_owned());
                } else {
                    changes.unchanged += 1;
                }
            }
        }
    }
    if met < current.len() {
        let mut gone: Vec<K> = current
            .keys()
            .filter(|k| seen.binary_search(k).is_err())
            .copied()
            .collect();
        gone.sort();
        changes.remove = gone;
    }
    changes
}
