//! The fake's answers, computed once at spawn: every query's full result is
//! rendered to JSON strings in a stable order and indexed by school and
//! student, so that a page is a slice and never a scan of the world.
//!
//! Project extension, not in the shared spec: besides `school_number`, the
//! plugin's three custom queries accept `students_dcid` for a spot sync of
//! one student (see powerschool-plugin/); with it `school_number` becomes
//! optional. The built-in guardian query takes no arguments, as in
//! PowerSchool. Any other argument is refused with 400, so a client sending
//! the wrong argument name is noticed.

use crate::harness::world::{PowerSchoolSide, WorldStudent};
use std::collections::HashMap;
use std::fmt::Write;
use std::ops::Range;

pub const GUARDIANS: &str = "com.pearson.core.guardian.student_guardian_detail";
pub const ENROLLED: &str = "org.studentsync.sync.students.enrolled";
pub const INDEPENDENT: &str = "org.studentsync.sync.students.independent";
pub const CONTACTS: &str = "org.studentsync.sync.students.contacts";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QueryKind {
    Guardians,
    Enrolled,
    Independent,
    Contacts,
}

impl QueryKind {
    pub(crate) fn from_name(name: &str) -> Option<QueryKind> {
        match name {
            GUARDIANS => Some(QueryKind::Guardians),
            ENROLLED => Some(QueryKind::Enrolled),
            INDEPENDENT => Some(QueryKind::Independent),
            CONTACTS => Some(QueryKind::Contacts),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            QueryKind::Guardians => GUARDIANS,
            QueryKind::Enrolled => ENROLLED,
            QueryKind::Independent => INDEPENDENT,
            QueryKind::Contacts => CONTACTS,
        }
    }

    fn index(self) -> usize {
        self as usize
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
        }
    }
}

/// The arguments of one request, already checked against the query.
#[derive(Debug, Default)]
pub(crate) struct Args {
    school_number: Option<i64>,
    students_dcid: Option<i64>,
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
            "students_dcid" if kind != QueryKind::Guardians => {
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
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) school_number: i64,
}

/// Everything the fake serves.
pub(crate) struct Dataset {
    queries: [QueryData; 4],
    pub(crate) schools: Vec<School>,
    pub(crate) student_count: usize,
}

impl Dataset {
    pub(crate) fn select(&self, kind: QueryKind, args: &Args) -> Selection {
        self.queries[kind.index()].select(args)
    }

    pub(crate) fn record(&self, kind: QueryKind, position: usize) -> &str {
        let q = &self.queries[kind.index()];
        let start = if position == 0 {
            0
        } else {
            q.ends[position - 1]
        };
        &q.text[start..q.ends[position]]
    }

    pub(crate) fn build(world: &PowerSchoolSide) -> Dataset {
        let mut schools: Vec<School> = world
            .schools
            .iter()
            .enumerate()
            .map(|(i, s)| School {
                id: i as i64 + 1,
                name: s.name.clone(),
                school_number: s.school_number,
            })
            .collect();
        // A world that lists students but no schools would otherwise be
        // unreachable through the per-school queries.
        if schools.is_empty() {
            let mut numbers: Vec<i64> = world.students.iter().map(|s| s.schoolid).collect();
            numbers.sort_unstable();
            numbers.dedup();
            schools = numbers
                .into_iter()
                .enumerate()
                .map(|(i, n)| School {
                    id: i as i64 + 1,
                    name: format!("School {n}"),
                    school_number: n,
                })
                .collect();
        }

        // Sorting compact (key, index) pairs rather than references keeps a
        // large world's sort in cache; the index breaks ties so the order is
        // that of a stable sort.
        let students = &world.students;
        let mut enrolled: Vec<(i64, i64, usize)> = students
            .iter()
            .enumerate()
            .filter(|(_, s)| s.enroll_status <= 0)
            .map(|(i, s)| (s.schoolid, s.dcid, i))
            .collect();
        enrolled.sort_unstable();
        let mut independent: Vec<(i64, usize)> = enrolled
            .iter()
            .filter(|&&(_, _, i)| students[i].is_independent())
            .map(|&(_, dcid, i)| (dcid, i))
            .collect();
        independent.sort_unstable();
        let school_of: HashMap<i64, i64> = enrolled
            .iter()
            .map(|&(school, dcid, _)| (dcid, school))
            .collect();
        let mut contacts: Vec<(i64, i64, i64, usize)> = world
            .contacts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let school = *school_of.get(&c.student_dcid)?;
                Some((school, c.student_dcid, c.person_id, i))
            })
            .collect();
        contacts.sort_unstable();
        let mut guardians: Vec<(i64, i64, usize)> = world
            .guardian_accounts
            .iter()
            .enumerate()
            .map(|(i, g)| (g.student_dcid, g.guardianid, i))
            .collect();
        guardians.sort_unstable();

        // Rendering is most of the work and the four queries are independent.
        let (guardians_q, enrolled_q, independent_q, contacts_q) = std::thread::scope(|scope| {
            let g = scope.spawn(|| {
                build_query(
                    &guardians,
                    |&(dcid, _, _)| (None, dcid),
                    |&(_, _, i), n, out| render_guardian(&world.guardian_accounts[i], n, out),
                )
            });
            let c = scope.spawn(|| {
                build_query(
                    &contacts,
                    |&(school, dcid, _, _)| (Some(school), dcid),
                    |&(_, _, _, i), n, out| render_contact(&world.contacts[i], n, out),
                )
            });
            let e = build_query(
                &enrolled,
                |&(school, dcid, _)| (Some(school), dcid),
                |&(_, _, i), n, out| render_student(&students[i], n, out),
            );
            let ind = build_query(
                &independent,
                |&(dcid, _)| (None, dcid),
                |&(_, i), n, out| render_independent(&students[i], n, out),
            );
            (
                g.join().expect("guardian indexing panicked"),
                e,
                ind,
                c.join().expect("contact indexing panicked"),
            )
        });

        Dataset {
            queries: [guardians_q, enrolled_q, independent_q, contacts_q],
            schools,
            student_count: world.students.len(),
        }
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

/// Writes one flat JSON object. NULL columns alternate between the two forms
/// the spec allows, by the record's position, so both reach every client.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
    null_absent: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String, position: usize) -> Obj<'a> {
        out.push('{');
        Obj {
            out,
            first: true,
            null_absent: !position.is_multiple_of(2),
        }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_string(self.out, key);
        self.out.push(':');
    }

    fn s(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => {
                self.key(key);
                push_json_string(self.out, v);
            }
            None if self.null_absent => {}
            None => {
                self.key(key);
                self.out.push_str("\"\"");
            }
        }
    }

    fn n(&mut self, key: &str, value: Option<i64>) {
        match value {
            Some(v) => {
                self.key(key);
                let _ = write!(self.out, "\"{v}\"");
            }
            None => self.s(key, None),
        }
    }

    fn end(self) {
        self.out.push('}');
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn render_student(s: &WorldStudent, i: usize, out: &mut String) {
    let mut o = Obj::new(out, i);
    o.n("dcid", Some(s.dcid));
    o.n("id", s.id);
    o.s("student_number", s.student_number.as_deref());
    o.s("first_name", s.first_name.as_deref());
    o.s("last_name", s.last_name.as_deref());
    o.n("grade_level", s.grade_level);
    o.n("schoolid", Some(s.schoolid));
    o.n("enroll_status", Some(s.enroll_status));
    o.s("entrydate", s.entrydate.as_deref());
    o.s("orgemail", s.orgemail.as_deref());
    o.s("personalemail", s.personalemail.as_deref());
    o.end();
}

fn render_independent(s: &WorldStudent, i: usize, out: &mut String) {
    let mut o = Obj::new(out, i);
    o.n("dcid", Some(s.dcid));
    o.s("enrlytype1", s.enrlytype1.as_deref());
    o.s("enrlytype2", s.enrlytype2.as_deref());
    o.s("enrlytype3", s.enrlytype3.as_deref());
    o.s("orgemail", s.orgemail.as_deref());
    o.s("personalemail", s.personalemail.as_deref());
    o.end();
}

fn render_contact(c: &crate::harness::world::WorldContact, i: usize, out: &mut String) {
    let mut o = Obj::new(out, i);
    o.n("studentsdcid", Some(c.student_dcid));
    o.n("personid", Some(c.person_id));
    o.s("firstname", c.first_name.as_deref());
    o.s("lastname", c.last_name.as_deref());
    o.s("email", c.email.as_deref());
    // A non-decision-making contact is "0" or has no detail row at all.
    let flag = if c.isdecisionmaking == 1 {
        Some("1")
    } else {
        Some("0")
    };
    if c.isdecisionmaking == 1 || i.is_multiple_of(2) {
        o.s("isdecisionmaking", flag);
    }
    o.end();
}

/// The core query is not flattened: its columns come grouped by table.
fn render_guardian(g: &crate::harness::world::WorldGuardianAccount, i: usize, out: &mut String) {
    let _ = write!(out, "{{\"id\":{}", i + 1);
    out.push_str(",\"name\":\"guardianstudent\",\"tables\":{\"guardianstudent\":");
    let mut o = Obj::new(out, i);
    o.n("guardianid", Some(g.guardianid));
    o.n("studentsdcid", Some(g.student_dcid));
    let accounttype = if g.web_access_account {
        Some("webaccess")
    } else {
        Some("parentportal")
    };
    if g.web_access_account || i.is_multiple_of(2) {
        o.s("accounttype", accounttype);
    }
    o.end();
    out.push_str(",\"guardian\":");
    let mut o = Obj::new(out, i);
    o.s("email", g.email.as_deref());
    o.s("firstname", g.first_name.as_deref());
    o.s("lastname", g.last_name.as_deref());
    o.end();
    out.push_str("}}");
}

/// Plants `value` as `field` of one rendered record; `null` removes the
/// field. Nested records get the field in the table that has it (or the
/// first table).
pub(crate) fn apply_override(record: &str, field: &str, value: &serde_json::Value) -> String {
    let mut v: serde_json::Value = match serde_json::from_str(record) {
        Ok(v) => v,
        Err(_) => return record.to_string(),
    };
    let target = if v.get("tables").is_some_and(|t| t.is_object()) {
        let tables = v["tables"].as_object_mut().expect("checked above");
        let name = tables
            .iter()
            .find(|(_, t)| t.get(field).is_some())
            .or_else(|| tables.iter().next())
            .map(|(k, _)| k.clone());
        name.and_then(|name| tables.get_mut(&name))
            .and_then(|t| t.as_object_mut())
    } else {
        v.as_object_mut()
    };
    if let Some(obj) = target {
        if value.is_null() {
            obj.remove(field);
        } else {
            obj.insert(field.to_string(), value.clone());
        }
    }
    v.to_string()
}
