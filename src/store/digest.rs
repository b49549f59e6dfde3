//! The mirrored tables (students, contacts, guardian accounts) as a nightly
//! run compares them: for every stored row its key and a 64-bit digest of
//! all its fields, never the row itself. A run only asks "is this fetched
//! row the stored one?", and a digest answers that in 16 to 24 bytes a row instead
//! of a few hundred, so a district's state is a few sorted arrays.
//!
//! The digest is of the row's COPY text line, the very bytes a run writes
//! it with (`write::MirroredRow::encode`), through SipHash-1-3 with keys 0
//! and 0 (the `siphasher` crate: a hash fixed by its specification, as the
//! digests are kept in the tables). A run writes each row's digest beside it
//! (`synced_digest`, migration 0009), so it reads a stored row as its key
//! and that number; a row whose digest is not known (written by hand, or
//! before that migration) comes as its COPY text line, which is hashed here
//! and the digest then stamped (`Stamps`). A fetched row is "the stored
//! one" exactly when writing it would store the same text, but for a
//! collision (one chance in 2^64 per changed row; such a row would be
//! written the next time any of its fields changes). For a row read as
//! text, where the two texts could differ for equal values (a value
//! PostgreSQL escapes otherwise), the row is only written again. Only a
//! run's transaction may set a digest: the tables' triggers drop any
//! other (see migration 0009 and `write::stamp_digests`).
//!
//! `plan`, `spot` and `explain` read the rows themselves (`Detail::Rows`):
//! they show what changed, field by field.

use std::hash::Hasher;

/// How much of the mirrored tables a loaded state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every row in full (`plan --details`, spot syncs, `explain`).
    Rows,
    /// A digest per row (a run: it only needs to know what changed).
    Digests,
}

/// The hasher of every digest kept in the tables (the mirrored rows', a
/// run's problems'): SipHash-1-3 with keys 0 and 0, fixed by its
/// specification, so a digest stored by one build means the same to the next.
pub fn hasher() -> siphasher::sip::SipHasher13 {
    siphasher::sip::SipHasher13::new_with_keys(0, 0)
}

/// The digest of one COPY text line (without its newline).
pub fn of_line(line: &[u8]) -> u64 {
    let mut hasher = hasher();
    hasher.write(line);
    hasher.finish()
}

/// The digest of a row as a run would write it: its COPY text line,
/// encoded into `line` (a buffer reused from row to row).
pub fn of_row<T: crate::store::write::MirroredRow>(row: &T, line: &mut Vec<u8>) -> u64 {
    line.clear();
    row.encode(line);
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    of_line(line)
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
    /// Adds a stored row's digest (in any order; `finish` sorts).
    pub fn push(&mut self, key: K, digest: u64) {
        self.rows.push((key, digest));
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

    /// Looks keys up in ascending order (see `Cursor`).
    pub fn cursor(&self) -> Cursor<'_, K> {
        Cursor {
            rows: &self.rows,
            at: 0,
        }
    }
}

/// Lookups of keys asked in ascending order, as a run asks them (the
/// fetched rows are sorted by the same key): each lookup moves on from the
/// last one, a merge of two sorted lists, so a district of millions of rows
/// costs a step or two a row instead of a search over the whole table,
/// which at that size misses the CPU's caches at nearly every step. A key
/// asked out of order is still found, by a search of the whole table.
pub struct Cursor<'a, K> {
    rows: &'a [(K, u64)],
    /// Every stored key before this position is below the last key asked
    /// in order.
    at: usize,
}

impl<K: Ord + Copy> Cursor<'_, K> {
    /// The stored row's digest, if a row of that key is stored.
    pub fn get(&mut self, key: &K) -> Option<u64> {
        let passed = self.at.checked_sub(1).and_then(|i| self.rows.get(i));
        if passed.is_some_and(|(k, _)| k >= key) {
            let i = self.rows.binary_search_by_key(key, |(k, _)| *k).ok()?;
            return self.rows.get(i).map(|(_, d)| *d);
        }
        let rest = self.rows.get(self.at..).unwrap_or_default();
        // Gallop: the key is at or before `rest[end]`.
        let mut end = 1;
        while rest.get(end).is_some_and(|(k, _)| k < key) {
            end *= 2;
        }
        let window = rest.get(..=end).unwrap_or(rest);
        let found = window.partition_point(|(k, _)| k < key);
        self.at += found;
        match window.get(found) {
            Some((k, d)) if k == key => Some(*d),
            _ => None,
        }
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
    /// The rows read without a digest, owed one.
    pub stamps: Stamps,
}

impl MirroredDigests {
    /// Whether the student is stored as in the sync set.
    pub fn in_sync_set(&self, dcid: i64) -> bool {
        self.students_in_set.binary_search(&dcid).is_ok()
    }
}

/// A stored row whose digest the table did not keep, hashed from its text
/// as it was read: the run writes the digest beside the row
/// (`write::stamp_digests`) if the row is still the version it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<K> {
    pub key: K,
    pub digest: u64,
    /// The row version read (PostgreSQL's `xmin`): a row written since is
    /// not stamped, as its text may no longer be the one hashed.
    pub version: i64,
}

/// The stamps a run owes each mirrored table (see `Stamp`): none on a
/// night after one that stamped, every row on the first night after
/// migration 0009.
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    pub students: Vec<Stamp<i64>>,
    pub contacts: Vec<Stamp<(i64, i64)>>,
    pub guardian_accounts: Vec<Stamp<(i64, i64)>>,
}

impl Stamps {
    /// How many rows are owed a digest.
    pub fn len(&self) -> usize {
        self.students.len() + self.contacts.len() + self.guardian_accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A digest as PostgreSQL keeps it (a `bigint`: the same 64 bits).
pub fn stored(digest: u64) -> i64 {
    digest as i64
}

/// A digest read back from PostgreSQL.
pub fn from_stored(stored: i64) -> u64 {
    stored as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerschool::StudentContact;

    fn contact(person_id: i64, email: Option<&str>) -> StudentContact {
        StudentContact {
            student_dcid: 7,
            person_id,
            first_name: Some("Ana".into()),
            last_name: Some("Lee".into()),
            email: email.map(str::to_string),
            is_decision_making: true,
        }
    }

    /// The digest of a row stands for its COPY line.
    fn digest(person_id: i64) -> u64 {
        of_row(&contact(person_id, None), &mut Vec::new())
    }

    #[test]
    fn a_row_is_digested_as_the_line_it_is_written_with() {
        let mut line = Vec::new();
        let a = of_row(&contact(1, Some("ana@x.org")), &mut line);
        assert_eq!(line, b"7\t1\tAna\tLee\tana@x.org\tt");
        assert_eq!(a, of_line(b"7\t1\tAna\tLee\tana@x.org\tt"));
        assert_eq!(a, of_row(&contact(1, Some("ana@x.org")), &mut line));
        assert_ne!(a, of_row(&contact(1, Some("ana@x.org ")), &mut line));
        assert_ne!(a, of_row(&contact(1, None), &mut line));
    }

    /// Digests are kept in the tables: a build that hashed otherwise would
    /// take every stored row for a changed one.
    #[test]
    fn the_digest_of_a_line_is_the_same_in_every_build() {
        assert_eq!(of_line(b""), 0xd1fb_a762_150c_532c);
        assert_eq!(
            of_line(b"7\t1\tAna\tLee\tana@x.org\tt"),
            1_778_225_706_789_039_565
        );
        assert_eq!(from_stored(stored(u64::MAX)), u64::MAX);
        assert_eq!(stored(u64::MAX), -1);
    }

    #[test]
    fn lookups_find_stored_keys_only() {
        let mut d = Digests::default();
        for id in [5i64, 1, 3] {
            d.push(id, digest(id));
        }
        d.finish();
        assert_eq!(d.keys().collect::<Vec<_>>(), vec![1, 3, 5]);
        assert_eq!(d.get(&3), Some(digest(3)));
        assert_eq!(d.get(&4), None);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_cursor_finds_what_a_search_finds_in_order_or_not() {
        let mut d = Digests::default();
        for id in (0i64..1000).map(|i| i * 3) {
            d.push(id, digest(id));
        }
        d.finish();
        // In order, with gaps of every size, then out of order.
        let mut asked: Vec<i64> = (-5..3005).filter(|k| k % 7 != 0 || k % 11 == 0).collect();
        asked.extend([2997, 3, 0, 1500, 1499, 4000, -1]);
        let mut cursor = d.cursor();
        for key in asked {
            assert_eq!(cursor.get(&key), d.get(&key), "key {key}");
        }
        let mut sparse = d.cursor();
        for key in [0i64, 600, 601, 2400, 2997, 2998] {
            assert_eq!(sparse.get(&key), d.get(&key), "key {key}");
        }
        assert_eq!(Digests::<i64>::default().cursor().get(&1), None);
    }
}
