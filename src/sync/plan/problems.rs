//! The problems a plan reports: the records the fetch could not read, and
//! what the rules found an admin should look at (links that cannot be used,
//! emails that differ, connections orphaned from PowerSchool, …).

use crate::powerschool::DistrictSnapshot;
use crate::rules::problems::RuleProblem;
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
    // Sized once: a district has tens of thousands of these every night.
    problems.reserve_exact(
        r.rows_for_unknown_students.len()
            + r.links_without_matching_contact.len()
            + r.unverified_email_matches.len()
            + r.email_differs.len()
            + r.accounts_without_email.len()
            + r.orphaned.len()
            + r.form_creator_only.len(),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::write::StoredFacts;

    /// One finding of every kind, in `report_problems`' order.
    fn one_of_each() -> DecisionReport {
        DecisionReport {
            rows_for_unknown_students: vec![(11, 5001)],
            links_without_matching_contact: vec![(12, 5002, "a@example.com".into())],
            unverified_email_matches: vec![(13, 5003, "b@example.com".into())],
            email_differs: vec![(7, "login@example.com".into(), "ps@example.com".into())],
            accounts_without_email: vec![(14, 5004)],
            orphaned: vec![(5005, 8)],
            form_creator_only: vec![(5006, 9)],
            ..DecisionReport::default()
        }
    }

    fn planned(report: &DecisionReport) -> Vec<ProblemRow> {
        let mut problems = Vec::new();
        report_problems(&mut problems, report);
        tidy(&mut problems);
        problems.into_iter().map(ProblemRow::worded).collect()
    }

    /// A row as the run stores it and `run_problems` reads it back: its
    /// facts only, rendered and tidied.
    fn read_back(p: &ProblemRow) -> ProblemRow {
        let about = p.about.as_ref().expect("a rule problem keeps its facts");
        let stored: StoredFacts<'_> = about.stored();
        ProblemRow::from(RuleProblem::from_stored(&p.kind, stored).unwrap()).worded()
    }

    #[test]
    fn every_kind_reads_as_before_the_facts_were_stored() {
        // The words and record ids of the version that stored them as text.
        let want = [
            ("row_for_student_outside_sync_set", "guardian 11, student 5001", "guardian account 11 is linked to student 5001, who is not in the sync set (not enrolled, or a scheduling-year student); the row is ignored"),
            ("link_without_matching_contact", "guardian 12, student 5002", "R3: no contact of student 5002 has the email a@example.com of guardian account 12; the link is not used. Fix the contact's email in PowerSchool"),
            ("unverified_email_match", "guardian 13, student 5003", "guardian account 13 (student 5003) has the email b@example.com, which belongs only to a SchoolEngage user who has not verified it; not linked until the user verifies the email"),
            ("email_differs", "user 7", "user 7 logs in as login@example.com but the linked PowerSchool account's email is ps@example.com; the login email is SchoolEngage's and was not changed"),
            ("account_without_email", "guardian 14, student 5004", "guardian account 14 (student 5004) has no usable email; no user can be made for it. Add the email in PowerSchool"),
            ("orphaned_from_powerschool", "student 5005, user 8", "the connection of user 8 to student 5005 was made by an earlier sync, and PowerSchool no longer links them"),
            ("form_creator_only", "student 5006, user 9", "user 9 created a form for student 5006 but holds no Parent Portal account; nothing changes until registration links them"),
        ];
        let problems = planned(&one_of_each());
        assert_eq!(problems.len(), want.len());
        assert_eq!(RuleProblem::KINDS.len(), want.len());
        for (p, (kind, record_id, message)) in problems.iter().zip(want) {
            assert_eq!(p.kind, kind);
            assert!(RuleProblem::KINDS.contains(&kind));
            assert_eq!(p.record_id.as_deref(), Some(record_id));
            assert_eq!(p.message, message);
            assert_eq!((&p.query, &p.field, &p.value), (&None, &None, &None));
            assert_eq!(&read_back(p), p, "{kind} reads back as planned");
        }
    }

    #[test]
    fn odd_emails_read_back_as_planned_escaped_and_cut_alike() {
        let long = format!("{}@example.com", "x".repeat(1200));
        let report = DecisionReport {
            links_without_matching_contact: vec![(1, 2, "tab\there@example.com".into())],
            email_differs: vec![(3, long.clone(), format!("zero\u{200b}width{long}"))],
            ..DecisionReport::default()
        };
        let problems = planned(&report);
        assert!(problems[0].message.contains("tab\\u{0009}here@example.com"));
        assert!(problems[1].message.ends_with('…'));
        assert_eq!(problems[1].message.chars().count(), MESSAGE_CHARS_SHOWN);
        for p in &problems {
            assert_eq!(&read_back(p), p);
        }
    }

    /// A message cut at `MESSAGE_CHARS` characters, and the `…` that says so.
    const MESSAGE_CHARS_SHOWN: usize = crate::store::write::MESSAGE_CHARS + 1;

    #[test]
    fn a_stored_row_missing_a_fact_its_kind_needs_is_not_rendered() {
        let facts = StoredFacts {
            guardian_id: Some(1),
            ..StoredFacts::default()
        };
        assert_eq!(
            RuleProblem::from_stored("account_without_email", facts),
            None
        );
        assert_eq!(RuleProblem::from_stored("bad_record", facts), None);
    }

    #[test]
    fn a_plans_findings_hold_no_words_until_asked_and_always_serialize_with_them() {
        let mut problems = Vec::new();
        report_problems(&mut problems, &one_of_each());
        tidy(&mut problems);
        let worded = planned(&one_of_each());
        for (held, shown) in problems.iter().zip(&worded) {
            // Held: the kind and facts only, even after tidying.
            assert_eq!(
                (held.record_id.as_deref(), held.message.as_str()),
                (None, "")
            );
            assert!(held.about.is_some());
            // Asked for, or serialized (the report, a held plan): the words.
            assert_eq!(&held.clone().worded(), shown);
            assert_eq!(held.with_words().as_ref(), shown);
            let json = serde_json::to_value(held).unwrap();
            assert_eq!(json, serde_json::to_value(shown).unwrap());
            assert_eq!(json["message"], shown.message.as_str(), "{json}");
            let read: ProblemRow = serde_json::from_value(json).unwrap();
            assert_eq!(
                (read.record_id, read.message),
                (shown.record_id.clone(), shown.message.clone())
            );
        }
    }
}
