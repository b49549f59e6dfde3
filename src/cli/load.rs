//! What a command loads before it does anything: the settings (file and
//! environment, with the tier matrix they name), and the database pool.

use super::{Cli, CliError, Command};
use crate::config::{ConfigError, Needs, Settings, Sources};
use crate::store;
use sqlx::PgPool;

/// The settings a command reads, or the mistake in them: loaded once, by
/// `main` before logging starts (logging takes its format from them). None
/// for a command that reads none; the database part only for the commands
/// that only read the database.
pub type Loaded = Option<Result<Settings, ConfigError>>;

/// Loads the settings `cli`'s command reads (see `Loaded`).
pub fn load_settings(cli: &Cli) -> Loaded {
    let sources = Sources::from_process(cli.config.as_deref());
    match &cli.command {
        Command::FakePowerschool(_) | Command::Completions { .. } | Command::Man { .. } => None,
        Command::Seed { .. }
        | Command::Plugin { .. }
        | Command::Demo(_)
        | Command::Access { .. }
        | Command::Approve { .. }
        | Command::Discard { .. }
        | Command::Status { .. }
        | Command::Prune { .. }
        | Command::Problems { .. } => Some(Settings::load_for(&sources, Needs::Database)),
        Command::Explain { .. } => Some(Settings::load_for(&sources, Needs::Rules)),
        Command::Fetch { .. }
        | Command::Doctor { .. }
        | Command::Sync { .. }
        | Command::Plan { .. }
        | Command::Spot { .. }
        | Command::Daemon
        | Command::Run { .. } => Some(Settings::load(&sources)),
    }
}

/// The loaded settings, asked for after the command's own usage checks, so
/// a usage mistake is reported before a mistake in the settings.
pub(super) fn settings(loaded: Loaded) -> Result<Settings, CliError> {
    let loaded = loaded.ok_or_else(|| CliError::Usage("this command reads no settings".into()))?;
    Ok(loaded?)
}

/// The database pool, once the database is known to belong to the
/// configured district (or to none yet).
pub async fn database(settings: &Settings) -> Result<PgPool, CliError> {
    let pool = store::connect_to(&settings.database).await?;
    store::district::check(&pool, &settings.district).await?;
    Ok(pool)
}
