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
use std::collections::{BTreeMap, HashSet};

/// The students of the sync set and what deciding it found.
pub(super) struct SyncSet {
    /// By dcid.
    pub students: BTreeMap<i64, StudentRow>,
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
        students: BTreeMap::new(),
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
        let dcid = s.dcid;
        let row = student_row(s, independent.contains(&dcid), login);
        set.students.insert(dcid, row);
    }
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
