//! The sync set (step 4 of the spec): which fetched students the run keeps
//! (enrolled, and scheduling-year students only when the district wants
//! them), each as the row the database mirrors, with its login decided.

use super::problems::problem;
use crate::config::SyncSettings;
use crate::powerschool::{IndependentStudent, Student};
use crate::rules::eligibility::{self, Eligibility};
use crate::store::state::StudentRow;
use crate::store::write::ProblemRow;
use chrono::NaiveDate;
use foldhash::HashSet;

/// The students of the sync set and what deciding it found.
pub(super) struct SyncSet {
    /// In dcid order, one per dcid (a list, not a map: the rows are large,
    /// and a fetch already comes in dcid order).
    pub students: Vec<StudentRow>,
    pub scheduling_year_excluded: u64,
    /// Students without a usable login, in dcid order.
    pub problems: Vec<ProblemRow>,
}

/// Decides the sync set from the fetched students, which move into its
/// rows (the others are freed). `today` is the district's local date.
pub(super) fn sync_set(
    students: Vec<Student>,
    independent_students: &[IndependentStudent],
    settings: &SyncSettings,
    today: NaiveDate,
) -> SyncSet {
    let independent: HashSet<i64> = independent_students
        .iter()
        .filter(|i| {
            eligibility::is_independent(&i.enrollment_types, &settings.independent_enrolment_type)
        })
        .map(|i| i.dcid)
        .collect();
    let mut set = SyncSet {
        students: Vec::with_capacity(students.len()),
        scheduling_year_excluded: 0,
        problems: Vec::new(),
    };
    for s in students {
        match eligibility::sync_set_status(
            s.enroll_status,
            s.entry_date,
            today,
            settings.include_scheduling_year,
        ) {
            Eligibility::Included => {}
            Eligibility::SchedulingYearExcluded => {
                set.scheduling_year_excluded += 1;
                continue;
            }
            Eligibility::NotEnrolled => continue,
        }
        let login = eligibility::student_login(
            s.org_email.as_deref(),
            s.personal_email.as_deref(),
            settings.student_login_field,
        );
        if login.is_none() {
            set.problems.push(problem(
                "student_without_login",
                s.dcid.to_string(),
                format!(
                    "student {} has no usable email in its login field ({}); synced without a login of its own",
                    s.dcid,
                    settings.student_login_field
                ),
            ));
        }
        let independent = independent.contains(&s.dcid);
        set.students.push(student_row(s, independent, login));
    }
    // Sorted (one pass when already in order), a later record of a dcid
    // winning as it did when this was a map.
    set.students.sort_by_key(|r| r.student.dcid);
    set.students.dedup_by(|later, earlier| {
        let same = later.student.dcid == earlier.student.dcid;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    set
}

/// The row the database keeps for a student of the sync set.
fn student_row(s: Student, independent: bool, login_email: Option<String>) -> StudentRow {
    StudentRow {
        student: s,
        independent,
        login_email,
        in_sync_set: true,
    }
}
