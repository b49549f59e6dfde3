//! The fake's records as PowerSchool writes them on the wire: flat JSON
//! objects of string values (the core guardian query grouped by table),
//! NULL columns in both forms the spec allows, and bad values planted by a
//! test's `FieldOverride`.

use crate::harness::world::{WorldContact, WorldGuardianAccount, WorldStudent};
use std::fmt::Write;

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

pub(super) fn render_student(s: &WorldStudent, i: usize, out: &mut String) {
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

pub(super) fn render_independent(s: &WorldStudent, i: usize, out: &mut String) {
    let mut o = Obj::new(out, i);
    o.n("dcid", Some(s.dcid));
    o.s("enrlytype1", s.enrlytype1.as_deref());
    o.s("enrlytype2", s.enrlytype2.as_deref());
    o.s("enrlytype3", s.enrlytype3.as_deref());
    o.s("orgemail", s.orgemail.as_deref());
    o.s("personalemail", s.personalemail.as_deref());
    o.end();
}

pub(super) fn render_contact(c: &WorldContact, i: usize, out: &mut String) {
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

/// One row of the schools query (flat, as the plugin's queries are).
pub(super) fn render_school(school_number: i64, name: &str, i: usize, out: &mut String) {
    let mut o = Obj::new(out, i);
    o.n("school_number", Some(school_number));
    o.s("name", Some(name));
    o.end();
}

/// How the fake sends the guardian query's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GuardianShape {
    /// Flat records (`guardianid`, `email`, …) instead of PowerSchool's
    /// nested ones.
    pub(crate) flat: bool,
    /// Send the email only under this column (`table.column` when nested,
    /// the column when flat), as a server whose names differ would.
    pub(crate) email_column: Option<String>,
}

/// One table of a nested record, or the whole of a flat one.
type Table<'a> = (String, Vec<(String, Option<String>)>);

/// The core query is not flattened: its columns come grouped by
/// PowerSchool's tables (`guardian`, `guardianstudent`,
/// `pcas_emailcontact`), unless the shape asks for flat records.
pub(super) fn render_guardian(
    g: &WorldGuardianAccount,
    i: usize,
    shape: &GuardianShape,
    out: &mut String,
) {
    let id = Some(g.guardianid.to_string());
    let email = g.email.clone();
    let (renamed, email) = match &shape.email_column {
        Some(column) => (Some((column.as_str(), email)), None),
        None => (None, email),
    };
    let accounttype = if g.web_access_account {
        Some("webaccess".to_string())
    } else {
        Some("parentportal".to_string())
    };
    // A Parent Portal link's account type is sent or left out, alternately.
    let send_type = g.web_access_account || i.is_multiple_of(2);
    let c = |k: &str, v: Option<String>| (k.to_string(), v);
    let mut tables: Vec<Table> = if shape.flat {
        let mut row = vec![
            c("guardianid", id),
            c("studentsdcid", Some(g.student_dcid.to_string())),
            c("email", email),
            c("firstname", g.first_name.clone()),
            c("lastname", g.last_name.clone()),
        ];
        if send_type {
            row.push(c("accounttype", accounttype));
        }
        if shape.email_column.is_some() {
            row.retain(|(k, _)| k != "email");
        }
        vec![(String::new(), row)]
    } else {
        let mut link = vec![
            c("guardianid", id.clone()),
            c("studentsdcid", Some(g.student_dcid.to_string())),
        ];
        if send_type {
            link.push(c("accounttype", accounttype));
        }
        let mut guardian = vec![
            c("guardianid", id),
            c("firstname", g.first_name.clone()),
            c("lastname", g.last_name.clone()),
        ];
        let mut tables = vec![("guardianstudent".to_string(), link)];
        if shape.email_column.is_none() {
            guardian.push(c("email", email.clone()));
            tables.push((
                "pcas_emailcontact".to_string(),
                vec![c("emailaddress", email)],
            ));
        }
        tables.insert(0, ("guardian".to_string(), guardian));
        tables
    };
    if let Some((column, value)) = renamed {
        let (table, column) = match column.split_once('.') {
            Some((t, c)) if !shape.flat => (t, c),
            Some((_, c)) => ("", c),
            None => ("", column),
        };
        match tables.iter_mut().find(|(t, _)| t == table) {
            Some((_, row)) => row.push(c(column, value)),
            None => tables.push((table.to_string(), vec![c(column, value)])),
        }
    }
    if shape.flat {
        let row = tables.first().map_or(&[][..], |(_, row)| row.as_slice());
        write_row(out, i, row);
        return;
    }
    let _ = write!(out, "{{\"id\":{}", i + 1);
    out.push_str(",\"name\":\"student_guardian_detail\",\"tables\":{");
    for (n, (table, row)) in tables.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        push_json_string(out, table);
        out.push(':');
        write_row(out, i, row);
    }
    out.push_str("}}");
}

fn write_row(out: &mut String, i: usize, row: &[(String, Option<String>)]) {
    let mut o = Obj::new(out, i);
    for (key, value) in row {
        o.s(key, value.as_deref());
    }
    o.end();
}

/// Plants `value` as `field` of one rendered record; `null` removes the
/// field. In a nested record a `table.column` field is that table's column,
/// and a plain one is set in every table that has it (or the first table).
pub(crate) fn apply_override(record: &str, field: &str, value: &serde_json::Value) -> String {
    let mut v: serde_json::Value = match serde_json::from_str(record) {
        Ok(v) => v,
        Err(_) => return record.to_string(),
    };
    let set = |obj: &mut serde_json::Map<String, serde_json::Value>, column: &str| {
        if value.is_null() {
            obj.remove(column);
        } else {
            obj.insert(column.to_string(), value.clone());
        }
    };
    match v.get_mut("tables").and_then(|t| t.as_object_mut()) {
        Some(tables) => {
            let (names, column): (Vec<String>, &str) = match field.split_once('.') {
                Some((table, column)) => (vec![table.to_string()], column),
                None => {
                    let having: Vec<String> = tables
                        .iter()
                        .filter(|(_, t)| t.get(field).is_some())
                        .map(|(k, _)| k.clone())
                        .collect();
                    let first = tables.keys().next().cloned();
                    let names = if having.is_empty() {
                        first.into_iter().collect()
                    } else {
                        having
                    };
                    (names, field)
                }
            };
            for name in names {
                let table = tables.entry(name).or_insert_with(|| serde_json::json!({}));
                if let Some(obj) = table.as_object_mut() {
                    set(obj, column);
                }
            }
        }
        None => {
            if let Some(obj) = v.as_object_mut() {
                set(obj, field);
            }
        }
    }
    v.to_string()
}
