//! What each access tier may do in SchoolEngage. The matrix is configuration
//! (`config/access_tiers.toml`), not code, so a district can change what a
//! tier means without a release; the default is the table in access-rules.md.
//! Parsing is strict: a typo in this file silently widening a parent's access
//! is worse than refusing to start.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumString, IntoStaticStr, VariantNames};

use super::AccessTier;

/// How much of one kind of thing (viewing, creating, …) a tier allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[derive(Serialize, Deserialize)]
#[derive(AsRefStr, IntoStaticStr, EnumString, Display, VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Capability {
    All,
    StarterFormsOnly,
    OnlyFormsICreated,
    None,
}

impl Capability {
    /// Words for a district admin reading `explain`.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::All => "all forms",
            Capability::StarterFormsOnly => "starter forms only",
            Capability::OnlyFormsICreated => "only forms they created",
            Capability::None => "no forms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TierPermissions {
    pub view_forms: Capability,
    pub create_forms: Capability,
    pub edit_forms: Capability,
    pub receive_emails: Capability,
}

/// The names of the four capabilities, as keys in the TOML file.
const CAPABILITY_KEYS: [&str; 4] = ["view_forms", "create_forms", "edit_forms", "receive_emails"];

impl TierPermissions {
    /// One line per capability, e.g. "view forms: starter forms only".
    pub fn describe(&self) -> Vec<String> {
        let emails = match self.receive_emails {
            Capability::All => "all emails".to_string(),
            Capability::StarterFormsOnly => "emails about starter forms only".to_string(),
            Capability::OnlyFormsICreated => "emails about forms they created only".to_string(),
            Capability::None => "no emails".to_string(),
        };
        vec![
            format!("view forms: {}", self.view_forms.describe()),
            format!("create forms: {}", self.create_forms.describe()),
            format!("edit forms: {}", self.edit_forms.describe()),
            format!("receive emails: {emails}"),
        ]
    }

    fn from_capabilities(caps: [Capability; 4]) -> TierPermissions {
        TierPermissions {
            view_forms: caps[0],
            create_forms: caps[1],
            edit_forms: caps[2],
            receive_emails: caps[3],
        }
    }
}

/// What every tier may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierMatrix {
    full: TierPermissions,
    restricted: TierPermissions,
    read_only: TierPermissions,
    incomplete: TierPermissions,
}

impl Default for TierMatrix {
    /// The table of access-rules.md.
    fn default() -> TierMatrix {
        use Capability::*;
        TierMatrix {
            full: TierPermissions::from_capabilities([All, All, All, All]),
            restricted: TierPermissions::from_capabilities([
                StarterFormsOnly,
                StarterFormsOnly,
                StarterFormsOnly,
                All,
            ]),
            read_only: TierPermissions::from_capabilities([All, None, None, All]),
            incomplete: TierPermissions::from_capabilities([
                OnlyFormsICreated,
                StarterFormsOnly,
                StarterFormsOnly,
                OnlyFormsICreated,
            ]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierMatrixError {
    #[error("the access tiers file is not valid TOML: {0}")]
    Syntax(String),
    #[error("unknown tier `{key}` in the access tiers file (allowed tiers: {allowed})")]
    UnknownTier { key: String, allowed: String },
    #[error("tier `{tier}` is missing from the access tiers file: every tier must be listed")]
    MissingTier { tier: String },
    #[error("`{key}` must be a table of capabilities, like [{key}]")]
    NotATable { key: String },
    #[error(
        "unknown capability `{key}` in the access tiers file (allowed capabilities: {allowed})"
    )]
    UnknownCapability { key: String, allowed: String },
    #[error("`{key}` is missing from the access tiers file: every tier must set every capability")]
    MissingCapability { key: String },
    #[error("`{key}` = {value} is not allowed (allowed values: {allowed})")]
    BadValue {
        key: String,
        value: String,
        allowed: String,
    },
}

fn allowed_tiers() -> String {
    AccessTier::ALL.map(AccessTier::as_str).join(", ")
}

fn allowed_capabilities() -> String {
    CAPABILITY_KEYS.join(", ")
}

fn allowed_values() -> String {
    Capability::VARIANTS.join(", ")
}

impl TierMatrix {
    /// Parses the `access_tiers.toml` format: one table per tier, each with
    /// all four capabilities, nothing else.
    pub fn from_toml_str(text: &str) -> Result<TierMatrix, TierMatrixError> {
        let document: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| TierMatrixError::Syntax(e.to_string()))?;

        // Sorted, so the first error reported does not depend on hash order.
        let keys: BTreeSet<&String> = document.keys().collect();
        if let Some(unknown) = keys.iter().find(|k| k.parse::<AccessTier>().is_err()) {
            return Err(TierMatrixError::UnknownTier {
                key: unknown.to_string(),
                allowed: allowed_tiers(),
            });
        }

        let mut matrix = TierMatrix::default();
        for tier in AccessTier::ALL {
            let name = tier.as_str();
            let Some(value) = document.get(name) else {
                return Err(TierMatrixError::MissingTier {
                    tier: name.to_string(),
                });
            };
            *matrix.slot(tier) = parse_tier(name, value)?;
        }
        Ok(matrix)
    }

    pub fn permissions(&self, tier: AccessTier) -> &TierPermissions {
        match tier {
            AccessTier::Full => &self.full,
            AccessTier::Restricted => &self.restricted,
            AccessTier::ReadOnly => &self.read_only,
            AccessTier::Incomplete => &self.incomplete,
        }
    }

    /// "read_only: view forms: all forms; create forms: no forms; …".
    pub fn describe(&self, tier: AccessTier) -> String {
        format!(
            "{}: {}",
            tier.as_str(),
            self.permissions(tier).describe().join("; ")
        )
    }

    fn slot(&mut self, tier: AccessTier) -> &mut TierPermissions {
        match tier {
            AccessTier::Full => &mut self.full,
            AccessTier::Restricted => &mut self.restricted,
            AccessTier::ReadOnly => &mut self.read_only,
            AccessTier::Incomplete => &mut self.incomplete,
        }
    }
}

fn parse_tier(tier: &str, value: &toml::Value) -> Result<TierPermissions, TierMatrixError> {
    let Some(table) = value.as_table() else {
        return Err(TierMatrixError::NotATable {
            key: tier.to_string(),
        });
    };
    let keys: BTreeSet<&String> = table.keys().collect();
    if let Some(unknown) = keys.iter().find(|k| !CAPABILITY_KEYS.contains(&k.as_str())) {
        return Err(TierMatrixError::UnknownCapability {
            key: format!("{tier}.{unknown}"),
            allowed: allowed_capabilities(),
        });
    }
    let mut caps = [Capability::None; 4];
    for (slot, name) in caps.iter_mut().zip(CAPABILITY_KEYS) {
        let key = format!("{tier}.{name}");
        let Some(value) = table.get(name) else {
            return Err(TierMatrixError::MissingCapability { key });
        };
        *slot = value.as_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
            TierMatrixError::BadValue {
                key,
                value: value.to_string(),
                allowed: allowed_values(),
            }
        })?;
    }
    Ok(TierPermissions::from_capabilities(caps))
}

#[cfg(test)]
#[allow(
    clippy::string_slice,
    reason = "clippy has no allow-in-tests for this lint; tests may panic: a panic is the failure report"
)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/access_tiers.toml");

    #[test]
    fn shipped_config_is_the_spec_default() {
        assert_eq!(
            TierMatrix::from_toml_str(SHIPPED),
            Ok(TierMatrix::default())
        );
    }

    #[test]
    fn default_follows_the_spec_table() {
        let m = TierMatrix::default();
        let full = m.permissions(AccessTier::Full);
        assert_eq!(full.view_forms, Capability::All);
        assert_eq!(full.receive_emails, Capability::All);
        let restricted = m.permissions(AccessTier::Restricted);
        assert_eq!(restricted.view_forms, Capability::StarterFormsOnly);
        assert_eq!(restricted.receive_emails, Capability::All);
        let read_only = m.permissions(AccessTier::ReadOnly);
        assert_eq!(read_only.view_forms, Capability::All);
        assert_eq!(read_only.create_forms, Capability::None);
        assert_eq!(read_only.edit_forms, Capability::None);
        let incomplete = m.permissions(AccessTier::Incomplete);
        assert_eq!(incomplete.view_forms, Capability::OnlyFormsICreated);
        assert_eq!(incomplete.create_forms, Capability::StarterFormsOnly);
        assert_eq!(incomplete.receive_emails, Capability::OnlyFormsICreated);
    }

    #[test]
    fn a_changed_value_is_taken() {
        let text = SHIPPED.replace(
            "[read_only]\nview_forms = \"all\"",
            "[read_only]\nview_forms = \"starter_forms_only\"",
        );
        let m = TierMatrix::from_toml_str(&text).unwrap();
        assert_eq!(
            m.permissions(AccessTier::ReadOnly).view_forms,
            Capability::StarterFormsOnly
        );
    }

    #[test]
    fn bad_value_names_key_value_and_allowed_values() {
        let text = SHIPPED.replace(
            "[restricted]\nview_forms = \"starter_forms_only\"",
            "[restricted]\nview_forms = \"some\"",
        );
        let err = TierMatrix::from_toml_str(&text).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("restricted.view_forms"), "{message}");
        assert!(message.contains("\"some\""), "{message}");
        assert!(
            message.contains("all, starter_forms_only, only_forms_i_created, none"),
            "{message}"
        );
    }

    #[test]
    fn non_string_value_is_refused() {
        let text = SHIPPED.replace("[full]\nview_forms = \"all\"", "[full]\nview_forms = true");
        let err = TierMatrix::from_toml_str(&text).unwrap_err();
        assert!(
            matches!(err, TierMatrixError::BadValue { ref key, .. } if key == "full.view_forms")
        );
    }

    #[test]
    fn missing_capability_is_refused() {
        let text = SHIPPED.replace(
            "[incomplete]\nview_forms = \"only_forms_i_created\"\n",
            "[incomplete]\n",
        );
        let err = TierMatrix::from_toml_str(&text).unwrap_err();
        assert_eq!(
            err,
            TierMatrixError::MissingCapability {
                key: "incomplete.view_forms".into()
            }
        );
        assert!(err.to_string().contains("incomplete.view_forms"));
    }

    #[test]
    fn unknown_capability_is_refused() {
        let text = SHIPPED.replace("[full]\n", "[full]\ndelete_forms = \"all\"\n");
        let err = TierMatrix::from_toml_str(&text).unwrap_err();
        assert!(err.to_string().contains("full.delete_forms"), "{err}");
        assert!(
            err.to_string().contains("view_forms, create_forms"),
            "{err}"
        );
    }

    #[test]
    fn missing_tier_is_refused() {
        let start = SHIPPED.find("[incomplete]").unwrap();
        let err = TierMatrix::from_toml_str(&SHIPPED[..start]).unwrap_err();
        assert_eq!(
            err,
            TierMatrixError::MissingTier {
                tier: "incomplete".into()
            }
        );
    }

    #[test]
    fn unknown_tier_is_refused() {
        let text = format!("{SHIPPED}\n[guest]\nview_forms = \"none\"\n");
        let err = TierMatrix::from_toml_str(&text).unwrap_err();
        assert!(err.to_string().contains("`guest`"), "{err}");
        assert!(err
            .to_string()
            .contains("full, restricted, read_only, incomplete"));
    }

    #[test]
    fn tier_that_is_not_a_table_is_refused() {
        let text = format!(
            "full = \"all\"\n{}",
            &SHIPPED[SHIPPED.find("[restricted]").unwrap()..]
        );
        let err = TierMatrix::from_toml_str(&text).unwrap_err();
        assert_eq!(err, TierMatrixError::NotATable { key: "full".into() });
    }

    #[test]
    fn syntax_error_is_refused() {
        let err = TierMatrix::from_toml_str("[full\nview_forms = ").unwrap_err();
        assert!(matches!(err, TierMatrixError::Syntax(_)));
    }

    #[test]
    fn capability_strings_round_trip() {
        for c in [
            Capability::All,
            Capability::StarterFormsOnly,
            Capability::OnlyFormsICreated,
            Capability::None,
        ] {
            assert_eq!(c.as_str().parse::<Capability>().ok(), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
    }

    #[test]
    fn description_names_every_capability() {
        let text = TierMatrix::default().describe(AccessTier::ReadOnly);
        assert_eq!(
            text,
            "read_only: view forms: all forms; create forms: no forms; edit forms: no forms; receive emails: all emails"
        );
    }
}
