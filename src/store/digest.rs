//! The mirrored tables (students, contacts, guardian accounts) as a nightly
//! run compares them: for every stored row its key and a 64-bit digest of
//! all its fields, never the row itself. A run only asks "is this fetched
//! row the stored one?", and a digest answers that in 16 to 24 bytes a row instead
//! of a few hundred, so a district's state is a few sorted arrays.
//!
//! The digest is the row's derived `Hash` (the same fields `PartialEq`
//! compares) through the standard library's SipHash with fixed keys: both
//! sides are hashed in the same process, so they agree exactly when the rows
//! are equal, but for a collision (one chance in 2^64 per changed row; such
//! a row would be written the next time any of its fields changes). Digests
//! are never stored: they mean nothing to another build.
//!
//! `plan`, `spot` and `explain` read the rows themselves (`Detail::Rows`):
//! they show what changed, field by field.

use std::hash::{Hash, Hasher};

/// How much of the mirrored tables a loaded state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every row in full (`plan --details`, spot syncs, `explain`).
    Rows,
    /// A digest per row (a run: it only needs to know what changed).
    Digests,
}

/// The digest of a row: equal rows give equal digests.
pub fn digest<T: Hash>(row: &T) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    row.hash(&mut hasher);
    hasher.finish()
}

/// One mirrored table's stored rows as (key, digest), in key order.
#[derive(Debug, Clone)]
pub struct Digests<K> {
    rows: Vec<(K, u64)>,
}

impl<K> Default for Digests<K> {
    fn default() -> Self {
        Digests { rows: Vec::new() }
    }
}

impl<K: Ord + Copy> Digests<K> {
    /// Adds a stored row (in any order; `finish` sorts).
    pub fn push<T: Hash>(&mut self, key: K, row: &T) {
        self.rows.push((key, digest(row)));
    }

    /// Sorts by key, once every row is in (a key twice keeps both; the
    /// tables' primary keys rule that out).
    pub fn finish(&mut self) {
        self.rows.sort_unstable_by_key(|(k, _)| *k);
        self.rows.shrink_to_fit();
    }

    /// The stored row's digest, if a row of that key is stored.
    pub fn get(&self, key: &K) -> Option<u64> {
        self.rows
            .binary_search_by_key(key, |(k, _)| *k)
            .ok()
            .and_then(|i| self.rows.get(i))
            .map(|(_, d)| *d)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every stored key, in order.
    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.rows.iter().map(|(k, _)| *k)
    }
}

/// The three mirrored tables by digest, and which students are stored as in
/// the sync set (to tell who leaves it).
#[derive(Debug, Clone, Default)]
pub struct MirroredDigests {
    pub students: Digests<i64>,
    /// Sorted dcids of the stored students marked in the sync set.
    pub students_in_set: Vec<i64>,
    pub contacts: Digests<(i64, i64)>,
    pub guardian_accounts: Digests<(i64, i64)>,
}

impl MirroredDigests {
    /// Whether the student is stored as in the sync set.
    pub fn in_sync_set(&self, dcid: i64) -> bool {
        self.students_in_set.binary_search(&dcid).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Hash)]
    struct Row {
        id: i64,
        name: Option<String>,
    }

    #[test]
    fn equal_rows_agree_and_a_changed_field_differs() {
        let a = Row {
            id: 1,
            name: Some("Ana".into()),
        };
        let same = Row {
            id: 1,
            name: Some("Ana".into()),
        };
        let changed = Row {
            id: 1,
            name: Some("Ana ".into()),
        };
        let absent = Row { id: 1, name: None };
        assert_eq!(digest(&a), digest(&same));
        assert_ne!(digest(&a), digest(&changed));
        assert_ne!(digest(&a), digest(&absent));
    }

    #[test]
    fn lookups_find_stored_keys_only() {
        let mut d = Digests::default();
        for id in [5i64, 1, 3] {
            d.push(id, &Row { id, name: None });
        }
        d.finish();
        assert_eq!(d.keys().collect::<Vec<_>>(), vec![1, 3, 5]);
        assert_eq!(d.get(&3), Some(digest(&Row { id: 3, name: None })));
        assert_eq!(d.get(&4), None);
        assert_eq!(d.len(), 3);
    }
}
