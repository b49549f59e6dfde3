//! The rules' view of a district: PowerSchool's side (as fetched now by a
//! run, or as the last sync stored it for `explain`) completed with
//! SchoolEngage's users, connections and forms and the district's removal
//! policy. `plan` and `explain` both build the rules' facts through here.
//!
//! The conversions below fill the rules' rows from the fetched records and
//! from the stored rows, which are declared apart for now (issue 10, item 6).

use crate::config::SyncSettings;
use crate::powerschool::{GuardianLink, StudentContact};
use crate::rules::{
    ConnectionFacts, ContactFacts, DistrictFacts, FormFacts, GuardianRowFacts, Policy,
    StudentFacts, UserFacts,
};
use crate::store::state::{
    ConnectionRow, ContactRow, CurrentState, FormRow, GuardianAccountRow, StudentRow, UserRow,
};

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
        state.contacts.values(),
        state.guardian_accounts.values(),
        state,
        settings,
    )
}

/// The facts from PowerSchool's side (the students of the sync set, in dcid
/// order, and every contact and guardian row, however they were read)
/// completed with SchoolEngage's side and the district's removal policy.
pub fn with_schoolengage_side<'a, C: 'a, G: 'a>(
    students: Vec<StudentFacts>,
    contacts: impl IntoIterator<Item = &'a C>,
    guardian_rows: impl IntoIterator<Item = &'a G>,
    state: &CurrentState,
    settings: &SyncSettings,
) -> DistrictFacts
where
    ContactFacts: From<&'a C>,
    GuardianRowFacts: From<&'a G>,
{
    DistrictFacts {
        students,
        contacts: contacts.into_iter().map(ContactFacts::from).collect(),
        guardian_rows: guardian_rows
            .into_iter()
            .map(GuardianRowFacts::from)
            .collect(),
        users: state.users.iter().map(UserFacts::from).collect(),
        connections: state
            .connections
            .iter()
            .map(ConnectionFacts::from)
            .collect(),
        forms: state.forms.iter().map(FormFacts::from).collect(),
        policy: Policy {
            on_powerschool_removal: settings.on_powerschool_removal,
        },
    }
}

impl From<&StudentRow> for StudentFacts {
    fn from(s: &StudentRow) -> StudentFacts {
        StudentFacts {
            dcid: s.dcid,
            independent: s.independent,
            org_email: s.org_email.clone(),
            personal_email: s.personal_email.clone(),
        }
    }
}

impl From<&StudentContact> for ContactFacts {
    fn from(c: &StudentContact) -> ContactFacts {
        ContactFacts {
            student_dcid: c.student_dcid,
            person_id: c.person_id,
            email: c.email.clone(),
            is_decision_making: c.is_decision_making,
        }
    }
}

impl From<&ContactRow> for ContactFacts {
    fn from(c: &ContactRow) -> ContactFacts {
        ContactFacts {
            student_dcid: c.student_dcid,
            person_id: c.person_id,
            email: c.email.clone(),
            is_decision_making: c.is_decision_making,
        }
    }
}

impl From<&GuardianLink> for GuardianRowFacts {
    fn from(g: &GuardianLink) -> GuardianRowFacts {
        GuardianRowFacts {
            guardian_id: g.guardian_id,
            student_dcid: g.student_dcid,
            email: g.email.clone(),
            first_name: g.first_name.clone(),
            last_name: g.last_name.clone(),
            web_access_account: g.web_access_account,
        }
    }
}

impl From<&GuardianAccountRow> for GuardianRowFacts {
    fn from(g: &GuardianAccountRow) -> GuardianRowFacts {
        GuardianRowFacts {
            guardian_id: g.guardian_id,
            student_dcid: g.student_dcid,
            email: g.email.clone(),
            first_name: g.first_name.clone(),
            last_name: g.last_name.clone(),
            web_access_account: g.web_access_account,
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

impl From<&FormRow> for FormFacts {
    fn from(f: &FormRow) -> FormFacts {
        FormFacts {
            student_dcid: f.student_dcid,
            created_by_user_id: f.created_by_user_id,
        }
    }
}
