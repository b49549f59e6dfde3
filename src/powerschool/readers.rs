//! The two ways a query's pages are read (`paging::PageRead`): `Typed`,
//! straight from the page's bytes into the query's records (`page`), for
//! the sync's own queries; and `Raw`, through `serde_json::Value` into a map
//! of columns per record, for `run_query` (any query, any columns).

use super::columns::{self, Reading};
use super::error::PowerSchoolError;
use super::page::{self, key_of, Build, Failure, Matching, Page, Parsed, Schema};
use super::paging::{KeyColumns, PageRead};
use super::parse::{self, Columns, FieldError};
use super::records::GuardianLink;
use crate::config::GuardianColumns;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The columns each typed constructor of `parse` reads; a column not listed
/// here is never looked at, whatever the server sends.
pub(super) const SCHOOL_FIELDS: &[&str] = &["id", "name", "school_number"];
pub(super) const STUDENT_FIELDS: &[&str] = &[
    "dcid",
    "schoolid",
    "id",
    "student_number",
    "first_name",
    "last_name",
    "grade_level",
    "enroll_status",
    "entrydate",
    "orgemail",
    "personalemail",
];
pub(super) const INDEPENDENT_FIELDS: &[&str] = &[
    "dcid",
    "enrlytype1",
    "enrlytype2",
    "enrlytype3",
    "orgemail",
    "personalemail",
];
pub(super) const CONTACT_FIELDS: &[&str] = &[
    "studentsdcid",
    "personid",
    "firstname",
    "lastname",
    "email",
    "isdecisionmaking",
];

/// A query's pages typed as they are parsed.
pub(super) struct Typed<T> {
    schema: Arc<Schema>,
    build: Build<T>,
    /// The guardian query's candidates, for its first-page check.
    guardian: Option<Arc<GuardianColumns>>,
}

impl<T> Clone for Typed<T> {
    fn clone(&self) -> Self {
        Typed {
            schema: self.schema.clone(),
            build: self.build.clone(),
            guardian: self.guardian.clone(),
        }
    }
}

impl<T> Typed<T> {
    /// A query whose columns arrive under the names `fields` lists.
    pub(super) fn as_sent(
        fields: &'static [&'static str],
        key: KeyColumns,
        build: impl Fn(&dyn parse::Record) -> Result<T, FieldError> + Send + Sync + 'static,
    ) -> Self {
        Typed {
            schema: Arc::new(Schema {
                fields,
                matching: Matching::AsSent,
                key,
            }),
            build: Arc::new(build),
            guardian: None,
        }
    }
}

impl Typed<GuardianLink> {
    /// The guardian query, each field through its candidate columns.
    pub(super) fn guardian(cols: &GuardianColumns, key: KeyColumns) -> Self {
        let candidates = columns::FIELDS
            .iter()
            .map(|(field, _, _)| columns::candidates(cols, field).to_vec())
            .collect();
        Typed {
            schema: Arc::new(Schema {
                fields: &columns::GUARDIAN_COLUMNS,
                matching: Matching::Candidates(candidates),
                key,
            }),
            build: Arc::new(|r: &dyn parse::Record| parse::guardian(r)),
            guardian: Some(Arc::new(cols.clone())),
        }
    }
}

impl<T: Send + 'static> PageRead for Typed<T> {
    type Item = T;

    fn read(&self, page: u32, bytes: &[u8]) -> Result<Page<T>, serde_json::Error> {
        page::read_page(&self.schema, &self.build, page, bytes)
    }

    fn check_first_page(&self, query: &str, page: &Page<T>) -> Result<(), PowerSchoolError> {
        match &self.guardian {
            Some(cols) if !page.records.is_empty() => {
                columns::check_first_page_keys(cols, query, &page.keys)
            }
            _ => Ok(()),
        }
    }
}

/// Any query's records as maps of columns (`run_query`).
#[derive(Clone)]
pub(super) struct Raw {
    guardian: Option<Arc<GuardianColumns>>,
    key: KeyColumns,
}

impl Raw {
    /// `guardian`: read through the guardian query's candidates.
    pub(super) fn new(guardian: Option<&GuardianColumns>, key: KeyColumns) -> Self {
        Raw {
            guardian: guardian.map(|g| Arc::new(g.clone())),
            key,
        }
    }

    fn reading(&self) -> Reading<'_> {
        match &self.guardian {
            Some(cols) => Reading::Guardian(cols),
            None => Reading::AsSent,
        }
    }
}

impl PageRead for Raw {
    type Item = Columns;

    fn read(&self, page: u32, bytes: &[u8]) -> Result<Page<Columns>, serde_json::Error> {
        let body: Value = serde_json::from_slice(bytes)?;
        let maybe_message = body
            .as_object()
            .is_some_and(|o| !o.contains_key("record") && !o.contains_key("count"));
        let records = match parse::into_page_records(body) {
            Ok(records) => records,
            Err(detail) => {
                return Ok(Page {
                    records: Vec::new(),
                    keys: BTreeSet::new(),
                    shape: Err(detail),
                    maybe_message,
                    columns_resolved: 0,
                })
            }
        };
        let keys = match self.guardian {
            Some(_) => records.iter().flat_map(columns::record_keys).collect(),
            None => BTreeSet::new(),
        };
        let reading = self.reading();
        let parsed = records
            .iter()
            .enumerate()
            .map(|(index, record)| match reading.columns(record) {
                Ok(columns) => Parsed {
                    key: self.key.and_then(|k| key_of(&columns, k)),
                    outcome: Ok(columns),
                },
                Err(message) => Parsed {
                    key: None,
                    outcome: Err(Failure {
                        page,
                        index,
                        record_id: page::place(page, index),
                        error: FieldError {
                            field: "(record)".to_string(),
                            value: String::new(),
                            message,
                        },
                    }),
                },
            })
            .collect();
        Ok(Page {
            columns_resolved: keys.len(),
            records: parsed,
            keys,
            shape: Ok(()),
            maybe_message,
        })
    }

    fn check_first_page(&self, query: &str, page: &Page<Columns>) -> Result<(), PowerSchoolError> {
        match &self.guardian {
            Some(cols) if !page.records.is_empty() => {
                columns::check_first_page_keys(cols, query, &page.keys)
            }
            _ => Ok(()),
        }
    }
}
