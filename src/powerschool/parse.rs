//! Turning PowerSchool's JSON into columns and typed records. Real servers
//! differ in small ways (strings or numbers, NULL as absent or `""`, flat or
//! nested records, one school as an object), so everything here accepts every
//! variant the spec lists and reports what it cannot read instead of guessing.

use super::records::{GuardianLink, IndependentStudent, Name, School, Student, StudentContact};
use serde_json::Value;
use std::collections::BTreeMap;

/// One record's columns: lower-case column name → value as text. A NULL
/// column (absent, `null` or `""`) is not in the map, so `get` is the only
/// NULL test anyone needs.
pub type Columns = BTreeMap<String, String>;

/// Why one field of one record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, value: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            value: value.to_string(),
            message: message.into(),
        }
    }
}

/// A scalar as text, or None for a NULL. Whitespace around a value is noise
/// from PowerSchool's fixed-width columns, never meaning.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.trim().to_string(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Number(n) => number_text(n),
        // Not expected in a column; kept as JSON so a problem can show it.
        other => other.to_string(),
    };
    if text.is_empty() {
        None
    } else {
        Some(text)
    }
}

/// Integers stay integers even when a server sends them as `121.0`.
fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

/// The columns of one PowerQuery record, flat or nested.
///
/// Nested records (`{"id":…, "name":…, "tables": {"t": {…}, …}}`) carry their
/// columns only under `tables`; the outer `id`/`name` describe the row, not a
/// column, and would clash with a real `id` column. When two tables name the
/// same column the first non-NULL value wins.
pub fn record_columns(record: &Value) -> Result<Columns, String> {
    let object = record
        .as_object()
        .ok_or_else(|| format!("a record must be a JSON object, got {}", kind_of(record)))?;
    let mut columns = Columns::new();
    match object.get("tables") {
        Some(Value::Object(tables)) => {
            for (table, inner) in tables {
                let inner = inner.as_object().ok_or_else(|| {
                    format!("table {table:?} of a nested record is not a JSON object")
                })?;
                for (key, value) in inner {
                    if let Some(text) = scalar_text(value) {
                        columns.entry(key.to_ascii_lowercase()).or_insert(text);
                    }
                }
            }
        }
        _ => {
            for (key, value) in object {
                if let Some(text) = scalar_text(value) {
                    columns.entry(key.to_ascii_lowercase()).or_insert(text);
                }
            }
        }
    }
    Ok(columns)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The records of one PowerQuery page. A page with no records may leave
/// `record` out entirely; that is an empty page, not an error. A lone object
/// instead of a list is taken as a one-record page.
pub fn page_records(body: &Value) -> Result<Vec<Value>, String> {
    into_page_records(body.clone())
}

/// As `page_records`, taking the page: its records move out, no copy.
pub fn into_page_records(body: Value) -> Result<Vec<Value>, String> {
    let mut object = match body {
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "the page is {}, not a JSON object",
                kind_of(&other)
            ))
        }
    };
    match object.remove("record") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(records)) => Ok(records),
        Some(one @ Value::Object(_)) => Ok(vec![one]),
        Some(other) => Err(format!("`record` is {}, not a list", kind_of(&other))),
    }
}

/// `{"count": 1234}` (or `"1234"`).
pub fn count_of(body: &Value) -> Result<u64, String> {
    let count = body
        .get("count")
        .ok_or_else(|| "the answer has no `count`".to_string())?;
    scalar_text(count)
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| format!("`count` is {count}, not a whole number"))
}

/// What the token endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAnswer {
    pub access_token: String,
    /// Seconds; None when the server left it out or sent nonsense.
    pub expires_in: Option<u64>,
}

pub fn token_answer(body: &Value) -> Result<TokenAnswer, String> {
    let access_token = body
        .get("access_token")
        .and_then(scalar_text)
        .ok_or_else(|| "the token answer has no access_token".to_string())?;
    let expires_in = body
        .get("expires_in")
        .and_then(scalar_text)
        .and_then(|t| t.parse::<u64>().ok());
    Ok(TokenAnswer {
        access_token,
        expires_in,
    })
}

/// One column's value as a typed reader sees it: text as sent (trimmed,
/// never empty) or a whole number the server sent as a JSON number, which
/// needs no text at all on the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    Text(&'a str),
    Int(i64),
}

impl Cell<'_> {
    /// The value as `Columns` would hold it.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Cell::Text(t) => std::borrow::Cow::Borrowed(t),
            Cell::Int(i) => std::borrow::Cow::Owned(i.to_string()),
        }
    }
}

/// A record's columns by name, whatever holds them: a `Columns` map (the
/// raw query path) or a page parser's row (the typed path). `None` is NULL.
pub trait Record {
    fn cell(&self, field: &str) -> Option<Cell<'_>>;
}

impl Record for Columns {
    fn cell(&self, field: &str) -> Option<Cell<'_>> {
        self.get(field).map(|v| Cell::Text(v.as_str()))
    }
}

/// One record of the schools query: `school_number` (required) and `name`.
pub fn school<R: Record + ?Sized>(c: &R) -> Result<School, FieldError> {
    Ok(School {
        id: opt_int(c, "id")?,
        name: opt_text(c, "name").unwrap_or_default(),
        school_number: req_int(c, "school_number")?,
    })
}

// ---- field readers ----

fn req_int<R: Record + ?Sized>(c: &R, field: &str) -> Result<i64, FieldError> {
    match c.cell(field) {
        None => Err(FieldError::new(field, "", "required but missing or empty")),
        Some(v) => cell_int(field, v),
    }
}

fn opt_int<R: Record + ?Sized>(c: &R, field: &str) -> Result<Option<i64>, FieldError> {
    c.cell(field).map(|v| cell_int(field, v)).transpose()
}

fn cell_int(field: &str, cell: Cell<'_>) -> Result<i64, FieldError> {
    match cell {
        Cell::Int(i) => Ok(i),
        Cell::Text(t) => parse_int(field, t),
    }
}

fn parse_int(field: &str, value: &str) -> Result<i64, FieldError> {
    if let Ok(i) = value.parse::<i64>() {
        return Ok(i);
    }
    // `121.0` from a server that stores numbers as floats.
    if let Ok(f) = value.parse::<f64>() {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
            return Ok(f as i64);
        }
    }
    Err(FieldError::new(field, value, "not a whole number"))
}

fn opt_text<R: Record + ?Sized>(c: &R, field: &str) -> Option<String> {
    c.cell(field).map(|v| v.text().into_owned())
}

/// A name or short code: held inline when it fits (see `rules::Name`).
fn opt_name<R: Record + ?Sized>(c: &R, field: &str) -> Option<Name> {
    c.cell(field).map(|v| Name::from(v.text().as_ref()))
}

fn opt_date<R: Record + ?Sized>(
    c: &R,
    field: &str,
) -> Result<Option<chrono::NaiveDate>, FieldError> {
    c.cell(field)
        .map(|v| {
            let v = v.text();
            chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                .map_err(|_| FieldError::new(field, &v, "not a date of the form YYYY-MM-DD"))
        })
        .transpose()
}

/// `"1"` is yes; `"0"` or NULL is no. Anything else is not guessed at.
fn flag<R: Record + ?Sized>(c: &R, field: &str) -> Result<bool, FieldError> {
    let Some(cell) = c.cell(field) else {
        return Ok(false);
    };
    let text = cell.text();
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "y" | "yes" => Ok(true),
        "0" | "false" | "n" | "no" => Ok(false),
        _ => Err(FieldError::new(
            field,
            &text,
            "not a yes/no flag (expected 1 or 0)",
        )),
    }
}

// ---- the four queries ----

pub fn guardian<R: Record + ?Sized>(c: &R) -> Result<GuardianLink, FieldError> {
    Ok(GuardianLink {
        guardian_id: req_int(c, "guardianid")?,
        student_dcid: req_int(c, "studentsdcid")?,
        email: opt_text(c, "email"),
        first_name: opt_name(c, "firstname"),
        last_name: opt_name(c, "lastname"),
        web_access_account: matches!(
            c.cell("accounttype"),
            Some(Cell::Text(t)) if t.eq_ignore_ascii_case("webaccess")
        ),
    })
}

/// `queried_school` is the `school_number` the query was run for; it stands
/// in when a record has no `schoolid`.
pub fn student<R: Record + ?Sized>(
    c: &R,
    queried_school: Option<i64>,
) -> Result<Student, FieldError> {
    let dcid = req_int(c, "dcid")?;
    let school_number = match (opt_int(c, "schoolid")?, queried_school) {
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => {
            return Err(FieldError::new(
                "schoolid",
                "",
                "required but missing, and the query named no school",
            ))
        }
    };
    Ok(Student {
        dcid,
        id: opt_int(c, "id")?,
        student_number: opt_name(c, "student_number"),
        first_name: opt_name(c, "first_name"),
        last_name: opt_name(c, "last_name"),
        grade_level: opt_int(c, "grade_level")?,
        school_number,
        enroll_status: req_int(c, "enroll_status")?,
        entry_date: opt_date(c, "entrydate")?,
        org_email: opt_text(c, "orgemail"),
        personal_email: opt_text(c, "personalemail"),
    })
}

pub fn independent_student<R: Record + ?Sized>(c: &R) -> Result<IndependentStudent, FieldError> {
    Ok(IndependentStudent {
        dcid: req_int(c, "dcid")?,
        enrollment_types: [
            opt_text(c, "enrlytype1"),
            opt_text(c, "enrlytype2"),
            opt_text(c, "enrlytype3"),
        ],
        org_email: opt_text(c, "orgemail"),
        personal_email: opt_text(c, "personalemail"),
    })
}

pub fn contact<R: Record + ?Sized>(c: &R) -> Result<StudentContact, FieldError> {
    Ok(StudentContact {
        student_dcid: req_int(c, "studentsdcid")?,
        person_id: req_int(c, "personid")?,
        first_name: opt_name(c, "firstname"),
        last_name: opt_name(c, "lastname"),
        email: opt_text(c, "email"),
        is_decision_making: flag(c, "isdecisionmaking")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(v: Value) -> Columns {
        record_columns(&v).unwrap()
    }

    #[test]
    fn flat_and_nested_records_give_the_same_columns() {
        let flat = cols(json!({"GuardianID": "12", "studentsdcid": 5001, "email": "a@x.org"}));
        let nested = cols(json!({
            "id": 99, "name": "student_guardian_detail",
            "tables": {
                "guardianstudent": {"guardianid": 12, "studentsdcid": "5001"},
                "guardian": {"email": "a@x.org", "firstname": ""}
            }
        }));
        assert_eq!(flat, nested);
        assert_eq!(flat.get("guardianid").unwrap(), "12");
        assert!(!nested.contains_key("id"), "the outer id is not a column");
        assert!(!nested.contains_key("firstname"), "\"\" is NULL");
    }

    #[test]
    fn values_as_strings_or_numbers_and_nulls() {
        let c = cols(json!({
            "dcid": 5001, "id": "17", "student_number": 100234, "first_name": " Ava ",
            "last_name": null, "grade_level": "-1", "schoolid": "101",
            "enroll_status": 0, "entrydate": "2026-08-27", "orgemail": "",
        }));
        let s = student(&c, None).unwrap();
        assert_eq!(s.dcid, 5001);
        assert_eq!(s.id, Some(17));
        assert_eq!(s.student_number.as_deref(), Some("100234"));
        assert_eq!(s.first_name.as_deref(), Some("Ava"));
        assert_eq!(s.last_name, None);
        assert_eq!(s.grade_level, Some(-1));
        assert_eq!(s.school_number, 101);
        assert_eq!(s.enroll_status, 0);
        assert_eq!(
            s.entry_date,
            Some(chrono::NaiveDate::from_ymd_opt(2026, 8, 27).unwrap())
        );
        assert_eq!(s.org_email, None);
        assert_eq!(s.personal_email, None);
        let floats = cols(json!({"dcid": 5001.0, "enroll_status": "-1"}));
        let s = student(&floats, Some(205)).unwrap();
        assert_eq!((s.dcid, s.school_number, s.enroll_status), (5001, 205, -1));
    }

    #[test]
    fn bad_fields_name_field_and_value() {
        let cases = [
            (json!({"dcid": "abc", "enroll_status": "0"}), "dcid", "abc"),
            (
                json!({"dcid": "1", "enroll_status": "0", "entrydate": "31/02/2026"}),
                "entrydate",
                "31/02/2026",
            ),
            (
                json!({"dcid": "1", "enroll_status": "0", "entrydate": "2026-02-31"}),
                "entrydate",
                "2026-02-31",
            ),
            (
                json!({"dcid": "1", "enroll_status": "0", "grade_level": "x"}),
                "grade_level",
                "x",
            ),
            (json!({"enroll_status": "0"}), "dcid", ""),
            (json!({"dcid": "1"}), "enroll_status", ""),
        ];
        for (record, field, value) in cases {
            let e = student(&cols(record.clone()), Some(101)).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.value.as_str()),
                (field, value),
                "{record}"
            );
        }
        let e = student(&cols(json!({"dcid": "1", "enroll_status": "0"})), None).unwrap_err();
        assert_eq!(e.field, "schoolid");
    }

    #[test]
    fn guardians_and_web_access() {
        let g = guardian(&cols(json!({
            "guardianid": "12", "studentsdcid": "5001", "email": "P@X.org",
            "firstname": "Pat", "lastname": "Lee", "accounttype": "WebAccess"
        })))
        .unwrap();
        assert_eq!((g.guardian_id, g.student_dcid), (12, 5001));
        assert_eq!(
            g.email.as_deref(),
            Some("P@X.org"),
            "email is not normalised here"
        );
        assert!(g.web_access_account);
        for other in [json!("parentportal"), json!(""), Value::Null] {
            let g = guardian(&cols(
                json!({"guardianid": 1, "studentsdcid": 2, "accounttype": other}),
            ))
            .unwrap();
            assert!(!g.web_access_account);
        }
        let e = guardian(&cols(json!({"guardianid": 1}))).unwrap_err();
        assert_eq!(e.field, "studentsdcid");
    }

    #[test]
    fn contacts_and_decision_making() {
        let yes = contact(&cols(json!({
            "studentsdcid": "5001", "personid": 77, "isdecisionmaking": "1", "email": "m@x.org"
        })))
        .unwrap();
        assert!(yes.is_decision_making);
        assert_eq!((yes.student_dcid, yes.person_id), (5001, 77));
        for no in [json!("0"), json!(0), json!(""), Value::Null] {
            let c = contact(&cols(
                json!({"studentsdcid": 1, "personid": 2, "isdecisionmaking": no}),
            ))
            .unwrap();
            assert!(!c.is_decision_making, "{no}");
        }
        let c = contact(&cols(
            json!({"studentsdcid": 1, "personid": 2, "isdecisionmaking": 1}),
        ));
        assert!(c.unwrap().is_decision_making);
        let e = contact(&cols(
            json!({"studentsdcid": 1, "personid": 2, "isdecisionmaking": "maybe"}),
        ))
        .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("isdecisionmaking", "maybe")
        );
    }

    #[test]
    fn independent_students() {
        let s = independent_student(&cols(json!({
            "tables": {"students": {"dcid": 5001}, "s_ab_stu_x": {"enrlytype1": "", "enrlytype2": 121}}
        })))
        .unwrap();
        assert_eq!(s.dcid, 5001);
        assert_eq!(s.enrollment_types, [None, Some("121".to_string()), None]);
    }

    #[test]
    fn pages_counts_and_tokens() {
        assert_eq!(page_records(&json!({"name": "q"})).unwrap().len(), 0);
        assert_eq!(
            page_records(&json!({"name": "q", "record": []}))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(page_records(&json!({"record": [{}, {}]})).unwrap().len(), 2);
        assert_eq!(
            page_records(&json!({"record": {"dcid": 1}})).unwrap().len(),
            1
        );
        assert!(page_records(&json!([1])).is_err());
        assert_eq!(count_of(&json!({"count": 1234})).unwrap(), 1234);
        assert_eq!(count_of(&json!({"count": "12"})).unwrap(), 12);
        assert!(count_of(&json!({"count": "many"})).is_err());
        assert!(count_of(&json!({})).is_err());
        let t = token_answer(&json!({"access_token": "t", "expires_in": "3599"})).unwrap();
        assert_eq!(t.expires_in, Some(3599));
        let t = token_answer(&json!({"access_token": "t", "expires_in": 60})).unwrap();
        assert_eq!(t.expires_in, Some(60));
        let t = token_answer(&json!({"access_token": "t"})).unwrap();
        assert_eq!(t.expires_in, None);
        assert!(token_answer(&json!({"error": "invalid_client"})).is_err());
    }

    #[test]
    fn schools_need_a_number() {
        let one = school(&cols(json!({"school_number": "101", "name": "North"}))).unwrap();
        assert_eq!(
            (one.school_number, one.name.as_str(), one.id),
            (101, "North", None)
        );
        let e = school(&cols(json!({"name": "No number"}))).unwrap_err();
        assert_eq!(e.field, "school_number");
    }
}
