//! `[powerschool.fields]`: the district's own PowerSchool column names that
//! the student-sync plugin's queries read. District tables (`U_*`) and state
//! extension columns (`S_AB_STU_X.*`) differ between districts and versions,
//! so they are settings; the plugin (`student-sync plugin build`) is built
//! from them and `student-sync doctor` probes them. Each name goes into the
//! plugin's SQL, so only `TABLE.COLUMN` made of letters, digits and `_` is
//! accepted.

use super::{invalid, ConfigError};
use crate::rules::eligibility::INDEPENDENT_ENROLMENT_TYPE;
use serde::Deserialize;
use std::fmt;

/// One PowerSchool column, `TABLE.COLUMN`, in capitals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableColumn {
    pub table: String,
    pub column: String,
}

impl TableColumn {
    /// A name the program itself spells (a default or a built-in column).
    pub fn new(table: &str, column: &str) -> Self {
        TableColumn {
            table: table.to_ascii_uppercase(),
            column: column.to_ascii_uppercase(),
        }
    }

    /// `TABLE.COLUMN` checked for the identifier characters SQL allows, or why not.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (table, column) = text.trim().split_once('.').ok_or_else(|| {
            "allowed is TABLE.COLUMN (one dot), e.g. U_STUDENT.ORGEMAIL".to_string()
        })?;
        for part in [table, column] {
            if !is_identifier(part) {
                return Err(format!(
                    "allowed is TABLE.COLUMN where each part starts with a letter and has only \
                     letters, digits and _ (at most 128), e.g. U_STUDENT.ORGEMAIL; {part:?} is not"
                ));
            }
        }
        Ok(TableColumn::new(table, column))
    }
}

impl fmt::Display for TableColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// A SQL identifier PowerSchool (Oracle) takes unquoted.
pub fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 128
}

/// The typed `[powerschool.fields]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerSchoolFields {
    /// The three enrolment-type columns (query columns `enrlytype1..3`).
    pub enrolment_types: [TableColumn; 3],
    /// The enrolment type that marks an independent student.
    pub independent_enrolment_type: String,
    /// Whether a contact is decision-making (query column `isdecisionmaking`).
    pub decision_making: TableColumn,
    /// The student's school-issued email (query column `orgemail`).
    pub student_org_email: TableColumn,
    /// The student's personal email (query column `personalemail`).
    pub student_personal_email: TableColumn,
}

impl Default for PowerSchoolFields {
    fn default() -> Self {
        PowerSchoolFields {
            enrolment_types: [
                TableColumn::new("S_AB_STU_X", "ENRLYTYPE1"),
                TableColumn::new("S_AB_STU_X", "ENRLYTYPE2"),
                TableColumn::new("S_AB_STU_X", "ENRLYTYPE3"),
            ],
            independent_enrolment_type: INDEPENDENT_ENROLMENT_TYPE.to_string(),
            decision_making: TableColumn::new("U_STUDENTCONTACTDETAIL", "ISDECISIONMAKING"),
            student_org_email: TableColumn::new("U_STUDENT", "ORGEMAIL"),
            student_personal_email: TableColumn::new("U_STUDENT", "PERSONALEMAIL"),
        }
    }
}

impl PowerSchoolFields {
    /// Every column with the setting that names it, in the settings' order.
    pub fn named(&self) -> Vec<(&'static str, &TableColumn)> {
        let [t1, t2, t3] = &self.enrolment_types;
        vec![
            ("powerschool.fields.enrolment_type_1", t1),
            ("powerschool.fields.enrolment_type_2", t2),
            ("powerschool.fields.enrolment_type_3", t3),
            ("powerschool.fields.decision_making", &self.decision_making),
            (
                "powerschool.fields.student_org_email",
                &self.student_org_email,
            ),
            (
                "powerschool.fields.student_personal_email",
                &self.student_personal_email,
            ),
        ]
    }
}

/// `[powerschool.fields]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFields {
    pub enrolment_type_1: Option<String>,
    pub enrolment_type_2: Option<String>,
    pub enrolment_type_3: Option<String>,
    pub independent_enrolment_type: Option<String>,
    pub decision_making: Option<String>,
    pub student_org_email: Option<String>,
    pub student_personal_email: Option<String>,
}

/// Tables the plugin's queries join for their own purposes: a district
/// column may live on its base table or on an extension table, not on these.
const QUERY_TABLES: &[&str] = &[
    "STUDENTS",
    "STUDENTCONTACTASSOC",
    "STUDENTCONTACTDETAIL",
    "PERSON",
    "PERSONEMAILADDRESSASSOC",
    "EMAILADDRESS",
    "SCHOOLS",
];

/// The checked fields, defaults for the keys left out.
pub(super) fn fields(file: &FileFields) -> Result<PowerSchoolFields, ConfigError> {
    let default = PowerSchoolFields::default();
    let student = |key: &str, value: &Option<String>, default: &TableColumn| {
        column(key, value, default, "STUDENTS", "STUDENTSDCID")
    };
    let [d1, d2, d3] = &default.enrolment_types;
    let fields = PowerSchoolFields {
        enrolment_types: [
            student(
                "powerschool.fields.enrolment_type_1",
                &file.enrolment_type_1,
                d1,
            )?,
            student(
                "powerschool.fields.enrolment_type_2",
                &file.enrolment_type_2,
                d2,
            )?,
            student(
                "powerschool.fields.enrolment_type_3",
                &file.enrolment_type_3,
                d3,
            )?,
        ],
        independent_enrolment_type: enrolment_value(&file.independent_enrolment_type)?,
        decision_making: column(
            "powerschool.fields.decision_making",
            &file.decision_making,
            &default.decision_making,
            "STUDENTCONTACTDETAIL",
            "STUDENTCONTACTDETAILID",
        )?,
        student_org_email: student(
            "powerschool.fields.student_org_email",
            &file.student_org_email,
            &default.student_org_email,
        )?,
        student_personal_email: student(
            "powerschool.fields.student_personal_email",
            &file.student_personal_email,
            &default.student_personal_email,
        )?,
    };
    Ok(fields)
}

/// One column setting: `TABLE.COLUMN`, on `base` itself or on a one-to-one
/// extension of it joined by `key`.
fn column(
    key: &str,
    value: &Option<String>,
    default: &TableColumn,
    base: &str,
    join_key: &str,
) -> Result<TableColumn, ConfigError> {
    let Some(text) = value else {
        return Ok(default.clone());
    };
    let parsed = TableColumn::parse(text).map_err(|allowed| invalid(key, text, &allowed))?;
    if parsed.table != base && QUERY_TABLES.contains(&parsed.table.as_str()) {
        return Err(invalid(
            key,
            text,
            &format!(
                "allowed is a column of {base} or of an extension table of {base} joined by \
                 {join_key} (such as {}); {} is a table the queries use for something else",
                default.table, parsed.table
            ),
        ));
    }
    if parsed.table != base && parsed.column == join_key {
        return Err(invalid(
            key,
            text,
            &format!("{join_key} is the extension table's join key, not a data column"),
        ));
    }
    Ok(parsed)
}

/// The enrolment type value: it is compared as text in the SQL.
fn enrolment_value(value: &Option<String>) -> Result<String, ConfigError> {
    let key = "powerschool.fields.independent_enrolment_type";
    let Some(text) = value else {
        return Ok(INDEPENDENT_ENROLMENT_TYPE.to_string());
    };
    let trimmed = text.trim();
    let ok = !trimmed.is_empty()
        && trimmed.len() <= 30
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(invalid(
            key,
            text,
            "allowed is the enrolment type code as PowerSchool stores it, letters, digits, _ and - \
             only (at most 30), e.g. 121",
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_table_dot_column_of_identifier_characters() {
        assert_eq!(
            TableColumn::parse(" u_student.OrgEmail ").unwrap(),
            TableColumn::new("U_STUDENT", "ORGEMAIL")
        );
        for bad in [
            "ORGEMAIL",
            "U_STUDENT.",
            "A.B.C",
            "U_STUDENT.ORG EMAIL",
            "U_STUDENT.ORGEMAIL;DROP",
            "1X.Y",
            "U_STUDENT.\"X\"",
        ] {
            assert!(TableColumn::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_bad_field_names_its_setting() {
        let file = FileFields {
            decision_making: Some("PERSON.ISDECISIONMAKING".into()),
            ..FileFields::default()
        };
        let err = fields(&file).unwrap_err().to_string();
        assert!(err.contains("powerschool.fields.decision_making"), "{err}");
        assert!(err.contains("STUDENTCONTACTDETAILID"), "{err}");
        let file = FileFields {
            independent_enrolment_type: Some("121' OR '1'='1".into()),
            ..FileFields::default()
        };
        let err = fields(&file).unwrap_err().to_string();
        assert!(
            err.contains("powerschool.fields.independent_enrolment_type"),
            "{err}"
        );
        let file = FileFields {
            student_org_email: Some("STUDENTS.EMAIL_ADDR".into()),
            enrolment_type_2: Some("s_ab_stu_x.enrlytype9".into()),
            ..FileFields::default()
        };
        let f = fields(&file).unwrap();
        assert_eq!(f.student_org_email.to_string(), "STUDENTS.EMAIL_ADDR");
        assert_eq!(f.enrolment_types[1].to_string(), "S_AB_STU_X.ENRLYTYPE9");
        assert_eq!(
            fields(&FileFields::default()).unwrap(),
            PowerSchoolFields::default()
        );
    }
}
