//! The environment's part of the settings: which variables override which
//! key of the file, and how their text becomes the key's type. The values are
//! layered over the file by figment; a variable whose text is not of its
//! key's type is refused here, naming the key, the text and the variable.
//!
//! A key's variable is `STUDENT_SYNC_` and the key in capitals, `_` for `.`
//! (`powerschool.page_size` ← `STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE`), except
//! `DATABASE_URL` (read first, so `STUDENT_SYNC_DATABASE_URL` wins) and
//! `STUDENT_SYNC_LOG_FORMAT`. Secrets are read by `secrets`, never layered.

use super::{invalid, ConfigError, LOG_FORMAT_ENV};
use figment::providers::Serialized;
use figment::value::Value;
use figment::Figment;
use std::collections::HashMap;

/// What a key's value is; the environment holds only text.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    WholeNumber,
    TrueOrFalse,
    Number,
    /// Comma-separated, e.g. `guardian.email,email`.
    List,
}

/// The keys the environment may set under their `STUDENT_SYNC_…` name.
const KEYS: &[(&str, Kind)] = &[
    ("district", Kind::Text),
    ("powerschool.url", Kind::Text),
    ("powerschool.client_id", Kind::Text),
    ("powerschool.page_size", Kind::WholeNumber),
    ("powerschool.school_concurrency", Kind::WholeNumber),
    ("powerschool.max_requests_in_flight", Kind::WholeNumber),
    ("powerschool.max_attempts", Kind::WholeNumber),
    ("powerschool.fields.enrolment_type_1", Kind::Text),
    ("powerschool.fields.enrolment_type_2", Kind::Text),
    ("powerschool.fields.enrolment_type_3", Kind::Text),
    ("powerschool.fields.independent_enrolment_type", Kind::Text),
    ("powerschool.fields.decision_making", Kind::Text),
    ("powerschool.fields.student_org_email", Kind::Text),
    ("powerschool.fields.student_personal_email", Kind::Text),
    ("powerschool.throttle_max_wait_secs", Kind::WholeNumber),
    ("powerschool.max_count", Kind::WholeNumber),
    ("powerschool.count_growth_factor", Kind::Number),
    ("powerschool.count_tolerance_percent", Kind::Number),
    ("powerschool.count_tolerance_records", Kind::WholeNumber),
    ("powerschool.max_page_bytes", Kind::WholeNumber),
    ("database.url", Kind::Text),
    ("database.statement_timeout_secs", Kind::WholeNumber),
    ("database.lock_timeout_secs", Kind::WholeNumber),
    ("database.keepalive_secs", Kind::WholeNumber),
    ("database.transient_retries", Kind::WholeNumber),
    ("database.retry_backoff_secs", Kind::WholeNumber),
    ("database.allow_insecure_tls", Kind::TrueOrFalse),
    ("sync.include_scheduling_year", Kind::TrueOrFalse),
    ("sync.on_powerschool_removal", Kind::Text),
    ("sync.access_tiers_file", Kind::Text),
    ("sync.run_deadline_mins", Kind::WholeNumber),
    ("schedule.cron", Kind::Text),
    ("schedule.timezone", Kind::Text),
    ("daemon.listen", Kind::Text),
    ("daemon.stall_timeout_secs", Kind::WholeNumber),
    ("daemon.allow_remote_listen", Kind::TrueOrFalse),
    ("daemon.health_refresh_secs", Kind::WholeNumber),
    ("safety.enabled", Kind::TrueOrFalse),
    ("safety.percent_applies_from", Kind::WholeNumber),
    ("retention.keep_days", Kind::WholeNumber),
    ("retention.keep_runs", Kind::WholeNumber),
    ("retention.audit_keep_days", Kind::WholeNumber),
];

/// Each `[safety.<threshold>]` table: its `count` and `percent` may be set.
const THRESHOLDS: &[&str] = &[
    "students_leaving",
    "connections_losing_access",
    "users_created",
    "guardian_query_shrink",
    "contacts_removed",
    "guardian_accounts_removed",
    "connections_orphaned",
    "school_students_shrink",
    "school_contacts_shrink",
];

/// Text keys whose variable does not follow the naming rule.
const OTHER_NAMES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    (LOG_FORMAT_ENV, "logging.format"),
];

/// One variable that overrides one key.
struct Variable {
    name: String,
    key: String,
    kind: Kind,
}

/// Every variable, in the order they are layered (a later one wins).
fn variables() -> impl Iterator<Item = Variable> {
    let other = OTHER_NAMES.iter().map(|(name, key)| Variable {
        name: name.to_string(),
        key: key.to_string(),
        kind: Kind::Text,
    });
    let thresholds = THRESHOLDS.iter().flat_map(|name| {
        [
            (format!("safety.{name}.count"), Kind::WholeNumber),
            (format!("safety.{name}.percent"), Kind::Number),
        ]
    });
    let guardian_columns = super::guardian_columns::KEYS
        .iter()
        .map(|name| (format!("powerschool.guardian_columns.{name}"), Kind::List));
    let named = KEYS
        .iter()
        .map(|(key, kind)| (key.to_string(), *kind))
        .chain(thresholds)
        .chain(guardian_columns)
        .map(|(key, kind)| Variable {
            name: format!(
                "STUDENT_SYNC_{}",
                key.replace('.', "_").to_ascii_uppercase()
            ),
            key,
            kind,
        });
    other.chain(named)
}

/// Layers the variables set in `env` over `figment`, each as its key's type.
pub(super) fn layer(
    mut figment: Figment,
    env: &HashMap<String, String>,
) -> Result<Figment, ConfigError> {
    for variable in variables() {
        if let Some(text) = env.get(&variable.name) {
            let value = variable.value(text)?;
            figment = figment.merge(Serialized::default(&variable.key, value));
        }
    }
    Ok(figment)
}

/// Whether a variable in `env` sets `key`.
pub(super) fn sets(env: &HashMap<String, String>, key: &str) -> bool {
    variables().any(|v| v.key == key && env.contains_key(&v.name))
}

impl Variable {
    /// The variable's text as its key's type, or the error naming the key,
    /// the text and what the variable must hold.
    fn value(&self, text: &str) -> Result<Value, ConfigError> {
        let (env, key) = (self.name.as_str(), self.key.as_str());
        match self.kind {
            Kind::Text => Ok(Value::from(text.to_string())),
            Kind::WholeNumber => text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| invalid(key, text, &format!("{env} must be a whole number"))),
            Kind::Number => text.trim().parse::<f64>().map(Value::from).map_err(|_| {
                invalid(
                    key,
                    text,
                    &format!("{env} must be a number such as 10 or 2.5"),
                )
            }),
            Kind::List => Ok(Value::from(
                text.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<String>>(),
            )),
            Kind::TrueOrFalse => match text.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Value::from(true)),
                "0" | "false" | "no" | "off" => Ok(Value::from(false)),
                _ => Err(invalid(key, text, &format!("{env} must be true or false"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_variable_is_read() {
        let names: Vec<String> = variables().map(|v| v.name).collect();
        let example = include_str!("../../config/student-sync.example.toml");
        let readme = include_str!("../../README.md");
        // Secrets are read by `secrets`, the file's name by the CLI, the
        // extra test worlds by `tests/worlds.rs`, the demo's port by `demo`,
        // the built package by `tests/packaging.rs`.
        let elsewhere = [
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            "STUDENT_SYNC_DATABASE_PASSWORD",
            "STUDENT_SYNC_CONFIG",
            "STUDENT_SYNC_EXTRA_WORLDS",
            // The demo's hidden flag (`demo --pg-port`).
            "STUDENT_SYNC_DEMO_PG_PORT",
            "STUDENT_SYNC_TEST_PACKAGE",
        ];
        for text in [example, readme] {
            for word in text.split(|c: char| !(c.is_ascii_uppercase() || c == '_')) {
                if !word.starts_with("STUDENT_SYNC_") || word.ends_with('_') {
                    continue;
                }
                if word.starts_with("STUDENT_SYNC_BENCH") || elsewhere.contains(&word) {
                    continue;
                }
                assert!(names.iter().any(|n| n == word), "{word} is not read");
            }
        }
        assert!(names.iter().any(|n| n == "DATABASE_URL"));
    }

    #[test]
    fn only_the_documented_names_are_read() {
        let names: Vec<String> = variables().map(|v| v.name).collect();
        assert!(names.iter().any(|n| n == "STUDENT_SYNC_LOG_FORMAT"));
        assert!(!names.iter().any(|n| n == "STUDENT_SYNC_LOGGING_FORMAT"));
        assert!(names
            .iter()
            .any(|n| n == "STUDENT_SYNC_SAFETY_CONNECTIONS_LOSING_ACCESS_PERCENT"));
        assert_eq!(
            names.len(),
            2 + KEYS.len() + 2 * THRESHOLDS.len() + super::super::guardian_columns::KEYS.len()
        );
        assert!(names
            .iter()
            .any(|n| n == "STUDENT_SYNC_POWERSCHOOL_GUARDIAN_COLUMNS_EMAIL"));
    }
}
