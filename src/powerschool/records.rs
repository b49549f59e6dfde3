//! The typed records the four PowerQueries return, as the rest of the
//! pipeline sees them. PowerSchool sends every value as a string and a NULL as
//! absent or `""`; parsing into these types happens once, in the client, so
//! nothing downstream ever looks at raw JSON.

use serde::{Deserialize, Serialize};

/// One school of the district (`/ws/v1/district/school`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    pub id: Option<i64>,
    pub name: String,
    pub school_number: i64,
}

/// One row of `com.pearson.core.guardian.student_guardian_detail`: a Parent
/// Portal (or Web Access) account linked to one student.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianLink {
    pub guardian_id: i64,
    pub student_dcid: i64,
    /// As PowerSchool holds it: not normalised, may be absent.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `accounttype = "webaccess"`: rule R1 ignores the row.
    pub web_access_account: bool,
}

/// One enrolled (`enroll_status <= 0`) student from
/// `org.studentsync.sync.students.enrolled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Student {
    pub dcid: i64,
    pub id: Option<i64>,
    pub student_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
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

/// One (student, contact person) row of `org.studentsync.sync.students.contacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentContact {
    pub student_dcid: i64,
    pub person_id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// `u_studentcontactdetail.isdecisionmaking = 1`
    pub is_decision_making: bool,
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
