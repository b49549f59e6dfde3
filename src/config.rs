//! Typed settings for every part of student-sync, loaded once at start from a
//! TOML file and then the environment, and validated before anything runs:
//! a bad value stops the program with the key, the value and what is allowed.
//! Secrets (the PowerSchool client secret, the database password) come only
//! from the environment or from a file named in the config, so systemd
//! credentials work and nothing secret ever sits in a TOML file.

use crate::rules::eligibility::LoginField;
use crate::rules::RemovalPolicy;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/student_sync";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML or has an unknown key: {message}")]
    Parse { path: String, message: String },
    #[error("setting `{key}` has the bad value {value:?}: {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("setting `{key}` is required: {hint}")]
    Missing { key: String, hint: String },
    #[error("cannot read the secret for `{key}` from {path}: {source}")]
    SecretFile {
        key: String,
        path: String,
        source: std::io::Error,
    },
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Names the district in the advisory lock, logs and metrics.
    pub district: String,
    pub powerschool: PowerSchoolSettings,
    pub database: DatabaseSettings,
    pub sync: SyncSettings,
    pub schedule: ScheduleSettings,
    pub daemon: DaemonSettings,
    pub logging: LoggingSettings,
    pub safety: SafetySettings,
}

#[derive(Debug, Clone)]
pub struct PowerSchoolSettings {
    pub url: url::Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub page_size: u32,
    pub school_concurrency: usize,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub request_timeout: Duration,
    /// Renew the token this long before PowerSchool says it expires.
    pub token_refresh_margin: Duration,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The connection URL without its password.
    pub url: url::Url,
    pub password: Option<Secret>,
    pub max_connections: u32,
}

impl DatabaseSettings {
    /// The URL to connect with, password included. Never log it.
    pub fn connect_url(&self) -> Secret {
        let mut url = self.url.clone();
        if let Some(password) = &self.password {
            let _ = url.set_password(Some(password.expose()));
        }
        Secret::new(url.to_string())
    }

    /// The URL as it may be shown to a person.
    pub fn display_url(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        url.to_string()
    }
}

/// One of an enum's spellings (its strum names), or the error naming the key,
/// the bad value and every allowed spelling.
pub fn choice<T: std::str::FromStr + strum::VariantNames>(
    key: &str,
    value: &str,
) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        allowed: format!("allowed are {}", T::VARIANTS.join(", ")),
    })
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub include_scheduling_year: bool,
    pub student_login_field: LoginField,
    pub on_powerschool_removal: RemovalPolicy,
    /// The tier matrix file; None means the spec's default matrix.
    pub access_tiers_file: Option<PathBuf>,
}

/// One safety limit: the run is held when the number it watches is above
/// `count`, or its share of the base above `percent` (judged only once the
/// number reaches `SafetySettings::percent_applies_from`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub count: u64,
    pub percent: f64,
}

/// `[safety]`: limits past which a run is held for approval instead of applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetySettings {
    pub enabled: bool,
    /// Percentages are judged only when at least this many rows would change,
    /// so one withdrawal in a ten-student test district does not hold a run.
    pub percent_applies_from: u64,
    /// Students in the sync set that the run would take out of it (base: the sync set now).
    pub students_leaving: Threshold,
    /// Connections whose tier goes down or that are removed (base: connections now).
    pub connections_losing_access: Threshold,
    /// Users the run would create (base: users now). Not judged on the first run.
    pub users_created: Threshold,
    /// Rows of the guardian query fewer than at the last successful full run (base: that count).
    pub guardian_query_shrink: Threshold,
}

impl Default for SafetySettings {
    fn default() -> Self {
        SafetySettings {
            enabled: true,
            percent_applies_from: 10,
            students_leaving: Threshold {
                count: 500,
                percent: 10.0,
            },
            connections_losing_access: Threshold {
                count: 500,
                percent: 10.0,
            },
            // New families arrive in waves (registration, a new school
            // year): only a run that more than doubles the users, or creates
            // thousands at once (a renamed email field), is suspect.
            users_created: Threshold {
                count: 2000,
                percent: 100.0,
            },
            guardian_query_shrink: Threshold {
                count: 1000,
                percent: 10.0,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutRange {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// Six-field cron (sec min hour day month weekday) in `timezone`.
    pub cron: String,
    pub timezone: chrono_tz::Tz,
    pub blackout: Vec<BlackoutRange>,
}

#[derive(Debug, Clone)]
pub struct DaemonSettings {
    pub grace_period: Duration,
    pub listen: SocketAddr,
}

/// A secret written into the TOML is refused by name before the parser could
/// quote its line back in an error message.
fn refuse_secrets_in_file(text: &str) -> Result<(), ConfigError> {
    let Ok(value) = toml::from_str::<toml::Value>(text) else {
        return Ok(());
    };
    let secrets = [
        (
            "powerschool",
            "client_secret",
            "set STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET or powerschool.client_secret_file",
        ),
        (
            "database",
            "password",
            "set STUDENT_SYNC_DATABASE_PASSWORD or database.password_file",
        ),
    ];
    for (table, key, instead) in secrets {
        if value.get(table).and_then(|t| t.get(key)).is_some() {
            return Err(ConfigError::Invalid {
                key: format!("{table}.{key}"),
                value: "(hidden)".into(),
                allowed: format!(
                    "secrets are never read from the config file; remove it and {instead}"
                ),
            });
        }
    }
    Ok(())
}

/// `logging.format` from the settings file, read before anything else so
/// logging can be set up first; a bad file or value is reported later by
/// `Settings::load`, naming the key.
pub fn log_format_in_file(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    value
        .get("logging")?
        .get("format")?
        .as_str()
        .map(str::to_string)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human text on a terminal, JSON under systemd (`JOURNAL_STREAM`).
    Auto,
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct LoggingSettings {
    pub format: LogFormat,
}

// ---- the file as written: every key optional, unknown keys refused ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    district: Option<String>,
    #[serde(default)]
    powerschool: FilePowerSchool,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    sync: FileSync,
    #[serde(default)]
    schedule: FileSchedule,
    #[serde(default)]
    daemon: FileDaemon,
    #[serde(default)]
    logging: FileLogging,
    #[serde(default)]
    safety: FileSafety,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSafety {
    enabled: Option<bool>,
    percent_applies_from: Option<i64>,
    #[serde(default)]
    students_leaving: FileThreshold,
    #[serde(default)]
    connections_losing_access: FileThreshold,
    #[serde(default)]
    users_created: FileThreshold,
    #[serde(default)]
    guardian_query_shrink: FileThreshold,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileThreshold {
    count: Option<i64>,
    percent: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePowerSchool {
    url: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<String>,
    page_size: Option<i64>,
    school_concurrency: Option<i64>,
    max_attempts: Option<i64>,
    backoff_initial_ms: Option<i64>,
    backoff_max_ms: Option<i64>,
    request_timeout_secs: Option<i64>,
    token_refresh_margin_secs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
    password_file: Option<String>,
    max_connections: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSync {
    include_scheduling_year: Option<bool>,
    student_login_field: Option<String>,
    on_powerschool_removal: Option<String>,
    access_tiers_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchedule {
    cron: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    blackout: Vec<FileBlackout>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBlackout {
    from: String,
    to: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDaemon {
    grace_period_secs: Option<i64>,
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLogging {
    format: Option<String>,
}

/// Where settings come from: a file (optional) and an environment (the
/// process's, or a map in tests).
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    pub env: HashMap<String, String>,
}

impl<'a> Sources<'a> {
    pub fn from_process(file: Option<&'a Path>) -> Self {
        Sources {
            file,
            env: std::env::vars().collect(),
        }
    }
}

fn invalid(key: &str, value: impl fmt::Display, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

fn in_range(key: &str, value: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
    if value < min || value > max {
        return Err(invalid(
            key,
            value,
            &format!("allowed is a whole number from {min} to {max}"),
        ));
    }
    Ok(value)
}

/// Environment variables that override a key, in the district's deployment words.
const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("STUDENT_SYNC_DISTRICT", "district"),
    ("STUDENT_SYNC_POWERSCHOOL_URL", "powerschool.url"),
    (
        "STUDENT_SYNC_POWERSCHOOL_CLIENT_ID",
        "powerschool.client_id",
    ),
    (
        "STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE",
        "powerschool.page_size",
    ),
    (
        "STUDENT_SYNC_POWERSCHOOL_SCHOOL_CONCURRENCY",
        "powerschool.school_concurrency",
    ),
    (
        "STUDENT_SYNC_POWERSCHOOL_MAX_ATTEMPTS",
        "powerschool.max_attempts",
    ),
    ("DATABASE_URL", "database.url"),
    ("STUDENT_SYNC_DATABASE_URL", "database.url"),
    (
        "STUDENT_SYNC_SYNC_INCLUDE_SCHEDULING_YEAR",
        "sync.include_scheduling_year",
    ),
    (
        "STUDENT_SYNC_SYNC_ON_POWERSCHOOL_REMOVAL",
        "sync.on_powerschool_removal",
    ),
    (
        "STUDENT_SYNC_SYNC_ACCESS_TIERS_FILE",
        "sync.access_tiers_file",
    ),
    ("STUDENT_SYNC_SCHEDULE_CRON", "schedule.cron"),
    ("STUDENT_SYNC_SCHEDULE_TIMEZONE", "schedule.timezone"),
    ("STUDENT_SYNC_DAEMON_LISTEN", "daemon.listen"),
    ("STUDENT_SYNC_LOG_FORMAT", "logging.format"),
    ("STUDENT_SYNC_SAFETY_ENABLED", "safety.enabled"),
    (
        "STUDENT_SYNC_SAFETY_PERCENT_APPLIES_FROM",
        "safety.percent_applies_from",
    ),
    (
        "STUDENT_SYNC_SAFETY_STUDENTS_LEAVING_COUNT",
        "safety.students_leaving.count",
    ),
    (
        "STUDENT_SYNC_SAFETY_STUDENTS_LEAVING_PERCENT",
        "safety.students_leaving.percent",
    ),
    (
        "STUDENT_SYNC_SAFETY_CONNECTIONS_LOSING_ACCESS_COUNT",
        "safety.connections_losing_access.count",
    ),
    (
        "STUDENT_SYNC_SAFETY_CONNECTIONS_LOSING_ACCESS_PERCENT",
        "safety.connections_losing_access.percent",
    ),
    (
        "STUDENT_SYNC_SAFETY_USERS_CREATED_COUNT",
        "safety.users_created.count",
    ),
    (
        "STUDENT_SYNC_SAFETY_USERS_CREATED_PERCENT",
        "safety.users_created.percent",
    ),
    (
        "STUDENT_SYNC_SAFETY_GUARDIAN_QUERY_SHRINK_COUNT",
        "safety.guardian_query_shrink.count",
    ),
    (
        "STUDENT_SYNC_SAFETY_GUARDIAN_QUERY_SHRINK_PERCENT",
        "safety.guardian_query_shrink.percent",
    ),
];

fn parse_env_float(env: &str, key: &str, value: &str) -> Result<f64, ConfigError> {
    value.trim().parse().map_err(|_| {
        invalid(
            key,
            value,
            &format!("{env} must be a number such as 10 or 2.5"),
        )
    })
}

impl FileSafety {
    fn threshold_mut(&mut self, name: &str) -> &mut FileThreshold {
        match name {
            "students_leaving" => &mut self.students_leaving,
            "connections_losing_access" => &mut self.connections_losing_access,
            "users_created" => &mut self.users_created,
            _ => &mut self.guardian_query_shrink,
        }
    }
}

fn threshold(
    name: &str,
    file: &FileThreshold,
    default: Threshold,
    max_percent: f64,
) -> Result<Threshold, ConfigError> {
    let count = in_range(
        &format!("safety.{name}.count"),
        file.count.unwrap_or(default.count as i64),
        0,
        100_000_000,
    )? as u64;
    let percent = file.percent.unwrap_or(default.percent);
    if !percent.is_finite() || !(0.0..=max_percent).contains(&percent) {
        return Err(invalid(
            &format!("safety.{name}.percent"),
            percent,
            &format!("allowed is a number from 0 to {max_percent}"),
        ));
    }
    Ok(Threshold { count, percent })
}

fn safety_settings(file: &FileSafety) -> Result<SafetySettings, ConfigError> {
    let d = SafetySettings::default();
    Ok(SafetySettings {
        enabled: file.enabled.unwrap_or(d.enabled),
        percent_applies_from: in_range(
            "safety.percent_applies_from",
            file.percent_applies_from
                .unwrap_or(d.percent_applies_from as i64),
            0,
            100_000_000,
        )? as u64,
        students_leaving: threshold(
            "students_leaving",
            &file.students_leaving,
            d.students_leaving,
            100.0,
        )?,
        connections_losing_access: threshold(
            "connections_losing_access",
            &file.connections_losing_access,
            d.connections_losing_access,
            100.0,
        )?,
        // Created users are counted against the users there are, so more than 100% is possible.
        users_created: threshold(
            "users_created",
            &file.users_created,
            d.users_created,
            100_000.0,
        )?,
        guardian_query_shrink: threshold(
            "guardian_query_shrink",
            &file.guardian_query_shrink,
            d.guardian_query_shrink,
            100.0,
        )?,
    })
}

fn parse_env_int(env: &str, key: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, &format!("{env} must be a whole number")))
}

fn parse_env_bool(env: &str, key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, value, &format!("{env} must be true or false"))),
    }
}

impl Settings {
    /// Loads the file (if any), applies the environment, validates everything.
    pub fn load(sources: &Sources<'_>) -> Result<Settings, ConfigError> {
        Self::load_inner(sources, true)
    }

    /// As `load`, for commands that only read the database (`access export`,
    /// `explain`, `status`, `seed`): the PowerSchool section is validated
    /// when present but not required.
    pub fn load_offline(sources: &Sources<'_>) -> Result<Settings, ConfigError> {
        Self::load_inner(sources, false)
    }

    fn load_inner(sources: &Sources<'_>, need_powerschool: bool) -> Result<Settings, ConfigError> {
        let mut file = match sources.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                refuse_secrets_in_file(&text)?;
                toml::from_str::<FileSettings>(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => FileSettings::default(),
        };
        let config_dir = sources
            .file
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        for (env, key) in ENV_OVERRIDES {
            let Some(value) = sources.env.get(*env) else {
                continue;
            };
            let v = value.clone();
            match *key {
                "district" => file.district = Some(v),
                "powerschool.url" => file.powerschool.url = Some(v),
                "powerschool.client_id" => file.powerschool.client_id = Some(v),
                "powerschool.page_size" => {
                    file.powerschool.page_size = Some(parse_env_int(env, key, &v)?)
                }
                "powerschool.school_concurrency" => {
                    file.powerschool.school_concurrency = Some(parse_env_int(env, key, &v)?)
                }
                "powerschool.max_attempts" => {
                    file.powerschool.max_attempts = Some(parse_env_int(env, key, &v)?)
                }
                "database.url" => file.database.url = Some(v),
                "sync.include_scheduling_year" => {
                    file.sync.include_scheduling_year = Some(parse_env_bool(env, key, &v)?)
                }
                "sync.on_powerschool_removal" => file.sync.on_powerschool_removal = Some(v),
                "sync.access_tiers_file" => file.sync.access_tiers_file = Some(v),
                "schedule.cron" => file.schedule.cron = Some(v),
                "schedule.timezone" => file.schedule.timezone = Some(v),
                "daemon.listen" => file.daemon.listen = Some(v),
                "logging.format" => file.logging.format = Some(v),
                "safety.enabled" => file.safety.enabled = Some(parse_env_bool(env, key, &v)?),
                "safety.percent_applies_from" => {
                    file.safety.percent_applies_from = Some(parse_env_int(env, key, &v)?)
                }
                k if k.starts_with("safety.") => {
                    // safety.<threshold>.count | safety.<threshold>.percent
                    let mut parts = k.split('.').skip(1);
                    let name = parts.next().unwrap_or_default();
                    let field = parts.next().unwrap_or_default();
                    let t = file.safety.threshold_mut(name);
                    if field == "count" {
                        t.count = Some(parse_env_int(env, key, &v)?);
                    } else {
                        t.percent = Some(parse_env_float(env, key, &v)?);
                    }
                }
                _ => unreachable!("every override names a key handled here"),
            }
        }

        let district = file.district.unwrap_or_else(|| "district".to_string());
        if district.trim().is_empty() {
            return Err(invalid(
                "district",
                &district,
                "allowed is a non-empty name",
            ));
        }

        // PowerSchool
        let mut ps = file.powerschool;
        if !need_powerschool {
            ps.url
                .get_or_insert_with(|| "https://powerschool.invalid".to_string());
            ps.client_id
                .get_or_insert_with(|| "not-configured".to_string());
        }
        let url_text = ps.url.ok_or_else(|| ConfigError::Missing {
            key: "powerschool.url".into(),
            hint: "set it in the config file or STUDENT_SYNC_POWERSCHOOL_URL, e.g. https://powerschool.example.org".into(),
        })?;
        let url = parse_powerschool_url(&url_text)?;
        let client_id = ps.client_id.unwrap_or_default();
        if client_id.trim().is_empty() {
            return Err(ConfigError::Missing {
                key: "powerschool.client_id".into(),
                hint: "set it in the config file or STUDENT_SYNC_POWERSCHOOL_CLIENT_ID; the district gets it when it enables the student-sync plugin".into(),
            });
        }
        let client_secret = read_secret(
            "powerschool.client_secret",
            sources.env.get("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET"),
            ps.client_secret_file.as_deref(),
            &config_dir,
        )?
        .or_else(|| (!need_powerschool).then(Secret::default))
        .ok_or_else(|| ConfigError::Missing {
            key: "powerschool.client_secret".into(),
            hint: "set STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET or powerschool.client_secret_file (it is never read from the TOML itself)".into(),
        })?;
        let page_size = in_range(
            "powerschool.page_size",
            ps.page_size.unwrap_or(1000),
            1,
            100_000,
        )? as u32;
        let school_concurrency = in_range(
            "powerschool.school_concurrency",
            ps.school_concurrency.unwrap_or(4),
            1,
            64,
        )? as usize;
        let max_attempts = in_range(
            "powerschool.max_attempts",
            ps.max_attempts.unwrap_or(5),
            1,
            20,
        )? as u32;
        let backoff_initial_ms = in_range(
            "powerschool.backoff_initial_ms",
            ps.backoff_initial_ms.unwrap_or(500),
            0,
            600_000,
        )?;
        let backoff_max_ms = in_range(
            "powerschool.backoff_max_ms",
            ps.backoff_max_ms.unwrap_or(30_000),
            0,
            3_600_000,
        )?;
        if backoff_max_ms < backoff_initial_ms {
            return Err(invalid(
                "powerschool.backoff_max_ms",
                backoff_max_ms,
                &format!(
                    "allowed is at least powerschool.backoff_initial_ms ({backoff_initial_ms})"
                ),
            ));
        }
        let request_timeout_secs = in_range(
            "powerschool.request_timeout_secs",
            ps.request_timeout_secs.unwrap_or(60),
            1,
            3600,
        )?;
        let token_refresh_margin_secs = in_range(
            "powerschool.token_refresh_margin_secs",
            ps.token_refresh_margin_secs.unwrap_or(60),
            0,
            3600,
        )?;

        // Database
        let db = file.database;
        let db_url_text = db.url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        let mut db_url = url::Url::parse(&db_url_text).map_err(|e| {
            invalid(
                "database.url",
                redact_url_text(&db_url_text),
                &format!("allowed is a postgres:// URL ({e})"),
            )
        })?;
        if !matches!(db_url.scheme(), "postgres" | "postgresql") {
            return Err(invalid(
                "database.url",
                redact_url_text(&db_url_text),
                "allowed is a postgres:// or postgresql:// URL",
            ));
        }
        let url_from_env = sources.env.contains_key("DATABASE_URL")
            || sources.env.contains_key("STUDENT_SYNC_DATABASE_URL");
        let mut password = None;
        if let Some(p) = db_url.password() {
            if !url_from_env {
                return Err(invalid(
                    "database.url",
                    redact_url_text(&db_url_text),
                    "the config file must not hold the database password: use DATABASE_URL, STUDENT_SYNC_DATABASE_PASSWORD or database.password_file",
                ));
            }
            password = Some(Secret::new(p.to_string()));
            let _ = db_url.set_password(None);
        }
        if let Some(p) = read_secret(
            "database.password",
            sources.env.get("STUDENT_SYNC_DATABASE_PASSWORD"),
            db.password_file.as_deref(),
            &config_dir,
        )? {
            password = Some(p);
        }
        let max_connections = in_range(
            "database.max_connections",
            db.max_connections.unwrap_or(5),
            1,
            100,
        )? as u32;

        // Sync
        let s = file.sync;
        let on_powerschool_removal = match s.on_powerschool_removal {
            Some(v) => choice("sync.on_powerschool_removal", &v)?,
            None => RemovalPolicy::default(),
        };
        let student_login_field = match s.student_login_field {
            Some(v) => choice("sync.student_login_field", &v)?,
            None => LoginField::default(),
        };
        let access_tiers_file = match s.access_tiers_file {
            Some(p) if p.trim().is_empty() => {
                return Err(invalid(
                    "sync.access_tiers_file",
                    p,
                    "allowed is a path to a TOML file",
                ))
            }
            Some(p) => Some(resolve(&config_dir, &p)),
            None => None,
        };

        // Schedule
        let sch = file.schedule;
        let cron = sch.cron.unwrap_or_else(|| "0 0 0 * * *".to_string());
        if cron.split_whitespace().count() != 6 {
            return Err(invalid(
                "schedule.cron",
                &cron,
                "allowed is a six-field cron expression: sec min hour day month weekday, e.g. \"0 0 0 * * *\"",
            ));
        }
        let tz_text = sch
            .timezone
            .unwrap_or_else(|| "America/Edmonton".to_string());
        let timezone: chrono_tz::Tz = tz_text.parse().map_err(|_| {
            invalid(
                "schedule.timezone",
                &tz_text,
                "allowed is an IANA time zone name such as America/Edmonton",
            )
        })?;
        let mut blackout = Vec::new();
        for (i, b) in sch.blackout.iter().enumerate() {
            let key_from = format!("schedule.blackout[{i}].from");
            let key_to = format!("schedule.blackout[{i}].to");
            let from = parse_date(&key_from, &b.from)?;
            let to = parse_date(&key_to, &b.to)?;
            if to < from {
                return Err(invalid(
                    &key_to,
                    &b.to,
                    &format!("allowed is a date on or after {from}"),
                ));
            }
            blackout.push(BlackoutRange { from, to });
        }

        // Daemon and logging
        let d = file.daemon;
        let grace = in_range(
            "daemon.grace_period_secs",
            d.grace_period_secs.unwrap_or(30),
            1,
            3600,
        )?;
        let listen_text = d.listen.unwrap_or_else(|| "127.0.0.1:9187".to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "daemon.listen",
                &listen_text,
                "allowed is an address and port such as 127.0.0.1:9187",
            )
        })?;
        let format = match file.logging.format.as_deref().unwrap_or("auto") {
            "auto" => LogFormat::Auto,
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "logging.format",
                    other,
                    "allowed are auto, human, json",
                ))
            }
        };

        let safety = safety_settings(&file.safety)?;

        Ok(Settings {
            district,
            powerschool: PowerSchoolSettings {
                url,
                client_id,
                client_secret,
                page_size,
                school_concurrency,
                max_attempts,
                backoff_initial: Duration::from_millis(backoff_initial_ms as u64),
                backoff_max: Duration::from_millis(backoff_max_ms as u64),
                request_timeout: Duration::from_secs(request_timeout_secs as u64),
                token_refresh_margin: Duration::from_secs(token_refresh_margin_secs as u64),
            },
            database: DatabaseSettings {
                url: db_url,
                password,
                max_connections,
            },
            sync: SyncSettings {
                include_scheduling_year: s.include_scheduling_year.unwrap_or(false),
                student_login_field,
                on_powerschool_removal,
                access_tiers_file,
            },
            schedule: ScheduleSettings {
                cron,
                timezone,
                blackout,
            },
            daemon: DaemonSettings {
                grace_period: Duration::from_secs(grace as u64),
                listen,
            },
            logging: LoggingSettings { format },
            safety,
        })
    }
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

fn parse_date(key: &str, text: &str) -> Result<chrono::NaiveDate, ConfigError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(key, text, "allowed is a date written YYYY-MM-DD"))
}

fn redact_url_text(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparseable URL, not shown in case it holds a password)".to_string(),
    }
}

/// Accepts https anywhere, and plain http only to a loopback host (the fake
/// server, a local tunnel): credentials must never cross a network in clear.
pub fn parse_powerschool_url(text: &str) -> Result<url::Url, ConfigError> {
    let key = "powerschool.url";
    let url = url::Url::parse(text.trim())
        .map_err(|e| invalid(key, text, &format!("allowed is an https:// URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback {
                return Err(invalid(
                    key,
                    text,
                    "plain http:// is allowed only for a loopback host (127.0.0.1, ::1, localhost); use https://",
                ));
            }
        }
        _ => return Err(invalid(key, text, "allowed is an https:// URL")),
    }
    if url.host().is_none() {
        return Err(invalid(key, text, "allowed is a URL with a host name"));
    }
    Ok(url)
}

fn read_secret(
    key: &str,
    from_env: Option<&String>,
    file: Option<&str>,
    config_dir: &Path,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = from_env {
        if !v.is_empty() {
            return Ok(Some(Secret::new(v.clone())));
        }
    }
    let Some(file) = file.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    // systemd's LoadCredential puts secrets under $CREDENTIALS_DIRECTORY;
    // a relative name is looked up there first.
    let mut path = resolve(config_dir, file);
    if !PathBuf::from(file).is_absolute() {
        if let Ok(dir) = std::env::var("CREDENTIALS_DIRECTORY") {
            let candidate = PathBuf::from(dir).join(file);
            if candidate.exists() {
                path = candidate;
            }
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
        key: key.to_string(),
        path: path.display().to_string(),
        source,
    })?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(invalid(key, path.display(), "the secret file is empty"));
    }
    Ok(Some(Secret::new(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "s3cret"),
            ("DATABASE_URL", "postgres://postgres:pw@127.0.0.1:5432/x"),
        ]
    }

    fn load_toml(toml_text: &str, extra_env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("student-sync.toml");
        std::fs::write(&path, toml_text).unwrap();
        let mut e = env(&minimal());
        e.extend(env(extra_env));
        Settings::load(&Sources {
            file: Some(&path),
            env: e,
        })
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { key, .. } | ConfigError::Missing { key, .. } => key,
            other => panic!("expected an error naming a key, got {other}"),
        }
    }

    #[test]
    fn environment_alone_is_enough() {
        let s = Settings::load(&Sources {
            file: None,
            env: env(&minimal()),
        })
        .unwrap();
        assert_eq!(s.powerschool.client_secret.expose(), "s3cret");
        assert_eq!(s.powerschool.page_size, 1000);
        assert_eq!(s.powerschool.school_concurrency, 4);
        assert_eq!(s.database.password.as_ref().unwrap().expose(), "pw");
        assert!(!s.database.url.as_str().contains("pw"));
        assert!(s.database.connect_url().expose().contains(":pw@"));
        assert_eq!(s.schedule.timezone, chrono_tz::America::Edmonton);
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "secrets must not appear in Debug output"
        );
    }

    #[test]
    fn every_validation_error_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("[powerschool]\npage_size = 0", "powerschool.page_size"),
            (
                "[powerschool]\nschool_concurrency = 0",
                "powerschool.school_concurrency",
            ),
            (
                "[powerschool]\nmax_attempts = 0",
                "powerschool.max_attempts",
            ),
            (
                "[powerschool]\nbackoff_initial_ms = -1",
                "powerschool.backoff_initial_ms",
            ),
            (
                "[powerschool]\nbackoff_initial_ms = 100\nbackoff_max_ms = 10",
                "powerschool.backoff_max_ms",
            ),
            (
                "[powerschool]\nrequest_timeout_secs = 0",
                "powerschool.request_timeout_secs",
            ),
            (
                "[powerschool]\ntoken_refresh_margin_secs = -5",
                "powerschool.token_refresh_margin_secs",
            ),
            (
                "[database]\nmax_connections = 0",
                "database.max_connections",
            ),
            (
                "[sync]\non_powerschool_removal = \"delete\"",
                "sync.on_powerschool_removal",
            ),
            (
                "[sync]\nstudent_login_field = \"username\"",
                "sync.student_login_field",
            ),
            ("[sync]\naccess_tiers_file = \"\"", "sync.access_tiers_file"),
            ("[schedule]\ncron = \"every night\"", "schedule.cron"),
            (
                "[schedule]\ntimezone = \"Mars/Olympus\"",
                "schedule.timezone",
            ),
            (
                "[[schedule.blackout]]\nfrom = \"2026-07-01\"\nto = \"2026-13-01\"",
                "schedule.blackout[0].to",
            ),
            (
                "[[schedule.blackout]]\nfrom = \"yesterday\"\nto = \"2026-08-01\"",
                "schedule.blackout[0].from",
            ),
            (
                "[daemon]\ngrace_period_secs = 0",
                "daemon.grace_period_secs",
            ),
            ("[daemon]\nlisten = \"nowhere\"", "daemon.listen"),
            ("[logging]\nformat = \"xml\"", "logging.format"),
            ("district = \" \"", "district"),
            (
                "[safety.students_leaving]\npercent = 150.0",
                "safety.students_leaving.percent",
            ),
            (
                "[safety.connections_losing_access]\ncount = -1",
                "safety.connections_losing_access.count",
            ),
            (
                "[safety]\npercent_applies_from = -3",
                "safety.percent_applies_from",
            ),
        ];
        for (text, key) in cases {
            let err = load_toml(text, &[]).expect_err(text);
            let message = err.to_string();
            assert!(
                message.contains(key),
                "{text}: message {message:?} must name {key}"
            );
            assert_eq!(&key_of(err), key, "{text}");
        }
    }

    #[test]
    fn env_errors_name_the_key() {
        let e = load_toml("", &[("STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE", "lots")]).unwrap_err();
        assert_eq!(key_of(e), "powerschool.page_size");
        let e = load_toml(
            "",
            &[("STUDENT_SYNC_SYNC_INCLUDE_SCHEDULING_YEAR", "maybe")],
        )
        .unwrap_err();
        assert_eq!(key_of(e), "sync.include_scheduling_year");
        let e = load_toml("", &[("DATABASE_URL", "mysql://x@y/z")]).unwrap_err();
        assert_eq!(key_of(e), "database.url");
        let e =
            load_toml("", &[("STUDENT_SYNC_SAFETY_USERS_CREATED_PERCENT", "lots")]).unwrap_err();
        assert_eq!(key_of(e), "safety.users_created.percent");
    }

    #[test]
    fn safety_defaults_file_and_env() {
        let s = load_toml("", &[]).unwrap();
        assert_eq!(s.safety, SafetySettings::default());
        let s = load_toml(
            "[safety]\nenabled = false\n[safety.students_leaving]\ncount = 7\n",
            &[
                ("STUDENT_SYNC_SAFETY_STUDENTS_LEAVING_PERCENT", "2.5"),
                ("STUDENT_SYNC_SAFETY_GUARDIAN_QUERY_SHRINK_COUNT", "9"),
            ],
        )
        .unwrap();
        assert!(!s.safety.enabled);
        assert_eq!(
            s.safety.students_leaving,
            Threshold {
                count: 7,
                percent: 2.5
            }
        );
        assert_eq!(s.safety.guardian_query_shrink.count, 9);
    }

    #[test]
    fn missing_settings_name_their_key() {
        let e = Settings::load(&Sources {
            file: None,
            env: HashMap::new(),
        })
        .unwrap_err();
        assert_eq!(key_of(e), "powerschool.url");
        let e = Settings::load(&Sources {
            file: None,
            env: env(&[("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org")]),
        })
        .unwrap_err();
        assert_eq!(key_of(e), "powerschool.client_id");
        let e = Settings::load(&Sources {
            file: None,
            env: env(&[
                ("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org"),
                ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
            ]),
        })
        .unwrap_err();
        assert_eq!(key_of(e), "powerschool.client_secret");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(parse_powerschool_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_powerschool_url("http://localhost:8080").is_ok());
        assert!(parse_powerschool_url("http://[::1]:8080").is_ok());
        assert!(parse_powerschool_url("https://ps.example.org").is_ok());
        let e = parse_powerschool_url("http://ps.example.org").unwrap_err();
        assert!(e.to_string().contains("powerschool.url"));
        assert!(e.to_string().contains("loopback"));
        assert_eq!(
            key_of(parse_powerschool_url("ftp://ps.example.org").unwrap_err()),
            "powerschool.url"
        );
    }

    #[test]
    fn secrets_never_come_from_the_toml() {
        // client_secret in the file is refused outright, by name.
        let e = load_toml("[powerschool]\nclient_secret = \"x\"", &[]).unwrap_err();
        assert_eq!(key_of(e), "powerschool.client_secret");
        // A password inside the TOML's database URL is refused, and not echoed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[database]\nurl = \"postgres://u:hunter2@db/x\"").unwrap();
        let mut e = env(&minimal());
        e.remove("DATABASE_URL");
        let err = Settings::load(&Sources {
            file: Some(&path),
            env: e,
        })
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(key_of(err), "database.url");
    }

    #[test]
    fn secret_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ps_secret"), "from-file\n").unwrap();
        std::fs::write(dir.path().join("db_pw"), "dbpw\n").unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[powerschool]\nurl = \"https://ps.example.org\"\nclient_id = \"id\"\nclient_secret_file = \"ps_secret\"\n[database]\nurl = \"postgres://postgres@127.0.0.1/x\"\npassword_file = \"db_pw\"\n",
        )
        .unwrap();
        let s = Settings::load(&Sources {
            file: Some(&path),
            env: HashMap::new(),
        })
        .unwrap();
        assert_eq!(s.powerschool.client_secret.expose(), "from-file");
        assert_eq!(s.database.password.unwrap().expose(), "dbpw");
        let missing = dir.path().join("m.toml");
        std::fs::write(&missing, "[powerschool]\nurl = \"https://ps.example.org\"\nclient_id = \"id\"\nclient_secret_file = \"nope\"\n").unwrap();
        let e = Settings::load(&Sources {
            file: Some(&missing),
            env: HashMap::new(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("powerschool.client_secret"), "{e}");
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/student-sync.example.toml");
        let s = Settings::load(&Sources {
            file: Some(&path),
            env: env(&[("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "x")]),
        })
        .unwrap();
        assert_eq!(s.powerschool.page_size, 1000);
        // The example documents the safety defaults.
        assert_eq!(s.safety, SafetySettings::default());
    }

    #[test]
    fn the_log_format_is_read_from_the_file_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("student-sync.toml");
        std::fs::write(&path, "[logging]\nformat = \"json\"\n").unwrap();
        assert_eq!(log_format_in_file(&path).as_deref(), Some("json"));
        std::fs::write(&path, "district = \"x\"\n").unwrap();
        assert_eq!(log_format_in_file(&path), None);
        assert_eq!(log_format_in_file(&dir.path().join("missing.toml")), None);
    }

    #[test]
    fn a_secret_in_the_file_is_refused_by_name_and_never_echoed() {
        for (text, key) in [
            (
                "[powerschool]\nclient_secret = \"hunter2\"\n",
                "powerschool.client_secret",
            ),
            ("[database]\npassword = \"hunter2\"\n", "database.password"),
        ] {
            let e = load_toml(text, &[]).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("never read from the config file"),
                "{e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
