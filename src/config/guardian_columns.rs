//! `[powerschool.guardian_columns]`: for each field of the built-in guardian
//! query, the columns it may arrive under, in order. PowerSchool's core query
//! names its columns by table (`guardian.guardianid` in a nested record) and
//! no public source lists them all, so the district can add a name without a
//! new release. A candidate with a table (`guardian.email`) matches a nested
//! record; one without (`email`) matches a flat record.

use super::{invalid, ConfigError};
use serde::Deserialize;

/// The candidates of every guardian field, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardianColumns {
    pub guardian_id: Vec<String>,
    pub student_dcid: Vec<String>,
    pub email: Vec<String>,
    pub first_name: Vec<String>,
    pub last_name: Vec<String>,
    pub account_type: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Default for GuardianColumns {
    /// What public clients of PowerSchool show the core query to send.
    fn default() -> Self {
        GuardianColumns {
            guardian_id: names(&[
                "guardian.guardianid",
                "guardianstudent.guardianid",
                "guardianid",
            ]),
            student_dcid: names(&[
                "guardianstudent.studentsdcid",
                "students.dcid",
                "studentsdcid",
            ]),
            email: names(&["pcas_emailcontact.emailaddress", "guardian.email", "email"]),
            first_name: names(&["guardian.firstname", "firstname"]),
            last_name: names(&["guardian.lastname", "lastname"]),
            account_type: names(&["guardianstudent.accounttype", "accounttype"]),
        }
    }
}

/// The table as written in the file; the environment sets a key with a
/// comma-separated list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileGuardianColumns {
    pub guardian_id: Option<Vec<String>>,
    pub student_dcid: Option<Vec<String>>,
    pub email: Option<Vec<String>>,
    pub first_name: Option<Vec<String>>,
    pub last_name: Option<Vec<String>>,
    pub account_type: Option<Vec<String>>,
}

/// The keys under `powerschool.guardian_columns`, for the environment.
pub(super) const KEYS: &[&str] = &[
    "guardian_id",
    "student_dcid",
    "email",
    "first_name",
    "last_name",
    "account_type",
];

/// Each list non-empty; each candidate `column` or `table.column`, letters,
/// digits and `_`, stored in lower case as PowerSchool's keys are read.
pub(super) fn validate(file: FileGuardianColumns) -> Result<GuardianColumns, ConfigError> {
    let d = GuardianColumns::default();
    let one = |key: &str, value: Option<Vec<String>>, default: Vec<String>| {
        value.map_or(Ok(default), |list| candidates(key, list))
    };
    Ok(GuardianColumns {
        guardian_id: one("guardian_id", file.guardian_id, d.guardian_id)?,
        student_dcid: one("student_dcid", file.student_dcid, d.student_dcid)?,
        email: one("email", file.email, d.email)?,
        first_name: one("first_name", file.first_name, d.first_name)?,
        last_name: one("last_name", file.last_name, d.last_name)?,
        account_type: one("account_type", file.account_type, d.account_type)?,
    })
}

fn candidates(key: &str, list: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let key = format!("powerschool.guardian_columns.{key}");
    if list.is_empty() {
        return Err(invalid(
            &key,
            "[]",
            "allowed is a list of at least one column, e.g. [\"guardian.email\", \"email\"]",
        ));
    }
    list.into_iter()
        .map(|c| {
            let name = c.trim().to_ascii_lowercase();
            let parts: Vec<&str> = name.split('.').collect();
            let ok = parts.len() <= 2
                && parts.iter().all(|p| {
                    !p.is_empty() && p.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                });
            if ok {
                Ok(name)
            } else {
                Err(invalid(
                    &key,
                    &c,
                    "allowed is a column name (`email`) or a table and a column (`guardian.email`): letters, digits and _",
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_checked_and_lower_cased() {
        let file = FileGuardianColumns {
            email: Some(vec![
                " PCAS_EmailContact.EmailAddress ".into(),
                "email".into(),
            ]),
            ..Default::default()
        };
        let cols = validate(file).unwrap();
        assert_eq!(cols.email, ["pcas_emailcontact.emailaddress", "email"]);
        assert_eq!(cols.guardian_id, GuardianColumns::default().guardian_id);
        for bad in [
            vec![],
            vec!["a.b.c".to_string()],
            vec!["e mail".to_string()],
        ] {
            let file = FileGuardianColumns {
                first_name: Some(bad),
                ..Default::default()
            };
            let e = validate(file).unwrap_err().to_string();
            assert!(e.contains("powerschool.guardian_columns.first_name"), "{e}");
        }
    }

    #[test]
    fn the_environment_sets_a_list_separated_by_commas() {
        let env = [
            ("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "s"),
            (
                "STUDENT_SYNC_POWERSCHOOL_GUARDIAN_COLUMNS_EMAIL",
                "pcas_contact.Email, email",
            ),
            ("STUDENT_SYNC_POWERSCHOOL_THROTTLE_MAX_WAIT_SECS", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = crate::config::Settings::load(&crate::config::Sources { file: None, env }).unwrap();
        assert_eq!(
            s.powerschool.guardian_columns.email,
            ["pcas_contact.email", "email"]
        );
        assert_eq!(
            s.powerschool.guardian_columns.last_name,
            ["guardian.lastname", "lastname"]
        );
        assert_eq!(s.powerschool.throttle_max_wait.as_secs(), 5);
    }
}
