//! A run's first step after the fetch: every text and date value of every
//! fetched record is checked against `rules::text` (docs/powerschool.md,
//! "Values the sync refuses"). A refused value is read as empty and reported
//! as a problem naming the record, the field and the value (escaped and
//! shortened); the record itself stays, so one bad value never costs a
//! student, a contact or a guardian link. After this step no value from
//! PowerSchool holds a NUL or a date outside 1900–2200, so the database
//! never sees one.

use crate::powerschool::{
    DistrictSnapshot, RecordProblem, CONTACTS_QUERY, GUARDIANS_QUERY, INDEPENDENT_QUERY,
    SCHOOLS_QUERY, STUDENTS_QUERY,
};
use crate::rules::text::{self, Refusal};
use crate::rules::Name;
use chrono::NaiveDate;

/// Checks every value of `snapshot`, clearing the refused ones and adding a
/// problem for each. Returns how many values were refused.
pub fn screen(snapshot: &mut DistrictSnapshot) -> usize {
    let mut problems = Vec::new();
    for s in &mut snapshot.schools {
        let mut r = Record::new(SCHOOLS_QUERY, Id::School(s.school_number), &mut problems);
        let mut name = Some(std::mem::take(&mut s.name));
        r.name("name", &mut name);
        s.name = name.unwrap_or_default();
    }
    for g in &mut snapshot.guardians {
        let id = Id::Guardian(g.guardian_id, g.student_dcid);
        let mut r = Record::new(GUARDIANS_QUERY, id, &mut problems);
        r.email("email", &mut g.email);
        r.name("firstname", &mut g.first_name);
        r.name("lastname", &mut g.last_name);
    }
    for s in &mut snapshot.students {
        let mut r = Record::new(STUDENTS_QUERY, Id::Student(s.dcid), &mut problems);
        r.name("student_number", &mut s.student_number);
        r.name("first_name", &mut s.first_name);
        r.name("last_name", &mut s.last_name);
        r.date("entrydate", &mut s.entry_date);
        r.email("orgemail", &mut s.org_email);
        r.email("personalemail", &mut s.personal_email);
    }
    for s in &mut snapshot.independent_students {
        let mut r = Record::new(INDEPENDENT_QUERY, Id::Student(s.dcid), &mut problems);
        for (field, value) in ["enrlytype1", "enrlytype2", "enrlytype3"]
            .into_iter()
            .zip(s.enrollment_types.iter_mut())
        {
            r.name(field, value);
        }
        r.email("orgemail", &mut s.org_email);
        r.email("personalemail", &mut s.personal_email);
    }
    for c in &mut snapshot.contacts {
        let id = Id::Contact(c.student_dcid, c.person_id);
        let mut r = Record::new(CONTACTS_QUERY, id, &mut problems);
        r.email("email", &mut c.email);
        r.name("firstname", &mut c.first_name);
        r.name("lastname", &mut c.last_name);
    }
    let refused = problems.len();
    if refused > 0 {
        tracing::warn!(
            refused,
            "PowerSchool values refused (read as empty, records kept); see the run's problems"
        );
    }
    snapshot.problems.extend(problems);
    refused
}

/// A record's key as its problems name it, written out only for a record
/// with a refused value (a district's millions of clean records cost no
/// text).
#[derive(Clone, Copy)]
enum Id {
    School(i64),
    Guardian(i64, i64),
    Student(i64),
    Contact(i64, i64),
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::School(number) => write!(f, "school_number={number}"),
            Id::Guardian(guardian, dcid) => write!(f, "guardianid={guardian}, studentsdcid={dcid}"),
            Id::Student(dcid) => write!(f, "dcid={dcid}"),
            Id::Contact(dcid, person) => write!(f, "studentsdcid={dcid}, personid={person}"),
        }
    }
}

/// One record being checked: where its problems go and how they name it.
struct Record<'a> {
    query: &'static str,
    id: Id,
    problems: &'a mut Vec<RecordProblem>,
}

impl<'a> Record<'a> {
    fn new(query: &'static str, id: Id, problems: &'a mut Vec<RecordProblem>) -> Self {
        Record {
            query,
            id,
            problems,
        }
    }

    fn refuse(&mut self, field: &str, value: &str, why: Refusal) {
        let record_id = self.id.to_string();
        self.problems.push(RecordProblem {
            query: self.query.to_string(),
            record_id: text::shown(&record_id),
            field: field.to_string(),
            value: text::shown(value),
            message: format!(
                "{field} of {} {why}; the value was not kept (read as empty) and the record \
                 was synced without it. Correct it in PowerSchool",
                record_id
            ),
        });
    }

    fn name<T: AsRef<str> + From<Name>>(&mut self, field: &str, value: &mut Option<T>) {
        let Some(raw) = value.take() else { return };
        match text::check_name(raw.as_ref()) {
            Ok(kept) => *value = kept.map(T::from),
            Err(why) => self.refuse(field, raw.as_ref(), why),
        }
    }

    fn email(&mut self, field: &str, value: &mut Option<String>) {
        let Some(raw) = value.as_deref() else { return };
        if let Err(why) = text::check_email(raw) {
            let raw = value.take().unwrap_or_default();
            self.refuse(field, &raw, why);
        }
    }

    fn date(&mut self, field: &str, value: &mut Option<NaiveDate>) {
        let Some(date) = *value else { return };
        if let Err(why) = text::check_date(date) {
            *value = None;
            self.refuse(field, &date.format("%Y-%m-%d").to_string(), why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerschool::{GuardianLink, Student, StudentContact};

    fn student(dcid: i64) -> Student {
        Student {
            dcid,
            id: None,
            student_number: Some("100".into()),
            first_name: Some("Ava".into()),
            last_name: Some("Lee".into()),
            grade_level: Some(3),
            school_number: 101,
            enroll_status: 0,
            entry_date: NaiveDate::from_ymd_opt(2026, 8, 27),
            org_email: Some("ava@students.example.org".into()),
            personal_email: None,
        }
    }

    #[test]
    fn refused_values_are_cleared_and_reported_and_records_kept() {
        let mut snapshot = DistrictSnapshot {
            students: vec![
                Student {
                    entry_date: NaiveDate::from_ymd_opt(0, 1, 1),
                    first_name: Some("A\u{0}va".into()),
                    ..student(1)
                },
                student(2),
            ],
            guardians: vec![GuardianLink {
                guardian_id: 12,
                student_dcid: 1,
                email: Some(format!("{}@example.com", "p".repeat(3000))),
                first_name: Some("\u{200B}Pat".into()),
                last_name: None,
                web_access_account: false,
            }],
            contacts: vec![StudentContact {
                student_dcid: 1,
                person_id: 7,
                first_name: None,
                last_name: Some("x".repeat(101).into()),
                email: Some("m\u{7}@x.org".into()),
                is_decision_making: true,
            }],
            ..DistrictSnapshot::default()
        };
        assert_eq!(screen(&mut snapshot), 5);
        assert_eq!(snapshot.students.len(), 2);
        assert_eq!(snapshot.students[0].entry_date, None);
        assert_eq!(snapshot.students[0].first_name, None);
        assert_eq!(
            snapshot.students[1],
            student(2),
            "a clean record is untouched"
        );
        let g = &snapshot.guardians[0];
        assert_eq!(
            (g.email.as_deref(), g.first_name.as_deref()),
            (None, Some("Pat"))
        );
        assert_eq!(snapshot.contacts[0].email, None);
        assert_eq!(snapshot.contacts[0].last_name, None);
        let fields: Vec<(&str, &str)> = snapshot
            .problems
            .iter()
            .map(|p| (p.record_id.as_str(), p.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("guardianid=12, studentsdcid=1", "email"),
                ("dcid=1", "first_name"),
                ("dcid=1", "entrydate"),
                ("studentsdcid=1, personid=7", "email"),
                ("studentsdcid=1, personid=7", "lastname"),
            ]
        );
        for p in &snapshot.problems {
            assert!(p.value.chars().count() <= text::SHOWN_CHARS + 1, "{p:?}");
            assert!(!p.value.contains('\u{0}'), "{p:?}");
        }
        assert_eq!(snapshot.problems[1].value, "A\\u{0000}va");
        assert_eq!(snapshot.problems[2].value, "0000-01-01");
    }
}
