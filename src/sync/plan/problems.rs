//! The problems a plan reports: the records the fetch could not read, and
//! what the rules found an admin should look at (links that cannot be used,
//! emails that differ, connections orphaned from PowerSchool, …).

use crate::powerschool::DistrictSnapshot;
use crate::rules::text;
use crate::rules::DecisionReport;
use crate::store::write::ProblemRow;

/// A problem about one record, found while planning.
pub(crate) fn problem(kind: &str, record_id: String, message: String) -> ProblemRow {
    ProblemRow {
        kind: kind.to_string(),
        query: None,
        record_id: Some(record_id),
        field: None,
        value: None,
        message,
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
    })
}

/// What the rules reported, as problems, kind by kind.
pub(super) fn report_problems(problems: &mut Vec<ProblemRow>, r: &DecisionReport) {
    for (gid, dcid) in &r.rows_for_unknown_students {
        problems.push(problem(
            "row_for_student_outside_sync_set",
            format!("guardian {gid}, student {dcid}"),
            format!("guardian account {gid} is linked to student {dcid}, who is not in the sync set (not enrolled, or a scheduling-year student); the row is ignored"),
        ));
    }
    for (gid, dcid, email) in &r.links_without_matching_contact {
        problems.push(problem(
            "link_without_matching_contact",
            format!("guardian {gid}, student {dcid}"),
            format!("R3: no contact of student {dcid} has the email {email} of guardian account {gid}; the link is not used. Fix the contact's email in PowerSchool"),
        ));
    }
    for (gid, dcid, email) in &r.unverified_email_matches {
        problems.push(problem(
            "unverified_email_match",
            format!("guardian {gid}, student {dcid}"),
            format!("guardian account {gid} (student {dcid}) has the email {email}, which belongs only to a SchoolEngage user who has not verified it; not linked until the user verifies the email"),
        ));
    }
    for (uid, login, ps) in &r.email_differs {
        problems.push(problem(
            "email_differs",
            format!("user {uid}"),
            format!("user {uid} logs in as {login} but the linked PowerSchool account's email is {ps}; the login email is SchoolEngage's and was not changed"),
        ));
    }
    for (gid, dcid) in &r.accounts_without_email {
        problems.push(problem(
            "account_without_email",
            format!("guardian {gid}, student {dcid}"),
            format!("guardian account {gid} (student {dcid}) has no usable email; no user can be made for it. Add the email in PowerSchool"),
        ));
    }
    for (dcid, uid) in &r.orphaned {
        problems.push(problem(
            "orphaned_from_powerschool",
            format!("student {dcid}, user {uid}"),
            format!("the connection of user {uid} to student {dcid} was made by an earlier sync, and PowerSchool no longer links them"),
        ));
    }
    for (dcid, uid) in &r.form_creator_only {
        problems.push(problem(
            "form_creator_only",
            format!("student {dcid}, user {uid}"),
            format!("user {uid} created a form for student {dcid} but holds no Parent Portal account; nothing changes until registration links them"),
        ));
    }
}

/// How long a problem's message may be, in characters (it quotes values).
const MESSAGE_CHARS: usize = 1000;

/// Every problem as the database and the report keep it: record ids and
/// values escaped and cut to `text::SHOWN_CHARS` characters, messages to
/// `MESSAGE_CHARS`, no control character anywhere (a NUL from PowerSchool
/// must never reach PostgreSQL, even inside a problem about it).
pub(super) fn tidy(problems: &mut [ProblemRow]) {
    for p in problems {
        let short = |v: &mut Option<String>| {
            if let Some(v) = v.as_mut() {
                *v = text::shown(v);
            }
        };
        short(&mut p.record_id);
        short(&mut p.value);
        short(&mut p.query);
        short(&mut p.field);
        p.message = text::shown_at_most(&p.message, MESSAGE_CHARS);
    }
}
