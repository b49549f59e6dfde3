//! The rules' view of a district: PowerSchool's side (as fetched now by a
//! run, or as the last sync stored it for `explain`) completed with
//! SchoolEngage's users, connections and forms and the district's removal
//! policy. `plan` and `explain` both build the rules' facts through here.
//!
//! Each row kind has one type: guardian links and contacts are PowerSchool's
//! records wherever they are read; users, connections and forms are the
//! rules' own types, which the store reads rows into; a stored student
//! carries more than the rules read, and converts with `From`.

use crate::config::SyncSettings;
use crate::rules::{DistrictFacts, GuardianLink, Policy, StudentContact, StudentFacts};
use crate::store::state::{CurrentState, StudentRow};

/// The rules' facts as the last sync stored them (`explain`): the state's
/// rows move into the facts, none is copied.
pub fn facts_from_state(state: CurrentState, settings: &SyncSettings) -> DistrictFacts {
    let mut students: Vec<StudentFacts> = state
        .students
        .values()
        .filter(|s| s.in_sync_set)
        .map(StudentFacts::from)
        .collect();
    students.sort_by_key(|s| s.dcid);
    DistrictFacts {
        students,
        contacts: state.contacts.into_values().collect(),
        guardian_rows: state.guardian_accounts.into_values().collect(),
        users: state.users,
        connections: state.connections,
        forms: state.forms,
        policy: policy(settings),
    }
}

/// The facts from PowerSchool's side (the students of the sync set, in dcid
/// order, and every contact and guardian row, however they were read)
/// completed with SchoolEngage's side and the district's removal policy.
/// Nothing is copied: a run moves its fetched rows in (and diffs the
/// mirrored rows from the facts afterwards), and the stored users,
/// connections and forms move out of `state` (their rows are the rules'
/// facts) until `return_schoolengage_side` gives them back.
pub fn with_schoolengage_side(
    students: Vec<StudentFacts>,
    contacts: Vec<StudentContact>,
    guardian_rows: Vec<GuardianLink>,
    state: &mut CurrentState,
    settings: &SyncSettings,
) -> DistrictFacts {
    DistrictFacts {
        students,
        contacts,
        guardian_rows,
        users: std::mem::take(&mut state.users),
        connections: std::mem::take(&mut state.connections),
        forms: std::mem::take(&mut state.forms),
        policy: policy(settings),
    }
}

/// Moves the stored users, connections and forms back from the facts into
/// the state they were taken from.
pub fn return_schoolengage_side(facts: &mut DistrictFacts, state: &mut CurrentState) {
    state.users = std::mem::take(&mut facts.users);
    state.connections = std::mem::take(&mut facts.connections);
    state.forms = std::mem::take(&mut facts.forms);
}

fn policy(settings: &SyncSettings) -> Policy {
    Policy {
        on_powerschool_removal: settings.on_powerschool_removal,
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
