//! The fake's answers, computed once at spawn: every query's full result is
//! rendered to JSON strings in a stable order and indexed by school and
//! student, so that a page is a slice and never a scan of the world.
//!
//! Project extension, not in PowerSchool itself (see docs/powerschool.md): besides `school_number`, the
//! plugin's three custom queries accept `students_dcid` for a spot sync of
//! one student (see powerschool-plugin/); with it `school_number` becomes
//! optional. The built-in guardian query takes no arguments, as in
//! PowerSchool. Any other argument is refused with 400, so a client sending
//! the wrong argument name is noticed.

use super::render::{
    render_contact, render_guardian, render_independent, render_school, render_student,
    GuardianShape,
};
use crate::harness::world::{PowerSchoolSide, WorldContact, WorldGuardianAccount, WorldStudent};
use std::collections::HashMap;
use std::ops::Range;

pub const GUARDIANS: &str = "com.pearson.core.guardian.student_guardian_detail";
pub const ENROLLED: &str = "org.studentsync.sync.students.enrolled";
pub const INDEPENDENT: &str = "org.studentsync.sync.students.independent";
pub const CONTACTS: &str = "org.studentsync.sync.students.contacts";
pub const SCHOOLS: &str = "org.studentsync.sync.schools.list";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QueryKind {
    Guardians,
    Enrolled,
    Independent,
    Contacts,
    Schools,
}

impl QueryKind {
    pub(crate) fn from_name(name: &str) -> Option<QueryKind> {
        match name {
            GUARDIANS => Some(QueryKind::Guardians),
            ENROLLED => Some(QueryKind::Enrolled),
            INDEPENDENT => Some(QueryKind::Independent),
            CONTACTS => Some(QueryKind::Contacts),
            SCHOOLS => Some(QueryKind::Schools),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            QueryKind::Guardians => GUARDIANS,
            QueryKind::Enrolled => ENROLLED,
            QueryKind::Independent => INDEPENDENT,
            QueryKind::Contacts => CONTACTS,
            QueryKind::Schools => SCHOOLS,
        }
    }

    fn takes_school(self) -> bool {
        matches!(self, QueryKind::Enrolled | QueryKind::Contacts)
    }

    /// Real servers list the extension tables a query reads; clients must
    /// ignore the field, so any plausible text will do.
    pub(crate) fn extensions(self) -> &'static str {
        match self {
            QueryKind::Guardians => "",
            QueryKind::Enrolled => "u_student",
            QueryKind::Independent => "s_ab_stu_x,u_student",
            QueryKind::Contacts => "u_studentcontactdetail",
            QueryKind::Schools => "",
        }
    }
}

/// The arguments of one request, already checked against the query.
#[derive(Debug, Default)]
pub(crate) struct Args {
    school_number: Option<i64>,
    students_dcid: Option<i64>,
}

impl Args {
    /// The `school_number` argument, when the request has one.
    pub(crate) fn school_number(&self) -> Option<i64> {
        self.school_number
    }
}

/// Checks a request body against what the query declares.
pub(crate) fn parse_args(kind: QueryKind, body: &serde_json::Value) -> Result<Args, String> {
    let obj = body
        .as_object()
        .ok_or_else(|| "the request body must be a JSON object of arguments".to_string())?;
    let mut args = Args::default();
    for (key, value) in obj {
        match key.as_str() {
            "school_number" if kind.takes_school() => {
                args.school_number = Some(int_arg(key, value)?);
            }
            // The built-in guardian query declares no arguments (wire spec
            // §4); only the plugin's own queries take `students_dcid`.
            "students_dcid" if !matches!(kind, QueryKind::Guardians | QueryKind::Schools) => {
                args.students_dcid = Some(int_arg(key, value)?)
            }
            _ => return Err(format!("query {} has no argument named {key}", kind.name())),
        }
    }
    if kind.takes_school() && args.school_number.is_none() && args.students_dcid.is_none() {
        return Err(format!(
            "query {} requires the argument school_number",
            kind.name()
        ));
    }
    Ok(args)
}

/// PowerQuery arguments are declared as strings, but a number is harmless.
fn int_arg(key: &str, value: &serde_json::Value) -> Result<i64, String> {
    let parsed = match value {
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("argument {key} must be an integer, got {value}"))
}

/// Which records of a query's full result a request's arguments select, in
/// order.
pub(crate) enum Selection {
    Range(Range<usize>),
}

impl Selection {
    pub(crate) fn len(&self) -> usize {
        match self {
            Selection::Range(r) => r.len(),
        }
    }

    /// The position in the query's full result of the `i`-th selected record.
    pub(crate) fn get(&self, i: usize) -> usize {
        match self {
            Selection::Range(r) => r.start + i,
        }
    }
}

#[derive(Default)]
struct QueryData {
    /// Pre-rendered records, back to back (one allocation rather than one
    /// per record), grouped by school for the per-school queries and by
    /// student dcid (then person/guardian id) within that.
    text: String,
    /// Where each record ends in `text`; it starts where the previous ends.
    ends: Vec<usize>,
    by_school: HashMap<i64, Range<usize>>,
    by_dcid: HashMap<i64, Range<usize>>,
}

impl QueryData {
    fn select(&self, args: &Args) -> Selection {
        let mut range = 0..self.ends.len();
        if let Some(school) = args.school_number {
            range = self.by_school.get(&school).cloned().unwrap_or(0..0);
        }
        if let Some(dcid) = args.students_dcid {
            let r = self.by_dcid.get(&dcid).cloned().unwrap_or(0..0);
            let start = range.start.max(r.start);
            let end = range.end.min(r.end);
            range = if start < end { start..end } else { 0..0 };
        }
        Selection::Range(range)
    }
}

pub(crate) struct School {
    pub(crate) name: String,
    pub(crate) school_number: i64,
}

/// Everything the fake serves.
pub(crate) struct Dataset {
    guardians: QueryData,
    enrolled: QueryData,
    independent: QueryData,
    contacts: QueryData,
    schools: QueryData,
    pub(crate) student_count: usize,
}

impl Dataset {
    fn query(&self, kind: QueryKind) -> &QueryData {
        match kind {
            QueryKind::Guardians => &self.guardians,
            QueryKind::Enrolled => &self.enrolled,
            QueryKind::Independent => &self.independent,
            QueryKind::Contacts => &self.contacts,
            QueryKind::Schools => &self.schools,
        }
    }

    pub(crate) fn select(&self, kind: QueryKind, args: &Args) -> Selection {
        self.query(kind).select(args)
    }

    /// The record at `position` of the query's full result; None past its end.
    pub(crate) fn record(&self, kind: QueryKind, position: usize) -> Option<&str> {
        let q = self.query(kind);
        let start = match position.checked_sub(1) {
            None => 0,
            Some(previous) => *q.ends.get(previous)?,
        };
        q.text.get(start..*q.ends.get(position)?)
    }

    pub(crate) fn build(world: &PowerSchoolSide, shape: &GuardianShape) -> Dataset {
        let rows = SortedRows::of(world);
        let schools = schools_served(world);
        let [guardians, enrolled, independent, contacts] = rows.render(shape);
        let s = build_query(
            &schools,
            |school| (None, school.school_number),
            |school, n, out| render_school(school.school_number, &school.name, n, out),
        );
        Dataset {
            guardians,
            enrolled,
            independent,
            contacts,
            schools: s,
            student_count: world.students.len(),
        }
    }
}

/// The schools query's rows: the world's schools, or, for a world that
/// lists students but no schools, one school per `schoolid` its students
/// name (they would otherwise be unreachable through the per-school
/// queries).
fn schools_served(world: &PowerSchoolSide) -> Vec<School> {
    if !world.schools.is_empty() {
        return world
            .schools
            .iter()
            .map(|s| School {
                name: s.name.clone(),
                school_number: s.school_number,
            })
            .collect();
    }
    let mut numbers: Vec<i64> = world.students.iter().map(|s| s.schoolid).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
        .into_iter()
        .map(|n| School {
            name: format!("School {n}"),
            school_number: n,
        })
        .collect()
}

/// A row's sort key and the world record it is for.
type Keyed<'w, K, T> = (K, &'w T);

/// Each query's rows in the order it serves them, as compact sort keys
/// ending in the record's index in the world, with the record alongside.
/// Sorting by the keys rather than through the references keeps a large
/// world's sort in cache; the index breaks ties so the order is that of a
/// stable sort.
struct SortedRows<'w> {
    /// (school, dcid, index): students with `enroll_status <= 0`.
    enrolled: Vec<Keyed<'w, (i64, i64, usize), WorldStudent>>,
    /// (dcid, index): the enrolled students who are independent.
    independent: Vec<Keyed<'w, (i64, usize), WorldStudent>>,
    /// (school, dcid, person, index): contacts of enrolled students only.
    contacts: Vec<Keyed<'w, (i64, i64, i64, usize), WorldContact>>,
    /// (dcid, guardian id, index): every guardian link.
    guardians: Vec<Keyed<'w, (i64, i64, usize), WorldGuardianAccount>>,
}

impl<'w> SortedRows<'w> {
    fn of(world: &'w PowerSchoolSide) -> SortedRows<'w> {
        let mut enrolled: Vec<_> = world
            .students
            .iter()
            .enumerate()
            .filter(|(_, s)| s.enroll_status <= 0)
            .map(|(i, s)| ((s.schoolid, s.dcid, i), s))
            .collect();
        enrolled.sort_unstable_by_key(|&(key, _)| key);
        let mut independent: Vec<_> = enrolled
            .iter()
            .filter(|(_, s)| s.is_independent())
            .map(|&((_, dcid, i), s)| ((dcid, i), s))
            .collect();
        independent.sort_unstable_by_key(|&(key, _)| key);
        let school_of: HashMap<i64, i64> = enrolled
            .iter()
            .map(|&((school, dcid, _), _)| (dcid, school))
            .collect();
        let mut contacts: Vec<_> = world
            .contacts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let school = *school_of.get(&c.student_dcid)?;
                Some(((school, c.student_dcid, c.person_id, i), c))
            })
            .collect();
        contacts.sort_unstable_by_key(|&(key, _)| key);
        let mut guardians: Vec<_> = world
            .guardian_accounts
            .iter()
            .enumerate()
            .map(|(i, g)| ((g.student_dcid, g.guardianid, i), g))
            .collect();
        guardians.sort_unstable_by_key(|&(key, _)| key);
        SortedRows {
            enrolled,
            independent,
            contacts,
            guardians,
        }
    }

    /// Renders and indexes the four queries, in `QueryKind` order.
    /// Rendering is most of the work and the four queries are independent.
    fn render(&self, shape: &GuardianShape) -> [QueryData; 4] {
        std::thread::scope(|scope| {
            let g = scope.spawn(|| {
                build_query(
                    &self.guardians,
                    |&((dcid, _, _), _)| (None, dcid),
                    |&(_, g), n, out| render_guardian(g, n, shape, out),
                )
            });
            let c = scope.spawn(|| {
                build_query(
                    &self.contacts,
                    |&((school, dcid, _, _), _)| (Some(school), dcid),
                    |&(_, c), n, out| render_contact(c, n, out),
                )
            });
            let e = build_query(
                &self.enrolled,
                |&((school, dcid, _), _)| (Some(school), dcid),
                |&(_, s), n, out| render_student(s, n, out),
            );
            let ind = build_query(
                &self.independent,
                |&((dcid, _), _)| (None, dcid),
                |&(_, s), n, out| render_independent(s, n, out),
            );
            // A panic while indexing is the test's failure: pass it on as is.
            let joined = |h: std::thread::ScopedJoinHandle<'_, QueryData>| {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            };
            [joined(g), e, ind, joined(c)]
        })
    }
}

/// `keys` gives (school, student dcid) of a row; rows must already be
/// sorted so that equal schools and, within them, equal dcids are adjacent.
fn build_query<T>(
    rows: &[T],
    keys: impl Fn(&T) -> (Option<i64>, i64),
    render: impl Fn(&T, usize, &mut String),
) -> QueryData {
    let mut q = QueryData {
        text: String::with_capacity(rows.len() * 200),
        ends: Vec::with_capacity(rows.len()),
        ..QueryData::default()
    };
    for (i, row) in rows.iter().enumerate() {
        render(row, i, &mut q.text);
        q.ends.push(q.text.len());
        let (school, dcid) = keys(row);
        if let Some(school) = school {
            q.by_school.entry(school).or_insert(i..i).end = i + 1;
        }
        q.by_dcid.entry(dcid).or_insert(i..i).end = i + 1;
    }
    q
}
