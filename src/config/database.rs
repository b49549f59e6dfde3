//! `[database]`: the connection URL (its password taken out, never shown),
//! the password's source, the pool and the time limits of every connection,
//! and the TLS a database on another host requires.

use super::file::FileDatabase;
use super::secrets::{read_secret, DATABASE_PASSWORD_ENV};
use super::settings::*;
use super::validate::{is_loopback_ip, whole, DEFAULT_DATABASE_URL};
use super::{environment, invalid, ConfigError, Secret, Sources};
use std::time::Duration;

/// The database URL (a password in it, as user info or `?password=`, only
/// when it came from the environment; it is moved out of the URL), the
/// password from the environment or a file, the pool size, the time limits
/// and retries of its connections, and its TLS.
pub(super) fn database(
    db: FileDatabase,
    sources: &Sources<'_>,
) -> Result<DatabaseSettings, ConfigError> {
    let text = db.url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
    let mut url = url::Url::parse(&text).map_err(|e| {
        invalid(
            "database.url",
            redact_url_text(&text),
            &format!("allowed is a postgres:// URL ({e})"),
        )
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(invalid(
            "database.url",
            redact_url_text(&text),
            "allowed is a postgres:// or postgresql:// URL",
        ));
    }
    let mut password = take_url_password(&mut url);
    if password.is_some() && !environment::sets(&sources.env, "database.url") {
        return Err(invalid(
            "database.url",
            redact_url_text(&text),
            &format!("the config file must not hold the database password (neither user:password@ nor ?password=): use DATABASE_URL, {DATABASE_PASSWORD_ENV} or database.password_file"),
        ));
    }
    if let Some(p) = read_secret(
        "database.password",
        DATABASE_PASSWORD_ENV,
        db.password_file.as_deref(),
        sources,
    )? {
        password = Some(p);
    }
    let allow_insecure_tls = db.allow_insecure_tls.unwrap_or(false);
    require_verified_tls(&url, allow_insecure_tls)?;
    let max_connections = whole("database.max_connections", db.max_connections, 5, 1, 100)?;
    let secs = |key: &str, v: Option<i64>, default: i64, min: i64, max: i64| {
        whole(key, v, default, min, max).map(|n| Duration::from_secs(n as u64))
    };
    Ok(DatabaseSettings {
        url,
        password,
        max_connections: max_connections as u32,
        statement_timeout: secs(
            "database.statement_timeout_secs",
            db.statement_timeout_secs,
            900,
            0,
            86_400,
        )?,
        lock_timeout: secs(
            "database.lock_timeout_secs",
            db.lock_timeout_secs,
            60,
            0,
            86_400,
        )?,
        keepalive: secs("database.keepalive_secs", db.keepalive_secs, 60, 1, 3600)?,
        transient_retries: whole("database.transient_retries", db.transient_retries, 3, 0, 20)?
            as u32,
        retry_backoff: secs(
            "database.retry_backoff_secs",
            db.retry_backoff_secs,
            10,
            0,
            3600,
        )?,
        allow_insecure_tls,
    })
}

/// Moves a password out of the URL (`user:password@` or `?password=`).
fn take_url_password(url: &mut url::Url) -> Option<Secret> {
    let mut password = url.password().map(|p| Secret::new(p.to_string()));
    let _ = url.set_password(None);
    let (with, without): (Vec<_>, Vec<_>) = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .partition(|(k, _)| k == "password");
    if let Some((_, p)) = with.into_iter().last() {
        password = Some(Secret::new(p));
        if without.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(without);
        }
    }
    password
}

/// A server that is not on this machine is reached only with its
/// certificate checked (`sslmode=verify-full`), unless
/// `database.allow_insecure_tls` says otherwise. Loopback IP addresses and
/// Unix sockets need no TLS.
fn require_verified_tls(url: &url::Url, allow_insecure_tls: bool) -> Result<(), ConfigError> {
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let local = match query("host") {
        Some(h) if h.starts_with('/') => true,
        Some(h) => h
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false),
        None => url.host().is_none() || is_loopback_ip(url.host()),
    };
    let sslmode = query("sslmode").unwrap_or_else(|| "prefer".to_string());
    if local || allow_insecure_tls || sslmode == "verify-full" {
        return Ok(());
    }
    Err(invalid(
        "database.url",
        redact_url_text(url.as_str()),
        &format!(
            "the server is not on this machine and sslmode is {sslmode}: its certificate would \
             not be checked. Add ?sslmode=verify-full (with sslrootcert= if its CA is not a \
             public one), or set database.allow_insecure_tls = true \
             (STUDENT_SYNC_DATABASE_ALLOW_INSECURE_TLS) to accept that risk"
        ),
    ))
}

/// The URL as it may be shown: any password, in user info or `?password=`,
/// replaced by `***`.
pub fn redact_url_text(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query_pairs().any(|(k, _)| k == "password") {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "password" {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL, not shown in case it holds a password)".to_string(),
    }
}
