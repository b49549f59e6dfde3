//! The typed settings every other module reads: what `Settings::load` hands
//! out once everything has been layered and checked. Nothing here parses or
//! validates; `validate` builds these from the file shape.

use super::Secret;
use crate::rules::eligibility::LoginField;
use crate::rules::{RemovalPolicy, TierMatrix};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone)]
pub struct PowerSchoolSettings {
    pub url: url::Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub page_size: u32,
    /// Superseded by `max_requests_in_flight`: still read and checked so
    /// that existing files load, and when a file sets it alone it sets the
    /// default of `max_requests_in_flight` (× 6); the fetch reads it no more.
    pub school_concurrency: usize,
    /// The most data requests on the PowerSchool server at once, for the
    /// whole district; every query and school shares them.
    pub max_requests_in_flight: usize,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub request_timeout: Duration,
    /// Renew the token this long before PowerSchool says it expires.
    pub token_refresh_margin: Duration,
    /// `[powerschool.fields]`: the district's columns the plugin reads.
    pub fields: super::PowerSchoolFields,
    /// The longest wait a throttling reply ("wait N seconds", 429) is granted.
    pub throttle_max_wait: Duration,
    /// `[powerschool.guardian_columns]`: where each guardian field is read.
    pub guardian_columns: super::GuardianColumns,
    /// How much of an answer is believed and read (counts, pages, bytes).
    pub answer_limits: AnswerLimits,
}

/// What makes a PowerSchool answer complete enough to use, and how big one
/// may be. A query that falls short fails the run before anything is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerLimits {
    /// A `/count` above this fails the query before any page is asked.
    pub max_count: u64,
    /// Distinct records may fall short of `/count` by this percent of it...
    pub count_tolerance_percent: f64,
    /// ...or by this many records, whichever is more (records deleted while
    /// a query is paged).
    pub count_tolerance_records: u64,
    /// The largest page or count answer read, in bytes.
    pub max_page_bytes: usize,
    /// A `/count` above this many times the last successful run's (and at
    /// least 1,000 above it) fails before any page is asked; 0: not judged.
    pub count_growth_factor: f64,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        AnswerLimits {
            max_count: 5_000_000,
            count_tolerance_percent: 1.0,
            count_tolerance_records: 5,
            max_page_bytes: 64 * 1024 * 1024,
            count_growth_factor: 3.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The connection URL without its password.
    pub url: url::Url,
    pub password: Option<Secret>,
    pub max_connections: u32,
    /// Every statement of every connection is cancelled past this (0: never).
    pub statement_timeout: Duration,
    /// A statement waiting this long for a row or table lock fails (0: never).
    pub lock_timeout: Duration,
    /// TCP keepalive idle time of every connection, both ways.
    pub keepalive: Duration,
    /// A run that meets a passing database error (restart, failover) is
    /// tried again this many times that night before it is `failed`.
    pub transient_retries: u32,
    /// The first wait before such a retry; doubled each time.
    pub retry_backoff: Duration,
    /// Allow a non-loopback server without `sslmode=verify-full`.
    pub allow_insecure_tls: bool,
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

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub include_scheduling_year: bool,
    pub student_login_field: LoginField,
    pub on_powerschool_removal: RemovalPolicy,
    /// The tier matrix file; None means the spec's default matrix.
    pub access_tiers_file: Option<PathBuf>,
    /// A run still going after this long is stopped and `failed`.
    pub run_deadline: Duration,
    /// The enrolment type that marks an independent student: the value of
    /// `powerschool.fields.independent_enrolment_type`, which the plugin's
    /// query filters on and the rules judge by (one setting, read twice).
    pub independent_enrolment_type: String,
    /// The tier matrix read from `access_tiers_file` (or the default one),
    /// loaded and checked with the rest of the settings.
    pub access_tiers: TierMatrix,
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
    /// Contacts the run would remove (base: contacts now).
    pub contacts_removed: Threshold,
    /// Guardian accounts (links) the run would remove (base: guardian accounts now).
    pub guardian_accounts_removed: Threshold,
    /// Connections an earlier sync made whose PowerSchool link vanished (base: connections now).
    pub connections_orphaned: Threshold,
    /// Per school: students fetched fewer than at the last successful full
    /// run (base: that school's count then).
    pub school_students_shrink: Threshold,
    /// Per school: contacts fetched fewer than at the last successful full
    /// run (base: that school's count then).
    pub school_contacts_shrink: Threshold,
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
            contacts_removed: Threshold {
                count: 500,
                percent: 10.0,
            },
            guardian_accounts_removed: Threshold {
                count: 500,
                percent: 10.0,
            },
            connections_orphaned: Threshold {
                count: 500,
                percent: 10.0,
            },
            // A school loses a year group at once only when its data is
            // wrong; the share is wide enough for a small school's normal
            // ups and downs.
            school_students_shrink: Threshold {
                count: 500,
                percent: 25.0,
            },
            school_contacts_shrink: Threshold {
                count: 500,
                percent: 25.0,
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
    /// A run with no progress (phase, records fetched) for this long stops
    /// the systemd watchdog pings.
    pub stall_timeout: Duration,
    /// Allow `listen` on an address other than loopback.
    pub allow_remote_listen: bool,
    /// How often the health answer is refreshed from the database.
    pub health_refresh: Duration,
}

/// `logging.format`, spelled as in the file, the environment and `--log-format`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    strum::EnumString,
    strum::Display,
    strum::VariantNames
)]
#[strum(serialize_all = "snake_case")]
pub enum LogFormat {
    /// Human text on a terminal, JSON under systemd (`JOURNAL_STREAM`).
    #[default]
    Auto,
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct LoggingSettings {
    pub format: LogFormat,
}

/// `[retention]`: how long run history is kept. A run (with its problems)
/// is pruned once it is older than `keep_days` AND not among the newest
/// `keep_runs`; the last successful full run and held or running runs are
/// never pruned. The access audit is kept forever unless `audit_keep_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    pub keep_days: u32,
    pub keep_runs: u32,
    /// None: the access audit is never pruned.
    pub audit_keep_days: Option<u32>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            keep_days: 90,
            keep_runs: 30,
            audit_keep_days: None,
        }
    }
}
