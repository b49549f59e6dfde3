//! The settings file as written (`config/student-sync.example.toml`): every
//! key optional, unknown keys refused. The environment is layered onto this
//! same shape, so `validate` sees one set of raw values whatever their source.
//! Secrets have no field here: they are never read from the file.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSettings {
    pub district: Option<String>,
    #[serde(default)]
    pub powerschool: FilePowerSchool,
    #[serde(default)]
    pub database: FileDatabase,
    #[serde(default)]
    pub sync: FileSync,
    #[serde(default)]
    pub schedule: FileSchedule,
    #[serde(default)]
    pub daemon: FileDaemon,
    #[serde(default)]
    pub logging: FileLogging,
    #[serde(default)]
    pub safety: FileSafety,
    #[serde(default)]
    pub retention: FileRetention,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePowerSchool {
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<String>,
    pub page_size: Option<i64>,
    pub school_concurrency: Option<i64>,
    pub max_requests_in_flight: Option<i64>,
    pub max_attempts: Option<i64>,
    pub backoff_initial_ms: Option<i64>,
    pub backoff_max_ms: Option<i64>,
    pub request_timeout_secs: Option<i64>,
    pub token_refresh_margin_secs: Option<i64>,
    /// `[powerschool.fields]`: the district's column names (see `fields`).
    #[serde(default)]
    pub fields: super::fields::FileFields,
    pub throttle_max_wait_secs: Option<i64>,
    pub max_count: Option<i64>,
    pub count_tolerance_percent: Option<f64>,
    pub count_tolerance_records: Option<i64>,
    pub max_page_bytes: Option<i64>,
    pub count_growth_factor: Option<f64>,
    #[serde(default)]
    pub guardian_columns: super::guardian_columns::FileGuardianColumns,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDatabase {
    pub url: Option<String>,
    pub password_file: Option<String>,
    pub max_connections: Option<i64>,
    pub statement_timeout_secs: Option<i64>,
    pub lock_timeout_secs: Option<i64>,
    pub keepalive_secs: Option<i64>,
    pub transient_retries: Option<i64>,
    pub retry_backoff_secs: Option<i64>,
    pub allow_insecure_tls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSync {
    pub include_scheduling_year: Option<bool>,
    pub student_login_field: Option<String>,
    pub on_powerschool_removal: Option<String>,
    pub access_tiers_file: Option<String>,
    pub run_deadline_mins: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSchedule {
    pub cron: Option<String>,
    pub timezone: Option<String>,
    #[serde(default)]
    pub blackout: Vec<FileBlackout>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBlackout {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDaemon {
    pub grace_period_secs: Option<i64>,
    pub listen: Option<String>,
    pub stall_timeout_secs: Option<i64>,
    pub allow_remote_listen: Option<bool>,
    pub health_refresh_secs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLogging {
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSafety {
    pub enabled: Option<bool>,
    pub percent_applies_from: Option<i64>,
    #[serde(default)]
    pub students_leaving: FileThreshold,
    #[serde(default)]
    pub connections_losing_access: FileThreshold,
    #[serde(default)]
    pub users_created: FileThreshold,
    #[serde(default)]
    pub guardian_query_shrink: FileThreshold,
    #[serde(default)]
    pub contacts_removed: FileThreshold,
    #[serde(default)]
    pub guardian_accounts_removed: FileThreshold,
    #[serde(default)]
    pub connections_orphaned: FileThreshold,
    #[serde(default)]
    pub school_students_shrink: FileThreshold,
    #[serde(default)]
    pub school_contacts_shrink: FileThreshold,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileThreshold {
    pub count: Option<i64>,
    pub percent: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRetention {
    pub keep_days: Option<i64>,
    pub keep_runs: Option<i64>,
    pub audit_keep_days: Option<i64>,
}
