//! A world file's `settings` (a project extension of the shared format)
//! applied on top of the sync settings, so one world can run with
//! `on_powerschool_removal = revoke` or the scheduling year on.

use crate::config::{self, ConfigError, SyncSettings};
use crate::harness::world::WorldSettings;
use chrono::NaiveDate;

pub fn apply(world: &WorldSettings, sync: &mut SyncSettings) -> Result<(), ConfigError> {
    if let Some(on) = world.include_scheduling_year {
        sync.include_scheduling_year = on;
    }
    if let Some(policy) = &world.on_powerschool_removal {
        sync.on_powerschool_removal = config::choice("settings.on_powerschool_removal", policy)?;
    }
    Ok(())
}

/// The run date a world pins, if any.
pub fn today(world: &WorldSettings) -> Result<Option<NaiveDate>, ConfigError> {
    world
        .today
        .as_deref()
        .map(|t| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| ConfigError::Invalid {
                key: "settings.today".into(),
                value: t.into(),
                allowed: "allowed is a date written YYYY-MM-DD".into(),
            })
        })
        .transpose()
}
