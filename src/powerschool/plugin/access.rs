//! The plugin's access request: exactly the columns its queries read
//! (selected, joined on or filtered on, read off their SQL) and the columns
//! the built-in guardian query reads with the same token, and `plugin.xml`
//! around it.

use super::queries::NamedQuery;
use super::{sql, xml_escape, PluginInfo};
use crate::config::TableColumn;
use crate::powerschool::GUARDIANS_QUERY;
use std::collections::{BTreeMap, BTreeSet};

/// What the built-in guardian query reads, which the plugin's token must be
/// granted: the table-qualified defaults of the guardian column candidates
/// (docs/powerschool.md, "Guardians") and the keys PowerSchool joins its
/// tables on: GUARDIAN to GUARDIANSTUDENT by GUARDIANID, GUARDIANSTUDENT to
/// STUDENTS by STUDENTSDCID = DCID, GUARDIAN to PCAS_ACCOUNT by
/// ACCOUNTIDENTIFIER = PCAS_ACCOUNTTOKEN, PCAS_ACCOUNT to PCAS_EMAILCONTACT by
/// PCAS_ACCOUNTID. The district's server lists the exact set at
/// `/ws/powerqueryaccesslist/{query}`; `student-sync doctor` compares the two.
pub const GUARDIAN_QUERY_READS: &[(&str, &str)] = &[
    // the candidates' defaults
    ("GUARDIAN", "GUARDIANID"),
    ("GUARDIAN", "EMAIL"),
    ("GUARDIAN", "FIRSTNAME"),
    ("GUARDIAN", "LASTNAME"),
    ("GUARDIANSTUDENT", "GUARDIANID"),
    ("GUARDIANSTUDENT", "STUDENTSDCID"),
    ("GUARDIANSTUDENT", "ACCOUNTTYPE"),
    ("STUDENTS", "DCID"),
    ("PCAS_EMAILCONTACT", "EMAILADDRESS"),
    // the join keys
    ("GUARDIAN", "ACCOUNTIDENTIFIER"),
    ("GUARDIANSTUDENT", "GUARDIANSTUDENTID"),
    ("PCAS_ACCOUNT", "PCAS_ACCOUNTID"),
    ("PCAS_ACCOUNT", "PCAS_ACCOUNTTOKEN"),
    ("PCAS_EMAILCONTACT", "PCAS_EMAILCONTACTID"),
    ("PCAS_EMAILCONTACT", "PCAS_ACCOUNTID"),
];

/// The guardian query's part of the access request.
pub fn guardian_reads() -> BTreeSet<TableColumn> {
    GUARDIAN_QUERY_READS
        .iter()
        .map(|(t, c)| TableColumn::new(t, c))
        .collect()
}

/// Every column the access request names, with the queries that read it.
pub fn access_request(queries: &[NamedQuery]) -> BTreeMap<TableColumn, BTreeSet<String>> {
    let mut request: BTreeMap<TableColumn, BTreeSet<String>> = BTreeMap::new();
    for q in queries {
        for column in sql::columns_read(&q.sql) {
            request.entry(column).or_default().insert(short(&q.name));
        }
    }
    for column in guardian_reads() {
        request
            .entry(column)
            .or_default()
            .insert(short(GUARDIANS_QUERY));
    }
    request
}

/// The query's last two name parts (`students.enrolled`), for comments.
fn short(name: &str) -> String {
    let parts: Vec<&str> = name.rsplitn(3, '.').collect();
    match parts.as_slice() {
        [last, area, _] => format!("{area}.{last}"),
        _ => name.to_string(),
    }
}

const PLUGIN_HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!--
  student-sync PowerSchool plugin. Built by `student-sync plugin build` from
  the settings in [powerschool.fields]; do not edit by hand: change the
  settings and build again.

  Enabling this plugin issues the OAuth client id and secret that student-sync
  uses, and grants read-only access to exactly the columns its queries read.
  The four custom PowerQueries are in queries_root/student_sync.named_queries.xml;
  the access request below names every table and column they read (selected,
  joined on or filtered on) and those the built-in guardian query
  com.pearson.core.guardian.student_guardian_detail reads with the same token.
-->
"#;

/// `plugin.xml`.
pub fn plugin_xml(info: &PluginInfo, queries: &[NamedQuery]) -> String {
    let mut x = PLUGIN_HEADER.to_string();
    x.push_str(&format!(
        "<plugin xmlns=\"http://plugin.powerschool.pearson.com\"\n        \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n        \
         xsi:schemaLocation=\"http://plugin.powerschool.pearson.com plugin.xsd\"\n        \
         name=\"{}\"\n        version=\"{}\"\n        description=\"{}\">\n    <oauth/>\n    <access_request>\n",
        xml_escape(&info.name),
        xml_escape(&info.version),
        xml_escape(&info.description)
    ));
    let mut table = String::new();
    for (column, readers) in access_request(queries) {
        if column.table != table {
            table.clone_from(&column.table);
            x.push_str(&format!("        <!-- {table} -->\n"));
        }
        let readers: Vec<&str> = readers.iter().map(String::as_str).collect();
        x.push_str(&format!(
            "        <field table=\"{}\" field=\"{}\" access=\"ViewOnly\"/> <!-- {} -->\n",
            column.table,
            column.column,
            readers.join(", ")
        ));
    }
    x.push_str(&format!(
        "    </access_request>\n    <publisher name=\"{}\">\n        <contact email=\"{}\"/>\n    </publisher>\n</plugin>\n",
        xml_escape(&info.publisher),
        xml_escape(&info.contact_email)
    ));
    x
}
