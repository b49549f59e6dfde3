//! Deterministic changes to a district between two runs, for the benchmark's
//! "1% changed" re-sync: a share of the students, the contacts and the
//! guardian links renamed, and the keys of what was changed, so the bench can
//! compare what the sync wrote with what changed.

use crate::harness::world::PowerSchoolSide;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};

/// The suffix added to a changed record's last name.
pub const CHANGED_SUFFIX: &str = " Changed";

/// The keys of the records `change_share` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// Students (`dcid`) whose last name changed.
    pub students: Vec<i64>,
    /// Contacts (`student_dcid`, `person_id`) whose last name changed.
    pub contacts: Vec<(i64, i64)>,
    /// Guardian accounts renamed: every link row of each changed, so the
    /// account keeps one name (and its SchoolEngage user follows it).
    pub guardian_ids: Vec<i64>,
    /// Guardian links (`guardianid`, `student_dcid`) whose last name changed.
    pub guardian_links: Vec<(i64, i64)>,
}

fn renamed(name: &Option<String>) -> Option<String> {
    Some(format!("{}{CHANGED_SUFFIX}", name.as_deref().unwrap_or("")))
}

/// Adds `CHANGED_SUFFIX` to the last name of `percent`% of the students and
/// of the contacts (picked at random from `seed`), and of whole guardian
/// accounts picked at random until their links make `percent`% of the links.
/// The same side, percent and seed always change the same records.
pub fn change_share(side: &mut PowerSchoolSide, percent: f64, seed: u64) -> Changed {
    let mut rng = StdRng::seed_from_u64(seed);
    let share = |n: usize| ((n as f64) * percent / 100.0).round() as usize;
    let mut changed = Changed::default();

    let n = side.students.len();
    for i in sample(&mut rng, n, share(n).min(n)).into_iter() {
        let Some(s) = side.students.get_mut(i) else {
            continue;
        };
        s.last_name = renamed(&s.last_name);
        changed.students.push(s.dcid);
    }
    let n = side.contacts.len();
    for i in sample(&mut rng, n, share(n).min(n)).into_iter() {
        let Some(c) = side.contacts.get_mut(i) else {
            continue;
        };
        c.last_name = renamed(&c.last_name);
        changed.contacts.push((c.student_dcid, c.person_id));
    }

    let links_wanted = share(side.guardian_accounts.len());
    let mut links_of: BTreeMap<i64, usize> = BTreeMap::new();
    for g in &side.guardian_accounts {
        *links_of.entry(g.guardianid).or_default() += 1;
    }
    let ids: Vec<(i64, usize)> = links_of.into_iter().collect();
    let mut picked = BTreeSet::new();
    let mut links = 0;
    for i in sample(&mut rng, ids.len(), ids.len()).into_iter() {
        if links >= links_wanted {
            break;
        }
        let Some(&(guardian_id, its_links)) = ids.get(i) else {
            continue;
        };
        picked.insert(guardian_id);
        links += its_links;
    }
    for g in side
        .guardian_accounts
        .iter_mut()
        .filter(|g| picked.contains(&g.guardianid))
    {
        g.last_name = renamed(&g.last_name);
        changed.guardian_links.push((g.guardianid, g.student_dcid));
    }
    changed.guardian_ids = picked.into_iter().collect();
    changed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::harness::fake_powerschool::generate;

    #[test]
    fn one_percent_is_changed_the_same_way_for_the_same_seed() {
        let original = generate(2_000, 1);
        let (mut a, mut b) = (original.clone(), original.clone());
        let changed = change_share(&mut a, 1.0, 7);
        assert_eq!(changed, change_share(&mut b, 1.0, 7));
        assert_eq!(a, b);

        let pct = |n: usize| ((n as f64) / 100.0).round() as usize;
        assert_eq!(changed.students.len(), pct(original.students.len()));
        assert_eq!(changed.contacts.len(), pct(original.contacts.len()));
        assert!(changed.guardian_links.len() >= pct(original.guardian_accounts.len()));
        let differing = original
            .students
            .iter()
            .zip(&a.students)
            .filter(|(o, n)| o != n)
            .count();
        assert_eq!(differing, changed.students.len());
        // Every link of a renamed account carries the new name.
        for g in &a.guardian_accounts {
            let renamed = changed.guardian_ids.contains(&g.guardianid);
            let has_suffix = g
                .last_name
                .as_deref()
                .unwrap_or("")
                .ends_with(CHANGED_SUFFIX);
            assert_eq!(renamed, has_suffix, "guardian {}", g.guardianid);
        }
    }
}
