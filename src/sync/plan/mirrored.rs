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
    fn same(&self, keys: &[K], rows: &[&T]) -> Vec<Option<bool>>;
    fn count(&self) -> usize;
    /// The stored keys not in `seen` (sorted), in key order.
    fn gone(&self, seen: &[K]) -> Vec<K>;
}

impl<K: Ord + Copy + Hash, T: PartialEq> Stored<K, T> for HashMap<K, T> {
    fn same(&self, keys: &[K], rows: &[&T]) -> Vec<Option<bool>> {
        keys.iter()
            .zip(rows)
            .map(|(key, row)| self.get(key).map(|old| old == *row))
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
    fn same(&self, keys: &[K], rows: &[&T]) -> Vec<Option<bool>> {
        let mut stored = self.cursor();
        let mut line = Vec::new();
        keys.iter()
            .zip(rows)
            .map(|(key, row)| {
                stored
                    .get(key)
                    .map(|old| old == digest::of_row(*row, &mut line))
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

/// A fetched row of a kind mirrored for the sync set's students (contacts,
/// guardian accounts): its key, and the student it belongs to.
pub(super) trait OfStudent {
    type Key: Ord + Copy;
    fn key(&self) -> Self::Key;
    fn student(&self) -> i64;
}

impl OfStudent for StudentContact {
    type Key = (i64, i64);
    fn key(&self) -> (i64, i64) {
        (self.student_dcid, self.person_id)
    }
    fn student(&self) -> i64 {
        self.student_dcid
    }
}

impl OfStudent for GuardianLink {
    type Key = (i64, i64);
    fn key(&self) -> (i64, i64) {
        (self.guardian_id, self.student_dcid)
    }
    fn student(&self) -> i64 {
        self.student_dcid
    }
}

/// The stored rows of such a kind, in whichever form the state was read.
pub(super) type StoredRows<R> = dyn Stored<<R as OfStudent>::Key, R> + Sync;

/// The fetched rows' comparison with the stored ones (see `Compared`): the
/// rows of the sync set's students (`in_set`, sorted dcids) only.
pub(super) fn compare_of_sync_set<R: OfStudent>(
    fetched: &[R],
    in_set: &[i64],
    current: &StoredRows<R>,
) -> Compared<R::Key> {
    let counts = |r: &R| in_set.binary_search(&r.student()).is_ok();
    compare(fetched, counts, R::key, current)
}

/// What a mirrored kind's fetched rows are against the stored ones,
/// worked out from references to them, so that it is done while the rules
/// read the same rows (on a thread of its own); `split` then moves the rows
/// into their changes. Only the rows of the sync set's students count, one
/// a key (a later record of the same key wins).
#[derive(Debug)]
pub(super) struct Compared<K> {
    /// For each fetched row, by position: what it is.
    class: Vec<Class>,
    unchanged: u64,
    /// The stored keys PowerSchool no longer has, in key order.
    gone: Vec<K>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not the sync set's, a duplicate key, or equal to the stored row.
    Dropped,
    Created,
    Updated,
}

/// `Compared` for the `fetched` rows that `counts` keeps.
fn compare<R, K: Ord + Copy>(
    fetched: &[R],
    counts: impl Fn(&R) -> bool,
    key_of: impl Fn(&R) -> K,
    current: &(impl Stored<K, R> + ?Sized),
) -> Compared<K> {
    let mut fresh: Vec<(K, usize)> = fetched
        .iter()
        .enumerate()
        .filter(|(_, r)| counts(r))
        .map(|(at, r)| (key_of(r), at))
        .collect();
    // By key, then position: a key's records stay in fetch order (a fetch
    // comes sorted, so the sort is one pass), and the last one is kept.
    fresh.sort_unstable();
    fresh.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    let keys: Vec<K> = fresh.iter().map(|(k, _)| *k).collect();
    // Every position is one of `fetched` (the `get`s below cannot miss).
    let rows: Vec<&R> = fresh
        .iter()
        .filter_map(|(_, at)| fetched.get(*at))
        .collect();
    let stored = current.same(&keys, &rows);
    drop(rows);
    let mut compared = Compared {
        class: vec![Class::Dropped; fetched.len()],
        unchanged: 0,
        gone: Vec::new(),
    };
    for ((_, at), stored) in fresh.iter().zip(&stored) {
        let class = match stored {
            None => Class::Created,
            Some(false) => Class::Updated,
            Some(true) => {
                compared.unchanged += 1;
                Class::Dropped
            }
        };
        if let Some(c) = compared.class.get_mut(*at) {
            *c = class;
        }
    }
    // When every stored key was met (a quiet night), no search is made.
    let met = stored.iter().filter(|s| s.is_some()).count();
    if met < current.count() {
        compared.gone = current.gone(&keys);
    }
    compared
}

impl<K: Ord> Compared<K> {
    /// The compared rows moved into their changes (see `split`).
    pub(super) fn into_changes<R: OfStudent<Key = K>>(self, fetched: Vec<R>) -> RowChanges<R, K> {
        self.split(fetched, R::key)
    }

    /// The rows move into their changes in place (on a first sync the
    /// fetched rows become the creates without a copy); the others are
    /// freed. Creates and updates end in key order.
    fn split<T>(self, mut fetched: Vec<T>, key_of: impl Fn(&T) -> K) -> RowChanges<T, K> {
        // The very rows compared, untouched since: a row in the wrong place
        // would be written as another's change.
        assert_eq!(self.class.len(), fetched.len(), "split the rows compared");
        let mut classes = self.class.iter();
        let mut update: Vec<T> = fetched
            .extract_if(.., |_| classes.next() == Some(&Class::Updated))
            .collect();
        let mut kept = self.class.iter().filter(|c| **c != Class::Updated);
        fetched.retain(|_| kept.next() == Some(&Class::Created));
        // On a quiet night the buffer is nearly empty now: give it back.
        fetched.shrink_to_fit();
        fetched.sort_unstable_by_key(&key_of);
        update.sort_unstable_by_key(&key_of);
        RowChanges {
            create: fetched,
            update,
            remove: self.gone,
            unchanged: self.unchanged,
        }
    }
}

/// Splits the fresh rows (in key order, one per key) into the changes:
/// `compare` and `split`, for rows already of the sync set.
fn diff_rows<K: Ord + Copy, T, S: Stored<K, T> + ?Sized>(
    fresh: Vec<T>,
    key_of: impl Fn(&T) -> K,
    current: &S,
) -> RowChanges<T, K> {
    compare(&fresh, |_| true, &key_of, current).split(fresh, key_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(student_dcid: i64, person_id: i64, first: &str) -> StudentContact {
        StudentContact {
            student_dcid,
            person_id,
            first_name: Some(first.into()),
            last_name: None,
            email: None,
            is_decision_making: true,
        }
    }

    /// Compared from references, then split: the sync set's rows only, a
    /// key's last record, creates and updates in key order, the unchanged
    /// freed and counted, and the stored keys no longer sent removed. Both
    /// forms of the stored state give the same changes.
    #[test]
    fn fetched_rows_split_into_their_changes_whatever_their_order() {
        let stored_rows = [
            contact(1, 1, "Ana"),
            contact(1, 2, "Bo"),
            contact(3, 1, "Cy"),
        ];
        let mut by_row: HashMap<(i64, i64), StudentContact> = HashMap::new();
        let mut by_digest: Digests<(i64, i64)> = Digests::default();
        for c in stored_rows {
            by_digest.push(c.key(), digest::of_row(&c, &mut Vec::new()));
            by_row.insert(c.key(), c);
        }
        by_digest.finish();
        let fetched = vec![
            contact(2, 9, "New"), // created, fetched before a smaller key
            contact(1, 2, "Old"), // the first of three records of (1, 2)...
            contact(1, 1, "Ann"), // an earlier record of (1, 1)...
            contact(1, 2, "Bo"),  // ...(equal to the stored one)...
            contact(1, 1, "Ana"), // ...and its last, the stored one: unchanged
            contact(1, 2, "Bob"), // ...and the last of (1, 2): updated
            contact(7, 1, "Out"), // not the sync set's student
            contact(1, 0, "Zed"), // created
        ];
        let in_set = [1, 2, 3];
        for current in [&by_row as &StoredRows<StudentContact>, &by_digest] {
            let compared = compare_of_sync_set(&fetched, &in_set, current);
            let changes = compared.into_changes(fetched.clone());
            assert_eq!(
                changes.create,
                vec![contact(1, 0, "Zed"), contact(2, 9, "New")]
            );
            assert_eq!(changes.update, vec![contact(1, 2, "Bob")]);
            assert_eq!(changes.remove, vec![(3, 1)]);
            assert_eq!(changes.unchanged, 1);
        }
    }
}
