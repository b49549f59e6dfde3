//! Typed settings for every part of student-sync, loaded once at start from a
//! TOML file and then the environment, and validated before anything runs:
//! a bad value stops the program with the key, the value and what is allowed.
//! Secrets (the PowerSchool client secret, the database password) come only
//! from the environment or from a file named in the config, so systemd
//! credentials work and nothing secret ever sits in a TOML file.
//!
//! One load, in this order: `file` (the shape of the TOML, unknown keys
//! refused) layered by figment with `environment` (the `STUDENT_SYNC_*`
//! variables and `DATABASE_URL`), then `validate` (every check, building the
//! typed `settings`), reading `secrets` and the `tier_matrix` file on the way.
//! The log format is part of the same load (`Settings::logging`).

mod answer_limits;
mod database;
mod environment;
mod fields;
mod file;
mod guardian_columns;
mod secrets;
mod settings;
mod tier_matrix;
mod validate;

pub use fields::{is_identifier, PowerSchoolFields, TableColumn};
pub use guardian_columns::GuardianColumns;
pub use secrets::Secret;
pub use settings::{
    AnswerLimits, BlackoutRange, DaemonSettings, DatabaseSettings, LogFormat, LoggingSettings,
    PowerSchoolSettings, RetentionSettings, SafetySettings, ScheduleSettings, Settings,
    SyncSettings, Threshold,
};
pub use validate::{is_loopback_ip, parse_powerschool_url, DEFAULT_DATABASE_URL};

use figment::providers::{Format, Toml};
use figment::Figment;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The variable that sets `logging.format`; read alone (with
/// `--log-format`) by the commands that load no settings.
pub const LOG_FORMAT_ENV: &str = "STUDENT_SYNC_LOG_FORMAT";

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
    #[error("tier matrix {path}: {source}")]
    TierMatrix {
        path: String,
        source: crate::rules::TierMatrixError,
    },
    #[error(
        "cannot read sync.access_tiers_file {path}: {source}; copy config/access_tiers.toml \
         there, or remove the key to use the built-in default matrix"
    )]
    TierMatrixUnreadable {
        path: String,
        source: std::io::Error,
    },
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

    /// Relative file names in the settings are read from the file's folder.
    fn config_dir(&self) -> PathBuf {
        self.file
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// What a command reads beyond the database: it decides what must be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// PowerSchool and the tier matrix: every command that fetches or decides.
    Everything,
    /// The tier matrix but not PowerSchool (`explain`).
    Rules,
    /// The database only (`status`, `seed`, `access export`, approve,
    /// discard, the demo): the PowerSchool section is checked when present,
    /// the tier-matrix file is not read (the default matrix stands in), so
    /// on-call's `status` works while that file is being fixed.
    Database,
}

impl Settings {
    /// Loads the file (if any), applies the environment, validates everything.
    pub fn load(sources: &Sources<'_>) -> Result<Settings, ConfigError> {
        Settings::load_for(sources, Needs::Everything)
    }

    /// As `load`, checking what `needs` asks for.
    pub fn load_for(sources: &Sources<'_>, needs: Needs) -> Result<Settings, ConfigError> {
        validate::settings(layered(sources)?, sources, needs)
    }
}

/// The file's values with the environment's over them, still unchecked.
fn layered(sources: &Sources<'_>) -> Result<file::FileSettings, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = sources.file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        secrets::refuse_secrets_in_file(&path.display().to_string(), &text)?;
        figment = figment.merge(Toml::string(&text));
    }
    environment::layer(figment, &sources.env)?
        .extract()
        .map_err(|e| ConfigError::Parse {
            path: sources
                .file
                .map_or_else(|| "(none)".to_string(), |p| p.display().to_string()),
            message: describe(e),
        })
}

/// figment's complaints, each with the key it is about (without figment's
/// profile and source names: the message already names the file).
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| match e.path.is_empty() {
            true => e.kind.to_string().trim_end().to_string(),
            false => format!("{} (key `{}`)", e.kind, e.path.join(".")),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn invalid(key: &str, value: impl fmt::Display, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

/// `p` itself when absolute, else `p` inside `dir`.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
mod tests;
