//! The rules' view of a district: PowerSchool's side (as fetched now by a
//! run, or as the last sync stored it for `explain`) completed with
//! SchoolEngage's users, connections and forms and the district's removal
//! policy. `plan` and `explain` both build the rules' facts through here.
//!
//! Each row kind has one type: guardian links and contacts are PowerSchool's
//! records wherever they are read, forms are the rules' own; a stored
//! student, user or connection carries more than the rules read, and
//! converts with `From`.

use crate::config::SyncSettings;
use crate::rules::{
    ConnectionFacts, DistrictFacts, GuardianLink, Policy, StudentContact, StudentFacts, UserFacts,
};
use crate::store::state::{ConnectionRow, CurrentState, StudentRow, UserRow};

/// The rules' facts as the last sync stored them.
pub fn facts_from_state(state: &CurrentState, settings: &SyncSettings) -> DistrictFacts {
    let mut students: Vec<StudentFacts> = state
        .students
        .values()
        .filter(|s| s.in_sync_set)
        .map(StudentFacts::from)
        .collect();
    students.sort_by_key(|s| s.dcid);
    with_schoolengage_side(
        students,
        state.contacts.values().cloned().collect(),
        state.guardian_accounts.values().cloned().collect(),
        state,
        settings,
    )
}

/// The facts from PowerSchool's side (the students of the sync set, in dcid
/// order, and every contact and guardian row, however they were read)
/// completed with SchoolEngage's side and the district's removal policy.
/// The rows are taken, not copied: a run moves its fetched rows in and
/// diffs the mirrored rows from the facts afterwards.
pub fn with_schoolengage_side(
    students: Vec<StudentFacts>,
    contacts: Vec<StudentContact>,
    guardian_rows: Vec<GuardianLink>,
    state: &CurrentState,
    settings: &SyncSettings,
) -> DistrictFacts {
    DistrictFacts {
        students,
        contacts,
        guardian_rows,
        users: state.users.iter().map(UserFacts::from).collect(),
        connections: state
            .connections
            .iter()
            .map(ConnectionFacts::from)
            .collect(),
        forms: state.forms.clone(),
        policy: Policy {
            on_powerschool_removal: settings.on_powerschool_removal,
        },
    }
}

/// The student as a run's rules read it: its own emails only when it is
/// independent (R5, the one rule that reads them, concerns only independent
/// students), so the district's emails are not copied for the rules. `explain`,
/// which shows them, converts with `From`.
pub fn student_for_rules(s: &StudentRow) -> StudentFacts {
    if s.independent {
        return StudentFacts::from(s);
    }
    StudentFacts {
        dcid: s.student.dcid,
        independent: false,
        org_email: None,
        personal_email: None,
    }
}

impl From<&StudentRow> for StudentFacts {
    fn from(s: &StudentRow) -> StudentFacts {
        StudentFacts {
            dcid: s.student.dcid,
            independent: s.independent,
            org_email: s.student.org_email.clone(),
            personal_email: s.student.personal_email.clone(),
        }
    }
}

impl From<&UserRow> for UserFacts {
    fn from(u: &UserRow) -> UserFacts {
        UserFacts {
            user_id: u.id,
            email: u.email.clone(),
            email_verified: u.email_verified,
            powerschool_guardian_id: u.powerschool_guardian_id,
            incomplete: u.incomplete,
        }
    }
}

impl From<&ConnectionRow> for ConnectionFacts {
    fn from(c: &ConnectionRow) -> ConnectionFacts {
        ConnectionFacts {
            student_dcid: c.student_dcid,
            user_id: c.user_id,
            tier: c.tier,
            case: c.case_code,
            limits: c.limits.clone(),
            origin: c.origin,
        }
    }
}
