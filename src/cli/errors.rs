//! The command line's one error: each module's error, carried as it is, and
//! the exit code a script or systemd sees for it.

use crate::config::ConfigError;
use crate::harness::world::WorldError;
use crate::powerschool::PowerSchoolError;
use crate::store::StoreError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    PowerSchool(#[from] PowerSchoolError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Sync(#[from] SyncError),
    #[error("{0}")]
    World(#[from] WorldError),
    #[error("{0}")]
    Usage(String),
    /// `doctor` found problems (each already printed with its fix).
    #[error(
        "{failed} of {total} doctor checks failed; fix them and run `student-sync doctor` again"
    )]
    ChecksFailed { failed: usize, total: usize },
    #[error("{0}")]
    Plugin(#[from] crate::powerschool::plugin::PluginError),
    #[error("{0}")]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "cannot write the answer as JSON: {0}. This is a bug in student-sync (please report \
         it); the command itself did its work, leave out --json to see the answer as text"
    )]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// 2 for a usage or configuration mistake, 3 for a run held for approval,
    /// 4 for an approval refused, 1 for anything else that failed at run time.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            // A run held for approval by a safety threshold (nothing applied).
            CliError::Sync(SyncError::Held { .. }) => 3,
            // `approve` refused: the database changed, or a newer run exists.
            CliError::Sync(SyncError::StateChanged { .. } | SyncError::Superseded { .. }) => 4,
            CliError::Daemon(e) => e.exit_code(),
            _ => 1,
        }
    }
}
