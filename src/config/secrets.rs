//! Secrets: the PowerSchool client secret and the database password. They
//! come only from the environment or from a file named in the config (looked
//! up in systemd's `$CREDENTIALS_DIRECTORY` first), never from the TOML
//! itself: a secret written there is refused by name, never echoed, and a
//! `Secret` never reaches a log line.

use super::{invalid, resolve, ConfigError, Sources};
use std::fmt;
use std::path::{Path, PathBuf};

pub(super) const CLIENT_SECRET_ENV: &str = "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET";
pub(super) const DATABASE_PASSWORD_ENV: &str = "STUDENT_SYNC_DATABASE_PASSWORD";

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

/// A secret written into the TOML is refused by name before the parser could
/// quote its line back in an error message; a file that is not TOML at all
/// is refused with the line and column of the mistake and what is wrong,
/// never the line's text (it may hold a secret).
pub(super) fn refuse_secrets_in_file(path: &str, text: &str) -> Result<(), ConfigError> {
    let value = match toml::from_str::<toml::Value>(text) {
        Ok(v) => v,
        Err(e) => return Err(syntax_error(path, text, &e)),
    };
    let secrets = [
        (
            "powerschool",
            "client_secret",
            format!("set {CLIENT_SECRET_ENV} or powerschool.client_secret_file"),
        ),
        (
            "database",
            "password",
            format!("set {DATABASE_PASSWORD_ENV} or database.password_file"),
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

/// The secret `key` from the variable `env_name`, else from `file` (if the
/// config names one); None when neither is set.
pub(super) fn read_secret(
    key: &str,
    env_name: &str,
    file: Option<&str>,
    sources: &Sources<'_>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(v) = sources.env.get(env_name) {
        if !v.is_empty() {
            return Ok(Some(Secret::new(v.clone())));
        }
    }
    let Some(file) = file.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let path = secret_file_path(file, sources);
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

/// systemd's LoadCredential puts secrets under $CREDENTIALS_DIRECTORY: a
/// relative name is looked up there first, then beside the config file.
fn secret_file_path(file: &str, sources: &Sources<'_>) -> PathBuf {
    if !Path::new(file).is_absolute() {
        if let Some(dir) = sources.env.get("CREDENTIALS_DIRECTORY") {
            let candidate = PathBuf::from(dir).join(file);
            if candidate.exists() {
                return candidate;
            }
        }
    }
    resolve(&sources.config_dir(), file)
}

/// A TOML syntax error as `line L, column C: what is wrong`, without the
/// quoted line toml's own message carries.
fn syntax_error(path: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = text
        .get(..text.floor_char_boundary_compat(at))
        .unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    ConfigError::Parse {
        path: path.to_string(),
        message: format!(
            "line {line}, column {column}: {what} (the line itself is not shown, in case it holds a secret)"
        ),
    }
}

/// `str::floor_char_boundary`, which is not stable yet.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut at: usize) -> usize {
        while at > 0 && !self.is_char_boundary(at) {
            at -= 1;
        }
        at
    }
}
