//! What PowerSchool checks when a plugin is installed, checked before the
//! zip is written, so a district never uploads a plugin that is refused: the
//! plugin's name and description lengths, query names (five parts, not
//! PowerSchool's own prefixes), every bind argument declared, `<columns>` in
//! the order of the SQL's select list, and nothing that would break the XML.

use super::queries::NamedQuery;
use super::{sql, PluginError, PluginInfo};

pub const MAX_PLUGIN_NAME: usize = 40;
pub const MAX_DESCRIPTION: usize = 256;
const RESERVED_PREFIXES: &[&str] = &["com.powerschool", "com.pearson"];

/// The first problem found, or Ok.
pub fn check(info: &PluginInfo, queries: &[NamedQuery]) -> Result<(), PluginError> {
    let refuse = |subject: &str, problem: String, fix: &str| {
        Err(PluginError::Refused {
            subject: subject.to_string(),
            problem,
            fix: fix.to_string(),
        })
    };
    if info.name.chars().count() > MAX_PLUGIN_NAME || info.name.trim().is_empty() {
        return refuse(
            "the plugin name",
            format!("{:?} is not 1 to {MAX_PLUGIN_NAME} characters", info.name),
            "shorten the name",
        );
    }
    if info.description.chars().count() > MAX_DESCRIPTION {
        return refuse(
            "the plugin description",
            format!("it is longer than {MAX_DESCRIPTION} characters"),
            "shorten the description",
        );
    }
    for q in queries {
        check_query(q)?;
    }
    Ok(())
}

fn check_query(q: &NamedQuery) -> Result<(), PluginError> {
    let refuse = |problem: String, fix: &str| {
        Err(PluginError::Refused {
            subject: format!("query {}", q.name),
            problem,
            fix: fix.to_string(),
        })
    };
    let parts: Vec<&str> = q.name.split('.').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if parts.len() != 5 || !parts.iter().all(part_ok) {
        return refuse(
            "the name is not five dot-separated parts of lower-case letters, digits and _".into(),
            "name it {tld}.{org}.{product}.{area}.{description}, e.g. org.studentsync.sync.students.enrolled",
        );
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| q.name.starts_with(*p)) {
        return refuse(
            format!("names starting with {prefix} are PowerSchool's own"),
            "use the org.studentsync prefix",
        );
    }
    if q.description.chars().count() > MAX_DESCRIPTION {
        return refuse(
            format!("its description is longer than {MAX_DESCRIPTION} characters"),
            "shorten the description",
        );
    }
    let declared: Vec<&str> = q.args.iter().map(|a| a.name.as_str()).collect();
    for bind in sql::binds(&q.sql) {
        if !declared.contains(&bind.as_str()) {
            return refuse(
                format!("the SQL uses the bind argument :{bind}, which is not declared"),
                &format!("declare {bind} in the query's <args>, or remove :{bind} from the SQL"),
            );
        }
    }
    let selected = sql::select_names(&q.sql);
    let listed: Vec<String> = q
        .columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    if selected != listed {
        return refuse(
            format!(
                "<columns> lists {} but the SQL selects {}",
                listed.join(", "),
                selected.join(", ")
            ),
            "list the output columns in the order of the SQL's select list",
        );
    }
    if q.sql.contains("]]>") {
        return refuse(
            "the SQL contains ]]>, which ends its CDATA section".into(),
            "remove ]]> from the SQL",
        );
    }
    Ok(())
}
