//! What the rules found about single records that an admin should look at
//! (a link without a matching contact, an email that differs, …), as facts,
//! and the words the run report, `plan` and `problems` show for them. The
//! words live here, beside the rules that find these things; the store keeps
//! only the facts (`store::write::problems`) and words them through here
//! when they are read.

/// What the rules found about one record, as facts: the words are rendered
/// from these (`ProblemRow::from`), never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleProblem {
    /// A guardian row whose student is not in the sync set.
    RowForStudentOutsideSyncSet { guardian_id: i64, student_dcid: i64 },
    /// R3 failed: no contact of the student has the account's email.
    LinkWithoutMatchingContact {
        guardian_id: i64,
        student_dcid: i64,
        email: String,
    },
    /// The account's email belongs only to a user who has not verified it.
    UnverifiedEmailMatch {
        guardian_id: i64,
        student_dcid: i64,
        email: String,
    },
    /// A linked user's login differs from the account's email.
    EmailDiffers {
        user_id: i64,
        login: String,
        powerschool_email: String,
    },
    /// A guardian row without a usable email.
    AccountWithoutEmail { guardian_id: i64, student_dcid: i64 },
    /// A connection an earlier sync made that PowerSchool no longer links.
    OrphanedFromPowerschool { student_dcid: i64, user_id: i64 },
    /// A form creator with no Parent Portal account and no connection.
    FormCreatorOnly { student_dcid: i64, user_id: i64 },
}

impl RuleProblem {
    /// The kinds a rule problem can have: the only kinds stored without words.
    pub const KINDS: [&'static str; 7] = [
        "row_for_student_outside_sync_set",
        "link_without_matching_contact",
        "unverified_email_match",
        "email_differs",
        "account_without_email",
        "orphaned_from_powerschool",
        "form_creator_only",
    ];

    pub fn kind(&self) -> &'static str {
        use RuleProblem::*;
        match self {
            RowForStudentOutsideSyncSet { .. } => "row_for_student_outside_sync_set",
            LinkWithoutMatchingContact { .. } => "link_without_matching_contact",
            UnverifiedEmailMatch { .. } => "unverified_email_match",
            EmailDiffers { .. } => "email_differs",
            AccountWithoutEmail { .. } => "account_without_email",
            OrphanedFromPowerschool { .. } => "orphaned_from_powerschool",
            FormCreatorOnly { .. } => "form_creator_only",
        }
    }

    /// The record the problem is about, as the report names it.
    pub fn record_id(&self) -> String {
        use RuleProblem::*;
        match self {
            RowForStudentOutsideSyncSet {
                guardian_id: gid,
                student_dcid: dcid,
            }
            | LinkWithoutMatchingContact {
                guardian_id: gid,
                student_dcid: dcid,
                ..
            }
            | UnverifiedEmailMatch {
                guardian_id: gid,
                student_dcid: dcid,
                ..
            }
            | AccountWithoutEmail {
                guardian_id: gid,
                student_dcid: dcid,
            } => format!("guardian {gid}, student {dcid}"),
            EmailDiffers { user_id, .. } => format!("user {user_id}"),
            OrphanedFromPowerschool {
                student_dcid,
                user_id,
            }
            | FormCreatorOnly {
                student_dcid,
                user_id,
            } => format!("student {student_dcid}, user {user_id}"),
        }
    }

    /// The words an admin reads (before `ProblemRow::tidy`).
    pub fn message(&self) -> String {
        use RuleProblem::*;
        match self {
            RowForStudentOutsideSyncSet { guardian_id: gid, student_dcid: dcid } => format!("guardian account {gid} is linked to student {dcid}, who is not in the sync set (not enrolled, or a scheduling-year student); the row is ignored"),
            LinkWithoutMatchingContact { guardian_id: gid, student_dcid: dcid, email } => format!("R3: no contact of student {dcid} has the email {email} of guardian account {gid}; the link is not used. Fix the contact's email in PowerSchool"),
            UnverifiedEmailMatch { guardian_id: gid, student_dcid: dcid, email } => format!("guardian account {gid} (student {dcid}) has the email {email}, which belongs only to a SchoolEngage user who has not verified it; not linked until the user verifies the email"),
            EmailDiffers { user_id: uid, login, powerschool_email: ps } => format!("user {uid} logs in as {login} but the linked PowerSchool account's email is {ps}; the login email is SchoolEngage's and was not changed"),
            AccountWithoutEmail { guardian_id: gid, student_dcid: dcid } => format!("guardian account {gid} (student {dcid}) has no usable email; no user can be made for it. Add the email in PowerSchool"),
            OrphanedFromPowerschool { student_dcid: dcid, user_id: uid } => format!("the connection of user {uid} to student {dcid} was made by an earlier sync, and PowerSchool no longer links them"),
            FormCreatorOnly { student_dcid: dcid, user_id: uid } => format!("user {uid} created a form for student {dcid} but holds no Parent Portal account; nothing changes until registration links them"),
        }
    }
}
