//! The problems a plan reports: the records the fetch could not read, and
//! what the rules found an admin should look at (links that cannot be used,
//! emails that differ, connections orphaned from PowerSchool, …).

use crate::powerschool::DistrictSnapshot;
use crate::rules::DecisionReport;
use crate::store::write::{ProblemRow, RuleProblem};

/// A problem about one record, found while planning.
pub(crate) fn problem(kind: &str, record_id: String, message: String) -> ProblemRow {
    ProblemRow {
        kind: kind.to_string(),
        query: None,
        record_id: Some(record_id),
        field: None,
        value: None,
        message,
        about: None,
    }
}

/// The records the fetch could not read, each as PowerSchool sent it.
pub(super) fn fetch_problems(snapshot: &DistrictSnapshot) -> impl Iterator<Item = ProblemRow> + '_ {
    snapshot.problems.iter().map(|p| ProblemRow {
        kind: "bad_record".into(),
        query: Some(p.query.clone()),
        record_id: Some(p.record_id.clone()),
        field: Some(p.field.clone()),
        value: Some(p.value.clone()),
        message: p.message.clone(),
        about: None,
    })
}

/// What the rules reported, as problems, kind by kind. Each keeps its facts
/// (`about`): the run stores those, and its words are rendered from them.
pub(super) fn report_problems(problems: &mut Vec<ProblemRow>, r: &DecisionReport) {
    use RuleProblem::*;
    let mut push = |p: RuleProblem| problems.push(ProblemRow::from(p));
    for &(guardian_id, student_dcid) in &r.rows_for_unknown_students {
        push(RowForStudentOutsideSyncSet {
            guardian_id,
            student_dcid,
        });
    }
    for (guardian_id, student_dcid, email) in &r.links_without_matching_contact {
        push(LinkWithoutMatchingContact {
            guardian_id: *guardian_id,
            student_dcid: *student_dcid,
            email: email.clone(),
        });
    }
    for (guardian_id, student_dcid, email) in &r.unverified_email_matches {
        push(UnverifiedEmailMatch {
            guardian_id: *guardian_id,
            student_dcid: *student_dcid,
            email: email.clone(),
        });
    }
    for (user_id, login, ps) in &r.email_differs {
        push(EmailDiffers {
            user_id: *user_id,
            login: login.clone(),
            powerschool_email: ps.clone(),
        });
    }
    for &(guardian_id, student_dcid) in &r.accounts_without_email {
        push(AccountWithoutEmail {
            guardian_id,
            student_dcid,
        });
    }
    for &(student_dcid, user_id) in &r.orphaned {
        push(OrphanedFromPowerschool {
            student_dcid,
            user_id,
        });
    }
    for &(student_dcid, user_id) in &r.form_creator_only {
        push(FormCreatorOnly {
            student_dcid,
            user_id,
        });
    }
}

/// Every problem as the database and the report keep it (see
/// `ProblemRow::tidy`).
pub(super) fn tidy(problems: &mut [ProblemRow]) {
    problems.iter_mut().for_each(ProblemRow::tidy);
}
