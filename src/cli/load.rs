//! What a command loads before it does anything: the settings (file and
//! environment), the tier matrix they name, and the database pool.

use super::{Cli, CliError};
use crate::config::{Settings, Sources};
use crate::rules::TierMatrix;
use crate::store;
use sqlx::PgPool;

/// The settings for this command line. `offline` commands never talk to
/// PowerSchool, so its credentials are not required.
pub(super) fn settings(cli: &Cli, offline: bool) -> Result<Settings, CliError> {
    let sources = Sources::from_process(cli.config.as_deref());
    let settings = if offline {
        Settings::load_offline(&sources)?
    } else {
        Settings::load(&sources)?
    };
    Ok(settings)
}

/// Loads and validates the tier matrix named in the settings.
pub fn tier_matrix(settings: &Settings) -> Result<TierMatrix, CliError> {
    match &settings.sync.access_tiers_file {
        None => Ok(TierMatrix::default()),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| CliError::TierMatrixUnreadable {
                    path: path.display().to_string(),
                    source,
                })?;
            TierMatrix::from_toml_str(&text).map_err(|source| CliError::TierMatrix {
                path: path.display().to_string(),
                source,
            })
        }
    }
}

pub async fn database(settings: &Settings) -> Result<PgPool, CliError> {
    Ok(store::connect(
        settings.database.connect_url().expose(),
        &settings.database.display_url(),
        settings.database.max_connections,
    )
    .await?)
}
