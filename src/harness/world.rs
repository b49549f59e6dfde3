//! Test worlds: one JSON file describing what PowerSchool holds, what
//! SchoolEngage already holds, and the access table expected after one sync
//! (`docs/test-worlds.md`). The fake PowerSchool serves the
//! `powerschool` side, `seed` loads the `schoolengage` side, and the
//! acceptance tests compare `access export` with `expect`.

use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::store::access::{AccessRow, AccessTable};

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("cannot read world file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("world file {path} is not a valid world: {source} (see docs/test-worlds.md)")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct World {
    #[serde(default)]
    pub description: String,
    /// Project extension: the sync settings this world runs with.
    #[serde(default, skip_serializing_if = "WorldSettings::is_default")]
    pub settings: WorldSettings,
    #[serde(default)]
    pub powerschool: PowerSchoolSide,
    #[serde(default)]
    pub schoolengage: SchoolEngageSide,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<AccessTable>,
}

impl World {
    pub fn load(path: &Path) -> Result<World, WorldError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| WorldError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Settings a world runs with (a project extension of the shared format;
/// absent means the defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorldSettings {
    /// `sync.include_scheduling_year`, default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_scheduling_year: Option<bool>,
    /// `sync.on_powerschool_removal`: keep | restrict | revoke, default keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_powerschool_removal: Option<String>,
    /// The district date the sync runs on, `YYYY-MM-DD` (default: today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub today: Option<String>,
}

impl WorldSettings {
    fn is_default(&self) -> bool {
        *self == WorldSettings::default()
    }
}

/// Everything the fake PowerSchool serves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PowerSchoolSide {
    #[serde(default)]
    pub schools: Vec<WorldSchool>,
    #[serde(default)]
    pub students: Vec<WorldStudent>,
    #[serde(default)]
    pub contacts: Vec<WorldContact>,
    #[serde(default)]
    pub guardian_accounts: Vec<WorldGuardianAccount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldSchool {
    pub school_number: i64,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldStudent {
    pub dcid: i64,
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub student_number: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// The school's `school_number`.
    pub schoolid: i64,
    #[serde(default)]
    pub grade_level: Option<i64>,
    #[serde(default)]
    pub enroll_status: i64,
    /// `YYYY-MM-DD`
    #[serde(default)]
    pub entrydate: Option<String>,
    #[serde(default)]
    pub enrlytype1: Option<String>,
    #[serde(default)]
    pub enrlytype2: Option<String>,
    #[serde(default)]
    pub enrlytype3: Option<String>,
    #[serde(default)]
    pub orgemail: Option<String>,
    #[serde(default)]
    pub personalemail: Option<String>,
}

impl WorldStudent {
    /// Enrolment type 121 in any of the three fields marks an independent student.
    pub fn is_independent(&self) -> bool {
        [&self.enrlytype1, &self.enrlytype2, &self.enrlytype3]
            .iter()
            .any(|t| t.as_deref().map(str::trim) == Some("121"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldContact {
    pub student_dcid: i64,
    pub person_id: i64,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub isdecisionmaking: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldGuardianAccount {
    pub guardianid: i64,
    pub student_dcid: i64,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub web_access_account: bool,
}

/// What SchoolEngage already holds before the sync.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SchoolEngageSide {
    #[serde(default)]
    pub users: Vec<WorldUser>,
    #[serde(default)]
    pub connections: Vec<WorldConnection>,
    #[serde(default)]
    pub forms: Vec<WorldForm>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldUser {
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default = "default_true")]
    pub email_verified: bool,
    #[serde(default)]
    pub powerschool_guardian_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldConnection {
    pub student_dcid: i64,
    pub email: String,
    pub tier: String,
    /// `admin`, `form` or `powerschool`
    pub origin: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldForm {
    pub student_dcid: i64,
    pub created_by: String,
}
