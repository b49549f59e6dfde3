//! What a plan is made of: the creates, updates and removals of each kind of
//! row, the connection changes with the decisions behind them, and the
//! counts the report, the safety check and the run history read.

use crate::powerschool::DistrictSnapshot;
use crate::rules::{AccessTier, ConnectionDecision, Origin, UserRef};
use crate::store::state::ConnectionRow;
use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strum::IntoStaticStr;

/// Creates, updates and removals of one kind of PowerSchool-owned row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowChanges<T, K> {
    pub create: Vec<T>,
    pub update: Vec<T>,
    pub remove: Vec<K>,
    pub unchanged: u64,
}

impl<T, K> Default for RowChanges<T, K> {
    fn default() -> Self {
        RowChanges {
            create: Vec::new(),
            update: Vec::new(),
            remove: Vec::new(),
            unchanged: 0,
        }
    }
}

impl<T, K> RowChanges<T, K> {
    /// Frees the rows once they are written and returns how many there
    /// were; the plan's `counts` still tell them.
    pub fn release(&mut self) -> usize {
        let written = self.create.len() + self.update.len() + self.remove.len();
        *self = RowChanges {
            unchanged: self.unchanged,
            ..RowChanges::default()
        };
        written
    }

    pub fn counts(&self) -> KindCounts {
        KindCounts {
            created: self.create.len() as u64,
            updated: self.update.len() as u64,
            removed: self.remove.len() as u64,
            unchanged: self.unchanged,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(Serialize, Deserialize)]
#[derive(IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConnectionChangeKind {
    Create,
    Update,
    Remove,
}
static_str!(ConnectionChangeKind);

/// One connection the run writes, with the decision behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionChange {
    pub kind: ConnectionChangeKind,
    /// Boxed: a first sync creates every connection, and a `None` then
    /// costs a pointer instead of a whole row.
    pub before: Option<Box<ConnectionRow>>,
    pub user: UserRef,
    pub origin: Origin,
    pub decision: ConnectionDecision,
}

impl ConnectionChange {
    pub fn tier_before(&self) -> Option<AccessTier> {
        self.before.as_ref().map(|b| b.tier)
    }
    pub fn tier_after(&self) -> Option<AccessTier> {
        match self.kind {
            ConnectionChangeKind::Remove => None,
            _ => Some(self.decision.tier),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionCounts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub tier_up: u64,
    pub tier_down: u64,
    pub orphaned: u64,
}

impl ConnectionCounts {
    /// The counts of the changes a plan writes (each kind, and the kept
    /// connections whose tier goes up or down), with the unchanged and
    /// orphaned connections as counted by the planner.
    pub fn tally(changes: &[ConnectionChange], unchanged: u64, orphaned: u64) -> ConnectionCounts {
        let mut counts = ConnectionCounts {
            unchanged,
            orphaned,
            ..Default::default()
        };
        for c in changes {
            match c.kind {
                ConnectionChangeKind::Create => counts.created += 1,
                ConnectionChangeKind::Update => counts.updated += 1,
                ConnectionChangeKind::Remove => counts.removed += 1,
            }
            if let (Some(before), Some(after)) = (c.tier_before(), c.tier_after()) {
                if after > before {
                    counts.tier_up += 1;
                } else if after < before {
                    counts.tier_down += 1;
                }
            }
        }
        counts
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchCounts {
    pub guardians: u64,
    pub students: u64,
    pub independent_students: u64,
    pub contacts: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanCounts {
    pub fetched: FetchCounts,
    pub students: KindCounts,
    pub contacts: KindCounts,
    pub guardian_accounts: KindCounts,
    pub users: KindCounts,
    pub connections: ConnectionCounts,
    pub scheduling_year_excluded: u64,
    pub problems: u64,
    /// What PowerSchool sent per school (by `school_number`), kept with the
    /// run so the next night can see one school's answer shrink.
    #[serde(default)]
    pub per_school: BTreeMap<i64, SchoolCounts>,
}

/// The students and contacts PowerSchool sent for one school.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolCounts {
    pub students: u64,
    /// Contacts of the school's students.
    pub contacts: u64,
}

impl SchoolCounts {
    /// Per school, from a fetch: each student counts at its school, each
    /// contact at its student's school (contacts of students PowerSchool did
    /// not send are not counted).
    pub fn of(snapshot: &DistrictSnapshot) -> BTreeMap<i64, SchoolCounts> {
        let mut out: BTreeMap<i64, SchoolCounts> = snapshot
            .schools
            .iter()
            .map(|s| (s.school_number, SchoolCounts::default()))
            .collect();
        for s in &snapshot.students {
            out.entry(s.school_number).or_default().students += 1;
        }
        // A fetch comes sorted by student, one record each
        // (`DistrictSnapshot::sort_and_dedup`):
        // the contacts are then matched in one walk beside the students.
        let (students, contacts) = (&snapshot.students, &snapshot.contacts);
        let one_each = students.is_sorted_by(|a, b| a.dcid < b.dcid);
        if one_each && contacts.is_sorted_by_key(|c| c.student_dcid) {
            let mut students = students.iter().peekable();
            for c in contacts {
                while students.next_if(|s| s.dcid < c.student_dcid).is_some() {}
                if let Some(s) = students.peek().filter(|s| s.dcid == c.student_dcid) {
                    out.entry(s.school_number).or_default().contacts += 1;
                }
            }
            return out;
        }
        let school_of: HashMap<i64, i64> =
            students.iter().map(|s| (s.dcid, s.school_number)).collect();
        for c in contacts {
            if let Some(school) = school_of.get(&c.student_dcid) {
                out.entry(*school).or_default().contacts += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerschool::{Student, StudentContact};

    fn student(dcid: i64, school_number: i64) -> Student {
        Student {
            dcid,
            id: None,
            student_number: None,
            first_name: None,
            last_name: None,
            grade_level: None,
            school_number,
            enroll_status: 0,
            entry_date: None,
            org_email: None,
            personal_email: None,
        }
    }

    #[test]
    fn released_changes_say_how_many_rows_they_held_and_keep_the_unchanged_count() {
        let mut changes: RowChanges<StudentContact, (i64, i64)> = RowChanges {
            create: vec![contact(1, 10), contact(1, 11)],
            update: vec![contact(2, 20)],
            remove: vec![(3, 30)],
            unchanged: 7,
        };
        assert_eq!(changes.release(), 4);
        assert!(
            changes.create.is_empty() && changes.update.is_empty() && changes.remove.is_empty()
        );
        assert_eq!(changes.create.capacity(), 0, "the rows' memory is freed");
        assert_eq!(changes.unchanged, 7);
        assert_eq!(changes.release(), 0);
    }

    fn contact(student_dcid: i64, person_id: i64) -> StudentContact {
        StudentContact {
            student_dcid,
            person_id,
            first_name: None,
            last_name: None,
            email: None,
            is_decision_making: false,
        }
    }

    #[test]
    fn school_counts_are_the_same_for_a_sorted_fetch_and_any_other_order() {
        let mut snapshot = DistrictSnapshot {
            students: vec![student(1, 10), student(2, 20), student(3, 10)],
            contacts: vec![contact(1, 5), contact(1, 6), contact(2, 5), contact(4, 7)],
            ..DistrictSnapshot::default()
        };
        let counts = |students, contacts| {
            BTreeMap::from([
                (10, SchoolCounts { students, contacts }),
                (
                    20,
                    SchoolCounts {
                        students: 1,
                        contacts: 1,
                    },
                ),
            ])
        };
        assert_eq!(
            SchoolCounts::of(&snapshot),
            counts(2, 2),
            "sorted: one walk"
        );
        snapshot.students.reverse();
        snapshot.contacts.reverse();
        assert_eq!(SchoolCounts::of(&snapshot), counts(2, 2), "any order");
    }
}
