//! The tier matrix named by `sync.access_tiers_file`, read and checked with
//! the rest of the settings so every command sees the same matrix and a
//! mistake in it stops the program at start, like any other setting.
//! The format itself is `rules::tiers`'s.

use super::ConfigError;
use crate::rules::TierMatrix;
use std::path::Path;

/// The matrix in `file`, or the spec's default matrix when none is named.
pub(super) fn load(file: Option<&Path>) -> Result<TierMatrix, ConfigError> {
    let Some(path) = file else {
        return Ok(TierMatrix::default());
    };
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::TierMatrixUnreadable {
            path: path.display().to_string(),
            source,
        })?;
    TierMatrix::from_toml_str(&text).map_err(|source| ConfigError::TierMatrix {
        path: path.display().to_string(),
        source,
    })
}
