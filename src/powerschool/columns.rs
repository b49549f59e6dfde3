//! Reading the built-in guardian query through candidate columns. Its
//! records come nested, one object per PowerSchool table, under names no
//! public source lists completely; so each field is read through the
//! district's list of candidates (`[powerschool.guardian_columns]`): a
//! candidate with a table (`guardian.email`) matches a nested record's
//! `tables.guardian.email`, a plain one (`email`) a flat record's `email`.
//!
//! The first page decides whether the query can be read at all: when the
//! guardian id, the student or the email matches no candidate in any of its
//! records, the fetch fails before anything is written, naming the keys that
//! did arrive and the setting to change. `resolve_guardian_columns` and
//! `record_keys` let a preflight check do the same on one record.

use super::error::PowerSchoolError;
use super::parse::{self, Columns};
use crate::config::GuardianColumns;
use serde_json::Value;
use std::collections::BTreeSet;
use tracing::info;

/// Keys listed in an error at most; a record has a few dozen at most.
const KEYS_SHOWN: usize = 80;

/// Where one guardian field was found in a record (or a page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnResolution {
    /// The field's key under `[powerschool.guardian_columns]`, e.g. `email`.
    pub field: &'static str,
    /// The setting to change, e.g. `powerschool.guardian_columns.email`.
    pub setting: String,
    /// The first candidate the record carries, if any.
    pub matched: Option<String>,
    /// A run cannot go on without this field.
    pub required: bool,
}

/// (setting key, the column name `parse::guardian` reads, required).
pub(super) const FIELDS: [(&str, &str, bool); 6] = [
    ("guardian_id", "guardianid", true),
    ("student_dcid", "studentsdcid", true),
    ("email", "email", true),
    ("first_name", "firstname", false),
    ("last_name", "lastname", false),
    ("account_type", "accounttype", false),
];

/// The column names `parse::guardian` reads, in `FIELDS` order.
pub(super) const GUARDIAN_COLUMNS: [&str; 6] = [
    FIELDS[0].1,
    FIELDS[1].1,
    FIELDS[2].1,
    FIELDS[3].1,
    FIELDS[4].1,
    FIELDS[5].1,
];

pub(super) fn candidates<'a>(cols: &'a GuardianColumns, field: &str) -> &'a [String] {
    match field {
        "guardian_id" => &cols.guardian_id,
        "student_dcid" => &cols.student_dcid,
        "email" => &cols.email,
        "first_name" => &cols.first_name,
        "last_name" => &cols.last_name,
        _ => &cols.account_type,
    }
}

/// A record's keys as candidates name them, lower case and sorted:
/// `table.column` for each column of a nested record, `column` for a flat
/// one. NULL columns sent as `""` are listed too (the column exists).
pub fn record_keys(record: &Value) -> Vec<String> {
    let mut keys = BTreeSet::new();
    match record.get("tables") {
        Some(Value::Object(tables)) => {
            for (table, inner) in tables {
                if let Some(inner) = inner.as_object() {
                    for key in inner.keys() {
                        keys.insert(format!("{table}.{key}").to_ascii_lowercase());
                    }
                }
            }
        }
        _ => {
            if let Some(object) = record.as_object() {
                keys.extend(object.keys().map(|k| k.to_ascii_lowercase()));
            }
        }
    }
    keys.into_iter().collect()
}

/// Which candidate of each guardian field `record` carries.
pub fn resolve_guardian_columns(cols: &GuardianColumns, record: &Value) -> Vec<ColumnResolution> {
    let keys: BTreeSet<String> = record_keys(record).into_iter().collect();
    resolve_keys(cols, &keys)
}

fn resolve_keys(cols: &GuardianColumns, keys: &BTreeSet<String>) -> Vec<ColumnResolution> {
    FIELDS
        .iter()
        .map(|&(field, _, required)| ColumnResolution {
            field,
            setting: format!("powerschool.guardian_columns.{field}"),
            matched: candidates(cols, field)
                .iter()
                .find(|c| keys.contains(c.as_str()))
                .cloned(),
            required,
        })
        .collect()
}

/// The record's values by candidate name (`table.column` or `column`),
/// NULLs left out.
fn qualified_values(record: &Value) -> Result<Columns, String> {
    let object = record
        .as_object()
        .ok_or_else(|| "a guardian record must be a JSON object".to_string())?;
    let mut values = Columns::new();
    let mut put = |key: String, value: &Value| {
        if let Some(text) = parse::scalar_text(value) {
            values.entry(key.to_ascii_lowercase()).or_insert(text);
        }
    };
    match object.get("tables") {
        Some(Value::Object(tables)) => {
            for (table, inner) in tables {
                let inner = inner.as_object().ok_or_else(|| {
                    format!("table {table:?} of a nested record is not a JSON object")
                })?;
                for (key, value) in inner {
                    put(format!("{table}.{key}"), value);
                }
            }
        }
        _ => {
            for (key, value) in object {
                put(key.clone(), value);
            }
        }
    }
    Ok(values)
}

/// One guardian record under the names `parse::guardian` reads: each field
/// from the first of its candidates that has a value in this record.
pub(super) fn guardian_record(cols: &GuardianColumns, record: &Value) -> Result<Columns, String> {
    let values = qualified_values(record)?;
    let mut columns = Columns::new();
    for (field, column, _) in FIELDS {
        let found = candidates(cols, field)
            .iter()
            .find_map(|c| values.get(c.as_str()));
        if let Some(value) = found {
            columns.insert(column.to_string(), value.clone());
        }
    }
    Ok(columns)
}

/// How a query's records become columns.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reading<'a> {
    /// As sent: a flat record's keys, or a nested record's tables merged.
    AsSent,
    /// The guardian query, through its candidate columns.
    Guardian(&'a GuardianColumns),
}

impl Reading<'_> {
    pub(super) fn columns(&self, record: &Value) -> Result<Columns, String> {
        match self {
            Reading::AsSent => parse::record_columns(record),
            Reading::Guardian(cols) => guardian_record(cols, record),
        }
    }

    /// Fails when a required guardian field matches no candidate in any
    /// record of the first page (an empty page proves nothing).
    #[cfg(test)]
    fn check_first_page(&self, query: &str, records: &[Value]) -> Result<(), PowerSchoolError> {
        let Reading::Guardian(cols) = self else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        let keys: BTreeSet<String> = records.iter().flat_map(record_keys).collect();
        check_first_page_keys(cols, query, &keys)
    }
}

/// Fails when a required guardian field matches none of `keys`, the keys
/// the records of the first page carry (`record_keys`), naming the keys and
/// the setting to change; logs where each field is read from otherwise.
pub(super) fn check_first_page_keys(
    cols: &GuardianColumns,
    query: &str,
    keys: &BTreeSet<String>,
) -> Result<(), PowerSchoolError> {
    let resolved = resolve_keys(cols, keys);
    let missing: Vec<String> = resolved
        .iter()
        .filter(|r| r.required && r.matched.is_none())
        .map(|r| {
            format!(
                "{} (tried {})",
                r.setting,
                candidates(cols, r.field).join(", ")
            )
        })
        .collect();
    if missing.is_empty() {
        let columns: Vec<String> = resolved
            .iter()
            .map(|r| format!("{}={}", r.field, r.matched.as_deref().unwrap_or("(none)")))
            .collect();
        info!(query, columns = %columns.join(", "), "guardian fields read from");
        return Ok(());
    }
    let mut shown: Vec<&str> = keys.iter().map(String::as_str).take(KEYS_SHOWN).collect();
    if keys.len() > KEYS_SHOWN {
        shown.push("…");
    }
    Err(PowerSchoolError::GuardianColumnsUnmatched {
        query: query.to_string(),
        missing: missing.join("; "),
        keys: shown.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested() -> Value {
        json!({"id": 1, "name": "x", "tables": {
            "guardian": {"guardianid": "12", "firstname": "Pat", "lastname": "", "email": "old@x.org"},
            "guardianstudent": {"guardianid": "12", "studentsdcid": "5001", "accounttype": "webaccess"},
            "pcas_emailcontact": {"emailaddress": "Pat@X.org"}
        }})
    }

    #[test]
    fn nested_records_match_table_qualified_candidates_in_order() {
        let cols = GuardianColumns::default();
        let c = guardian_record(&cols, &nested()).unwrap();
        assert_eq!(c.get("guardianid").unwrap(), "12");
        assert_eq!(c.get("studentsdcid").unwrap(), "5001");
        assert_eq!(
            c.get("email").unwrap(),
            "Pat@X.org",
            "the first candidate wins"
        );
        assert_eq!(c.get("firstname").unwrap(), "Pat");
        assert!(!c.contains_key("lastname"), "\"\" is NULL");
        assert_eq!(c.get("accounttype").unwrap(), "webaccess");
        let r = resolve_guardian_columns(&cols, &nested());
        let email = r.iter().find(|r| r.field == "email").unwrap();
        assert_eq!(
            email.matched.as_deref(),
            Some("pcas_emailcontact.emailaddress")
        );
        assert_eq!(email.setting, "powerschool.guardian_columns.email");
        assert!(email.required);
    }

    #[test]
    fn flat_records_match_plain_candidates_only() {
        let cols = GuardianColumns::default();
        let flat = json!({"GuardianID": "3", "studentsdcid": 9, "email": "a@b.org"});
        assert_eq!(record_keys(&flat), ["email", "guardianid", "studentsdcid"]);
        let c = guardian_record(&cols, &flat).unwrap();
        assert_eq!(
            (c["guardianid"].as_str(), c["email"].as_str()),
            ("3", "a@b.org")
        );
        // A plain column under a table is not a plain candidate's match.
        let odd = json!({"tables": {"other": {"email": "a@b.org"}}});
        assert!(!guardian_record(&cols, &odd).unwrap().contains_key("email"));
    }

    #[test]
    fn a_required_field_without_a_match_names_the_keys_and_the_setting() {
        let cols = GuardianColumns::default();
        let record = json!({"tables": {
            "guardian": {"guardianid": "12"},
            "guardianstudent": {"studentsdcid": "5001"},
            "pcas_contact": {"mail": "a@b.org"}
        }});
        let err = Reading::Guardian(&cols)
            .check_first_page("q", &[record])
            .unwrap_err()
            .to_string();
        assert!(err.contains("powerschool.guardian_columns.email"), "{err}");
        assert!(
            err.contains("guardian.guardianid, guardianstudent.studentsdcid, pcas_contact.mail"),
            "{err}"
        );
        assert!(!err.contains("guardian_id"), "{err}");
        assert!(Reading::Guardian(&cols).check_first_page("q", &[]).is_ok());
    }
}
