//! Every check on the layered values, turning the file shape into typed
//! `Settings`: defaults filled in, ranges, URLs, enums, dates and paths
//! checked, each refusal naming the key, the bad value and what is allowed.
//! The checks run in the order of the file's sections, so the first mistake
//! reported is the first in the file.

use super::database::redact_url_text;
use super::file::{
    FileDaemon, FilePowerSchool, FileRetention, FileSafety, FileSchedule, FileSettings, FileSync,
    FileThreshold,
};
use super::secrets::{read_secret, CLIENT_SECRET_ENV};
use super::settings::*;
use super::{choice, invalid, resolve, tier_matrix, ConfigError, Needs, Secret, Sources};
use crate::rules::TierMatrix;
use std::net::SocketAddr;
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/student_sync";

/// `powerschool.max_requests_in_flight` when unset: enough that a distant
/// server's round trips overlap (with 100 ms a page, a 150,000-student
/// district's 979 pages take 1.5 s at 64, 3 s at 32), half the 128
/// allowed; a server that throttles lowers it for the rest of the run.
const DEFAULT_MAX_REQUESTS_IN_FLIGHT: i64 = 64;
/// The most `powerschool.max_requests_in_flight` may be.
const MOST_REQUESTS_IN_FLIGHT: i64 = 128;

/// The settings from the layered values, checked for what the command needs
/// (see `Needs`).
pub(super) fn settings(
    file: FileSettings,
    sources: &Sources<'_>,
    needs: Needs,
) -> Result<Settings, ConfigError> {
    let district = district(file.district)?;
    let powerschool = powerschool(file.powerschool, sources, needs == Needs::Everything)?;
    let database = super::database::database(file.database, sources)?;
    let mut sync = sync(file.sync, sources)?;
    sync.independent_enrolment_type = powerschool.fields.independent_enrolment_type.clone();
    let schedule = schedule(file.schedule)?;
    let daemon = daemon(file.daemon)?;
    let logging = LoggingSettings {
        format: chosen("logging.format", file.logging.format)?,
    };
    let safety = safety(&file.safety)?;
    let retention = retention(&file.retention)?;
    // The matrix file is read last: a mistake in the settings themselves is
    // reported before one in the file they name.
    if needs != Needs::Database {
        sync.access_tiers = tier_matrix::load(sync.access_tiers_file.as_deref())?;
    }
    Ok(Settings {
        district,
        powerschool,
        database,
        sync,
        schedule,
        daemon,
        logging,
        safety,
        retention,
    })
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

/// A whole-number setting, its default when unset.
pub(super) fn whole(
    key: &str,
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    in_range(key, value.unwrap_or(default), min, max)
}

/// An enum setting (see `choice`), its default when unset.
fn chosen<T>(key: &str, value: Option<String>) -> Result<T, ConfigError>
where
    T: Default + std::str::FromStr + strum::VariantNames,
{
    value.map_or_else(|| Ok(T::default()), |v| choice(key, &v))
}

fn district(district: Option<String>) -> Result<String, ConfigError> {
    let district = district.unwrap_or_else(|| "district".to_string());
    if district.trim().is_empty() {
        return Err(invalid(
            "district",
            &district,
            "allowed is a non-empty name",
        ));
    }
    Ok(district)
}

fn powerschool(
    mut ps: FilePowerSchool,
    sources: &Sources<'_>,
    need_powerschool: bool,
) -> Result<PowerSchoolSettings, ConfigError> {
    if !need_powerschool {
        ps.url
            .get_or_insert_with(|| "https://powerschool.invalid".to_string());
        ps.client_id
            .get_or_insert_with(|| "not-configured".to_string());
    }
    let url_text = ps.url.take().ok_or_else(|| ConfigError::Missing {
        key: "powerschool.url".into(),
        hint: "set it in the config file or STUDENT_SYNC_POWERSCHOOL_URL, e.g. https://powerschool.example.org".into(),
    })?;
    let url = parse_powerschool_url(&url_text)?;
    let client_id = ps.client_id.take().unwrap_or_default();
    if client_id.trim().is_empty() {
        return Err(ConfigError::Missing {
            key: "powerschool.client_id".into(),
            hint: "set it in the config file or STUDENT_SYNC_POWERSCHOOL_CLIENT_ID; the district gets it when it enables the student-sync plugin".into(),
        });
    }
    let client_secret = read_secret(
        "powerschool.client_secret",
        CLIENT_SECRET_ENV,
        ps.client_secret_file.as_deref(),
        sources,
    )?
    .or_else(|| (!need_powerschool).then(Secret::default))
    .ok_or_else(|| ConfigError::Missing {
        key: "powerschool.client_secret".into(),
        hint: format!("set {CLIENT_SECRET_ENV} or powerschool.client_secret_file (it is never read from the TOML itself)"),
    })?;
    powerschool_requests(&mut ps, url, client_id, client_secret)
}

/// Paging, concurrency, retries and time limits of the PowerSchool requests.
fn powerschool_requests(
    ps: &mut FilePowerSchool,
    url: url::Url,
    client_id: String,
    client_secret: Secret,
) -> Result<PowerSchoolSettings, ConfigError> {
    let page_size = whole("powerschool.page_size", ps.page_size, 1000, 1, 100_000)?;
    let school_concurrency = whole(
        "powerschool.school_concurrency",
        ps.school_concurrency,
        4,
        1,
        64,
    )?;
    // A district that set only the older `school_concurrency` (to spare its
    // server) keeps the most it ever had in flight: that many schools, two
    // queries each, three pages a query.
    let in_flight_default = match ps.school_concurrency {
        Some(_) => (school_concurrency * 2 * 3).min(64),
        None => DEFAULT_MAX_REQUESTS_IN_FLIGHT,
    };
    let max_requests_in_flight = whole(
        "powerschool.max_requests_in_flight",
        ps.max_requests_in_flight,
        in_flight_default,
        1,
        MOST_REQUESTS_IN_FLIGHT,
    )?;
    let max_attempts = whole("powerschool.max_attempts", ps.max_attempts, 5, 1, 20)?;
    let backoff_initial_ms = whole(
        "powerschool.backoff_initial_ms",
        ps.backoff_initial_ms,
        500,
        0,
        600_000,
    )?;
    let backoff_max_ms = whole(
        "powerschool.backoff_max_ms",
        ps.backoff_max_ms,
        30_000,
        0,
        3_600_000,
    )?;
    if backoff_max_ms < backoff_initial_ms {
        return Err(invalid(
            "powerschool.backoff_max_ms",
            backoff_max_ms,
            &format!("allowed is at least powerschool.backoff_initial_ms ({backoff_initial_ms})"),
        ));
    }
    let request_timeout_secs = whole(
        "powerschool.request_timeout_secs",
        ps.request_timeout_secs,
        60,
        1,
        3600,
    )?;
    let token_refresh_margin_secs = whole(
        "powerschool.token_refresh_margin_secs",
        ps.token_refresh_margin_secs,
        60,
        0,
        3600,
    )?;
    let throttle_max_wait_secs = whole(
        "powerschool.throttle_max_wait_secs",
        ps.throttle_max_wait_secs,
        60,
        0,
        3600,
    )?;
    Ok(PowerSchoolSettings {
        url,
        client_id,
        client_secret,
        page_size: page_size as u32,
        school_concurrency: school_concurrency as usize,
        max_requests_in_flight: max_requests_in_flight as usize,
        max_attempts: max_attempts as u32,
        backoff_initial: Duration::from_millis(backoff_initial_ms as u64),
        backoff_max: Duration::from_millis(backoff_max_ms as u64),
        request_timeout: Duration::from_secs(request_timeout_secs as u64),
        token_refresh_margin: Duration::from_secs(token_refresh_margin_secs as u64),
        fields: super::fields::fields(&ps.fields)?,
        throttle_max_wait: Duration::from_secs(throttle_max_wait_secs as u64),
        guardian_columns: super::guardian_columns::validate(std::mem::take(
            &mut ps.guardian_columns,
        ))?,
        answer_limits: super::answer_limits::validate(ps)?,
    })
}

/// Accepts https anywhere, and plain http only to a loopback IP address
/// (127.0.0.0/8, ::1: the fake server, a local tunnel), never a name, not
/// even `localhost` (a name is resolved through DNS or /etc/hosts and could
/// point elsewhere): credentials must never cross a network in clear. A
/// user name or password inside the URL is refused for every scheme.
pub fn parse_powerschool_url(text: &str) -> Result<url::Url, ConfigError> {
    let key = "powerschool.url";
    let url = url::Url::parse(text.trim()).map_err(|e| {
        invalid(
            key,
            redact_url_text(text),
            &format!("allowed is an https:// URL ({e})"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            key,
            redact_url_text(text),
            "a user name or password in the URL is not allowed (it would be sent and shown \
             in clear); write the URL without it and set the client secret through \
             STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET or powerschool.client_secret_file",
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback_ip(url.host()) {
                return Err(invalid(
                    key,
                    text,
                    "plain http:// is allowed only for a loopback IP address (127.0.0.1 or \
                     another 127.x.x.x, or [::1]; not a host name, not even localhost); use https://",
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

/// A loopback IP address (127.0.0.0/8, ::1); a name never is. (A
/// `postgres://` URL's host is opaque text to the url crate, so an address
/// written there is read here.)
pub fn is_loopback_ip(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(text)) => text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// `[sync]`, with the default tier matrix until `settings` reads the file.
fn sync(s: FileSync, sources: &Sources<'_>) -> Result<SyncSettings, ConfigError> {
    let on_powerschool_removal = chosen("sync.on_powerschool_removal", s.on_powerschool_removal)?;
    let student_login_field = chosen("sync.student_login_field", s.student_login_field)?;
    let access_tiers_file = match s.access_tiers_file {
        Some(p) if p.trim().is_empty() => {
            return Err(invalid(
                "sync.access_tiers_file",
                p,
                "allowed is a path to a TOML file",
            ))
        }
        Some(p) => Some(resolve(&sources.config_dir(), &p)),
        None => None,
    };
    let run_deadline_mins = whole("sync.run_deadline_mins", s.run_deadline_mins, 240, 1, 1440)?;
    Ok(SyncSettings {
        run_deadline: Duration::from_secs(run_deadline_mins as u64 * 60),
        include_scheduling_year: s.include_scheduling_year.unwrap_or(false),
        student_login_field,
        on_powerschool_removal,
        access_tiers_file,
        access_tiers: TierMatrix::default(),
        // Set from `[powerschool.fields]` once those are read (`settings`).
        independent_enrolment_type: String::new(),
    })
}

fn schedule(sch: FileSchedule) -> Result<ScheduleSettings, ConfigError> {
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
    Ok(ScheduleSettings {
        cron,
        timezone,
        blackout,
    })
}

fn parse_date(key: &str, text: &str) -> Result<chrono::NaiveDate, ConfigError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(key, text, "allowed is a date written YYYY-MM-DD"))
}

fn daemon(d: FileDaemon) -> Result<DaemonSettings, ConfigError> {
    let grace = whole("daemon.grace_period_secs", d.grace_period_secs, 30, 1, 3600)?;
    let listen_text = d.listen.unwrap_or_else(|| "127.0.0.1:9187".to_string());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        invalid(
            "daemon.listen",
            &listen_text,
            "allowed is an address and port such as 127.0.0.1:9187",
        )
    })?;
    let stall = whole(
        "daemon.stall_timeout_secs",
        d.stall_timeout_secs,
        900,
        1,
        86_400,
    )?;
    let refresh = whole(
        "daemon.health_refresh_secs",
        d.health_refresh_secs,
        15,
        1,
        3600,
    )?;
    Ok(DaemonSettings {
        grace_period: Duration::from_secs(grace as u64),
        listen,
        stall_timeout: Duration::from_secs(stall as u64),
        allow_remote_listen: d.allow_remote_listen.unwrap_or(false),
        health_refresh: Duration::from_secs(refresh as u64),
    })
}

fn safety(file: &FileSafety) -> Result<SafetySettings, ConfigError> {
    let d = SafetySettings::default();
    Ok(SafetySettings {
        enabled: file.enabled.unwrap_or(d.enabled),
        percent_applies_from: whole(
            "safety.percent_applies_from",
            file.percent_applies_from,
            d.percent_applies_from as i64,
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
        contacts_removed: threshold(
            "contacts_removed",
            &file.contacts_removed,
            d.contacts_removed,
            100.0,
        )?,
        guardian_accounts_removed: threshold(
            "guardian_accounts_removed",
            &file.guardian_accounts_removed,
            d.guardian_accounts_removed,
            100.0,
        )?,
        connections_orphaned: threshold(
            "connections_orphaned",
            &file.connections_orphaned,
            d.connections_orphaned,
            100.0,
        )?,
        school_students_shrink: threshold(
            "school_students_shrink",
            &file.school_students_shrink,
            d.school_students_shrink,
            100.0,
        )?,
        school_contacts_shrink: threshold(
            "school_contacts_shrink",
            &file.school_contacts_shrink,
            d.school_contacts_shrink,
            100.0,
        )?,
    })
}

fn threshold(
    name: &str,
    file: &FileThreshold,
    default: Threshold,
    max_percent: f64,
) -> Result<Threshold, ConfigError> {
    let count = whole(
        &format!("safety.{name}.count"),
        file.count,
        default.count as i64,
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

fn retention(file: &FileRetention) -> Result<RetentionSettings, ConfigError> {
    let d = RetentionSettings::default();
    let days = |key, value, default| -> Result<u32, ConfigError> {
        Ok(whole(key, value, default, 0, 36_500)? as u32)
    };
    let keep_days = whole(
        "retention.keep_days",
        file.keep_days,
        d.keep_days.into(),
        1,
        36_500,
    )?;
    let keep_runs = whole(
        "retention.keep_runs",
        file.keep_runs,
        d.keep_runs.into(),
        1,
        1_000_000,
    )?;
    // 0 (the default) keeps the audit forever.
    let audit = days("retention.audit_keep_days", file.audit_keep_days, 0)?;
    Ok(RetentionSettings {
        keep_days: keep_days as u32,
        keep_runs: keep_runs as u32,
        audit_keep_days: (audit > 0).then_some(audit),
    })
}
