//! The typed records the four PowerQueries return, as the rest of the
//! pipeline sees them. PowerSchool sends every value as a string and a NULL as
//! absent or `""`; parsing into these types happens once, in the client, so
//! nothing downstream ever looks at raw JSON.

use serde::{Deserialize, Serialize};

/// The guardian links and student contacts are the rules' own facts, parsed
/// straight into the rules' types (one type per row kind, in every layer).
pub use crate::rules::{GuardianLink, Name, StudentContact};

/// One school of the district (`org.studentsync.sync.schools.list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    pub id: Option<i64>,
    pub name: String,
    pub school_number: i64,
}

/// One enrolled (`enroll_status <= 0`) student from
/// `org.studentsync.sync.students.enrolled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Student {
    pub dcid: i64,
    /// (`powerschool_id` in the database and in plans held before it was
    /// stored as the record itself.)
    #[serde(alias = "powerschool_id")]
    pub id: Option<i64>,
    pub student_number: Option<Name>,
    pub first_name: Option<Name>,
    pub last_name: Option<Name>,
    pub grade_level: Option<i64>,
    /// The school's `school_number`.
    pub school_number: i64,
    /// 0 active, -1 pre-registered.
    pub enroll_status: i64,
    pub entry_date: Option<chrono::NaiveDate>,
    pub org_email: Option<String>,
    pub personal_email: Option<String>,
}

/// One row of `org.studentsync.sync.students.independent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndependentStudent {
    pub dcid: i64,
    pub enrollment_types: [Option<String>; 3],
    pub org_email: Option<String>,
    pub personal_email: Option<String>,
}

/// A record the client could not parse. It is reported and skipped; the run
/// goes on with the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordProblem {
    /// The PowerQuery name.
    pub query: String,
    /// The record's key as far as it could be read (dcid, guardianid, …),
    /// or `"page N, record M"` when even that was unreadable.
    pub record_id: String,
    pub field: String,
    pub value: String,
    pub message: String,
}

/// Everything one fetch brought back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistrictSnapshot {
    pub schools: Vec<School>,
    pub guardians: Vec<GuardianLink>,
    pub students: Vec<Student>,
    pub independent_students: Vec<IndependentStudent>,
    pub contacts: Vec<StudentContact>,
    pub problems: Vec<RecordProblem>,
    /// Transient failures that were retried and then succeeded, per query.
    pub retries: u64,
}

impl DistrictSnapshot {
    /// Sorts every list by its key and keeps one record per key, so two
    /// fetches of the same data are equal whatever order PowerSchool used.
    /// A student who moved school during the fetch can come back from two
    /// schools: the lowest school number is kept. Returns how many student
    /// records were dropped that way.
    pub fn sort_and_dedup(&mut self) -> usize {
        // Stable sorts of the keys beside their positions, then one move
        // of each record: a district's records are too wide to move about
        // in a sort (see `slice::sort_by_cached_key`).
        self.guardians
            .sort_by_cached_key(|g| (g.guardian_id, g.student_dcid));
        self.independent_students.sort_by_cached_key(|s| s.dcid);
        self.students
            .sort_by_cached_key(|s| (s.dcid, s.school_number));
        let before = self.students.len();
        self.students.dedup_by_key(|s| s.dcid);
        self.contacts
            .sort_by_cached_key(|c| (c.student_dcid, c.person_id));
        self.contacts
            .dedup_by_key(|c| (c.student_dcid, c.person_id));
        self.problems.sort_by(|a, b| {
            (&a.query, &a.record_id, &a.field).cmp(&(&b.query, &b.record_id, &b.field))
        });
        before - self.students.len()
    }
}
