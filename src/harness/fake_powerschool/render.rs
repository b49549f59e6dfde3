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

/// The core query is not flattened: its columns come grouped by table.
pub(super) fn render_guardian(g: &WorldGuardianAccount, i: usize, out: &mut String) {
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
