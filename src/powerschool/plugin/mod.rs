//! The student-sync PowerSchool plugin, built from the district's settings
//! (`[powerschool.fields]`): its four PowerQueries (`queries`), its access
//! request and `plugin.xml` (`access`), the checks PowerSchool makes at
//! install (`check`), and the zip a district uploads. Pure text generation;
//! the only I/O is writing the zip into the writer the caller gives.
//! `powerschool-plugin/` in the repository is what this builds from the
//! defaults (a test keeps the two equal).

mod access;
mod check;
mod queries;
mod sql;

pub use access::{access_request, guardian_reads, GUARDIAN_QUERY_READS};
pub use check::{MAX_DESCRIPTION, MAX_PLUGIN_NAME};
pub use queries::{NamedQuery, OutputColumn, QueryArg, SCHOOLS_QUERY};

use crate::config::{PowerSchoolFields, TableColumn};
use std::collections::BTreeSet;
use std::io::{Seek, Write};

/// The plugin's version: raise it whenever the queries or the access request
/// change, so PowerSchool takes the new zip as an update.
pub const PLUGIN_VERSION: &str = "1.1.0";
/// Where the named queries sit inside the zip.
pub const NAMED_QUERIES_PATH: &str = "queries_root/student_sync.named_queries.xml";

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A check PowerSchool would make at install failed.
    #[error("the plugin would be refused by PowerSchool: {subject}: {problem}; {fix}")]
    Refused {
        subject: String,
        problem: String,
        fix: String,
    },
    #[error("cannot write the plugin zip: {0}")]
    Zip(String),
}

/// The plugin's name, version, description and publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub publisher: String,
    pub contact_email: String,
}

impl Default for PluginInfo {
    fn default() -> Self {
        PluginInfo {
            name: "student-sync".into(),
            version: PLUGIN_VERSION.into(),
            description: "Read-only PowerQueries for the nightly student-sync of students, \
                          contacts and Parent Portal guardians into SchoolEngage."
                .into(),
            publisher: "student-sync".into(),
            contact_email: "student-sync@example.org".into(),
        }
    }
}

/// One file of the plugin: its path inside the zip and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFile {
    pub path: &'static str,
    pub text: String,
}

/// The plugin for one district, before it is checked and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    pub info: PluginInfo,
    pub queries: Vec<NamedQuery>,
}

impl Plugin {
    /// The plugin the district's fields call for.
    pub fn for_fields(fields: &PowerSchoolFields) -> Self {
        Plugin {
            info: PluginInfo::default(),
            queries: queries::queries(fields),
        }
    }

    /// PowerSchool's install-time checks, made offline.
    pub fn check(&self) -> Result<(), PluginError> {
        check::check(&self.info, &self.queries)
    }

    /// Every column the access request names.
    pub fn access_request(&self) -> BTreeSet<TableColumn> {
        access::access_request(&self.queries).into_keys().collect()
    }

    /// The checked files: `plugin.xml` and the named queries.
    pub fn files(&self) -> Result<Vec<PluginFile>, PluginError> {
        self.check()?;
        Ok(vec![
            PluginFile {
                path: "plugin.xml",
                text: access::plugin_xml(&self.info, &self.queries),
            },
            PluginFile {
                path: NAMED_QUERIES_PATH,
                text: queries::named_queries_xml(&self.queries),
            },
        ])
    }

    /// The checked plugin as a zip, `plugin.xml` at its top.
    pub fn write_zip<W: Write + Seek>(&self, out: W) -> Result<(), PluginError> {
        use zip::write::SimpleFileOptions;
        let files = self.files()?;
        let zip_err = |e: zip::result::ZipError| PluginError::Zip(e.to_string());
        let mut zip = zip::ZipWriter::new(out);
        // Stored, with a fixed date: the same settings give the same bytes.
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644);
        for file in &files {
            zip.start_file(file.path, options).map_err(zip_err)?;
            zip.write_all(file.text.as_bytes())
                .map_err(|e| PluginError::Zip(e.to_string()))?;
        }
        zip.finish().map_err(zip_err)?;
        Ok(())
    }
}

/// Text safe inside an XML attribute or element.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
