//! One page of a typed query, read straight from its bytes into typed
//! records: no `serde_json::Value`, no per-record map of strings. A serde
//! visitor walks the page's `record` list; each column name is resolved to
//! the field it feeds once per page (`KeyTable`), each value is kept borrowed
//! from the page where it can be (`Val`), and each record is typed as soon
//! as its closing brace is read. What the typed reader sees is exactly what
//! `parse::record_columns` and `columns::guardian_record` would have built:
//! values trimmed, `""` and `null` are NULL, numbers as their integer text,
//! a nested record's columns only under `tables`, and when two columns feed
//! one field the first candidate wins, then the first in (table, column)
//! order — the order a JSON object's keys are read back in.

use super::page_de::PageSeed;
use super::parse::{Cell, FieldError, Record};
use serde::de::DeserializeSeed;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// How a page's columns feed the fields a record is typed from.
#[derive(Debug, Clone)]
pub(super) enum Matching {
    /// A column feeds the field of its own (lower-case) name, whatever table
    /// of a nested record it is under.
    AsSent,
    /// Each field through its candidates, in order (the guardian query): a
    /// `table.column` candidate matches a nested record's column, a plain
    /// one a flat record's.
    Candidates(Vec<Vec<String>>),
}

/// What a query's records are typed from.
#[derive(Debug, Clone)]
pub(super) struct Schema {
    /// The column names the typed constructor reads (`parse::student`, …).
    pub(super) fields: &'static [&'static str],
    pub(super) matching: Matching,
    /// The columns that make a record distinct and name it in a problem;
    /// `None` never de-duplicates.
    pub(super) key: Option<&'static [&'static str]>,
}

/// Types one record from its row.
pub(super) type Build<T> = Arc<dyn Fn(&dyn Record) -> Result<T, FieldError> + Send + Sync>;

/// A record's key, as compact as it can be: whole numbers as numbers when
/// every part is one written the one way (`5001`), text otherwise, so two
/// records have equal keys exactly when their key columns' texts are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Ints(i64, i64),
    Text(Box<str>),
}

/// The key of a record from its `key` columns; `None` when one is NULL.
pub(super) fn key_of<R: Record + ?Sized>(row: &R, key: &[&str]) -> Option<Key> {
    let mut ints = [0i64; 2];
    let mut all_ints = key.len() <= 2;
    for (n, k) in key.iter().enumerate() {
        let cell = row.cell(k)?;
        let int = match cell {
            Cell::Int(i) => Some(i),
            Cell::Text(t) => canonical_int(t),
        };
        match (int, ints.get_mut(n)) {
            (Some(i), Some(slot)) => *slot = i,
            _ => all_ints = false,
        }
    }
    if all_ints {
        let [a, b] = ints;
        return Some(Key::Ints(a, b));
    }
    let parts: Vec<String> = key
        .iter()
        .filter_map(|k| row.cell(k).map(|c| c.text().into_owned()))
        .collect();
    Some(Key::Text(parts.join("\u{1f}").into_boxed_str()))
}

/// `t` as a number when `t` is exactly how that number is written.
fn canonical_int(t: &str) -> Option<i64> {
    let digits = t.strip_prefix('-').unwrap_or(t);
    let leading_zero = digits.starts_with('0') && t != "0";
    if leading_zero || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// A record that could not be typed: where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) page: u32,
    /// 0-based place on its page.
    pub(super) index: usize,
    /// As a problem names it: `dcid=5001`, or `page 3, record 5 (…)`.
    pub(super) record_id: String,
    pub(super) error: FieldError,
}

/// One record of a page: its key and what it typed into.
#[derive(Debug)]
pub(super) struct Parsed<T> {
    pub(super) key: Option<Key>,
    pub(super) outcome: Result<T, Failure>,
}

/// One page, parsed.
#[derive(Debug)]
pub(super) struct Page<T> {
    pub(super) records: Vec<Parsed<T>>,
    /// The keys the page's records carry as candidates name them
    /// (`table.column` for a nested record, `column` for a flat one), lower
    /// case: what the first-page check of the guardian query needs.
    pub(super) keys: BTreeSet<String>,
    /// Why the page as a whole cannot be read (not an object, `record` not
    /// a list); its records are then none.
    pub(super) shape: Result<(), String>,
    /// The answer was an object with neither `record` nor `count`: a
    /// throttling message, or an empty page.
    pub(super) maybe_message: bool,
    /// Column names resolved to fields on this page: each name once, not
    /// once per record.
    pub(super) columns_resolved: usize,
}

/// A page's record names: `page 3, record 5`.
pub(super) fn place(page: u32, index: usize) -> String {
    format!("page {page}, record {}", index + 1)
}

/// `dcid=5001`, `guardianid=12, studentsdcid=5001`; or the record's place
/// when its key is incomplete.
pub(super) fn record_id(key: &[&str], row: Option<&dyn Record>, page: u32, index: usize) -> String {
    let place = place(page, index);
    let Some(row) = row else {
        return place;
    };
    let parts: Vec<String> = key
        .iter()
        .filter_map(|k| row.cell(k).map(|v| format!("{k}={}", v.text())))
        .collect();
    if parts.len() == key.len() {
        parts.join(", ")
    } else if parts.is_empty() {
        place
    } else {
        format!("{place} ({})", parts.join(", "))
    }
}

/// One value as read, borrowed from the page where no escape forced a copy.
#[derive(Debug, Clone)]
pub(super) enum Val<'de> {
    Text(Cow<'de, str>),
    Int(i64),
}

impl Val<'_> {
    fn cell(&self) -> Cell<'_> {
        match self {
            Val::Text(t) => Cell::Text(t),
            Val::Int(i) => Cell::Int(*i),
        }
    }
}

/// One field's value in a record being read, and where it came from.
#[derive(Debug, Clone)]
pub(super) struct Slot<'de> {
    val: Val<'de>,
    /// The candidate's place in the field's list (0 when read as sent).
    rank: usize,
    entry: u32,
}

/// The row a typed constructor reads.
struct Row<'r, 'de> {
    fields: &'static [&'static str],
    slots: &'r [Option<Slot<'de>>],
}

impl Record for Row<'_, '_> {
    fn cell(&self, field: &str) -> Option<Cell<'_>> {
        let at = self.fields.iter().position(|f| *f == field)?;
        self.slots.get(at)?.as_ref().map(|s| s.val.cell())
    }
}

/// A column name met on this page and the fields it feeds.
#[derive(Debug)]
struct Entry {
    /// Its table's place in `KeyTable::tables` (0: the record itself).
    table: usize,
    key: String,
    /// As candidates name it: `table.column` or `column`, lower case.
    qualified: String,
    /// (field, candidate rank) it feeds.
    targets: Vec<(usize, usize)>,
    /// Its place in its table's order, for the next column's guess.
    pos: usize,
    on_page: bool,
}

#[derive(Debug)]
struct TableKeys {
    /// `None` for the record's own keys.
    name: Option<String>,
    by_key: HashMap<String, u32>,
    /// Entries in the order first met; records repeat it, so the next
    /// column is guessed before it is looked up.
    order: Vec<u32>,
}

/// The column names met on one page, each resolved to its fields once.
#[derive(Debug)]
pub(super) struct KeyTable {
    tables: Vec<TableKeys>,
    entries: Vec<Entry>,
}

impl KeyTable {
    fn new() -> Self {
        KeyTable {
            tables: vec![TableKeys {
                name: None,
                by_key: HashMap::new(),
                order: Vec::new(),
            }],
            entries: Vec::new(),
        }
    }

    /// How many column names were resolved (each once per page).
    pub(super) fn resolved(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn table(&mut self, name: &str) -> usize {
        let found = self
            .tables
            .iter()
            .position(|t| t.name.as_deref() == Some(name));
        found.unwrap_or_else(|| {
            self.tables.push(TableKeys {
                name: Some(name.to_string()),
                by_key: HashMap::new(),
                order: Vec::new(),
            });
            self.tables.len() - 1
        })
    }

    /// The entry of `key` in `table`; `guess` is where the previous column
    /// of this table left off, and is moved past the one found.
    fn entry(&mut self, schema: &Schema, table: usize, key: &str, guess: &mut usize) -> u32 {
        let id = self
            .find(table, key, *guess)
            .unwrap_or_else(|| self.add(schema, table, key));
        if let Some(e) = self.entries.get(id as usize) {
            *guess = e.pos + 1;
        }
        id
    }

    fn find(&self, table: usize, key: &str, guess: usize) -> Option<u32> {
        let t = self.tables.get(table)?;
        if let Some(&id) = t.order.get(guess) {
            if self.entries.get(id as usize).is_some_and(|e| e.key == key) {
                return Some(id);
            }
        }
        t.by_key.get(key).copied()
    }

    fn add(&mut self, schema: &Schema, table: usize, key: &str) -> u32 {
        let table_name = self.tables.get(table).and_then(|t| t.name.as_deref());
        let qualified = match table_name {
            Some(t) => format!("{t}.{key}").to_ascii_lowercase(),
            None => key.to_ascii_lowercase(),
        };
        let targets = match &schema.matching {
            Matching::AsSent => {
                let lower = key.to_ascii_lowercase();
                schema
                    .fields
                    .iter()
                    .position(|f| *f == lower)
                    .map(|i| (i, 0))
                    .into_iter()
                    .collect()
            }
            Matching::Candidates(candidates) => candidates
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.iter().position(|c| *c == qualified).map(|r| (i, r)))
                .collect(),
        };
        let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let Some(t) = self.tables.get_mut(table) else {
            return id;
        };
        t.by_key.insert(key.to_string(), id);
        let pos = t.order.len();
        t.order.push(id);
        self.entries.push(Entry {
            table,
            key: key.to_string(),
            qualified,
            targets,
            pos,
            on_page: false,
        });
        id
    }

    /// Whether `a` comes before `b` in a JSON object read back in key order
    /// (tables by name, then columns by name).
    fn before(&self, a: u32, b: u32) -> bool {
        let order = |id: u32| {
            self.entries.get(id as usize).map(|e| {
                let table = self.tables.get(e.table).and_then(|t| t.name.as_deref());
                (table, e.key.as_str())
            })
        };
        order(a) < order(b)
    }
}

/// The state of one page's reading: the schema, the resolved names, the
/// record being read and the records done.
pub(super) struct PageReader<'de, T> {
    pub(super) schema: &'de Schema,
    build: &'de Build<T>,
    pub(super) page: u32,
    pub(super) names: KeyTable,
    /// The record's own columns, and those under its `tables`.
    outer: Vec<Option<Slot<'de>>>,
    nested: Vec<Option<Slot<'de>>>,
    outer_keys: Vec<u32>,
    nested_keys: Vec<u32>,
    pub(super) has_tables: bool,
    /// Why the record being read cannot be typed: (table, message).
    error: Option<(String, String)>,
    pub(super) out: Page<T>,
}

impl<'de, T> PageReader<'de, T> {
    pub(super) fn new(schema: &'de Schema, build: &'de Build<T>, page: u32) -> Self {
        PageReader {
            schema,
            build,
            page,
            names: KeyTable::new(),
            outer: vec![None; schema.fields.len()],
            nested: vec![None; schema.fields.len()],
            outer_keys: Vec::new(),
            nested_keys: Vec::new(),
            has_tables: false,
            error: None,
            out: Page {
                records: Vec::new(),
                keys: BTreeSet::new(),
                shape: Ok(()),
                maybe_message: false,
                columns_resolved: 0,
            },
        }
    }

    pub(super) fn begin_record(&mut self) {
        self.outer.iter_mut().for_each(|s| *s = None);
        self.nested.iter_mut().for_each(|s| *s = None);
        self.outer_keys.clear();
        self.nested_keys.clear();
        self.has_tables = false;
        self.error = None;
    }

    /// One column of the record (`table` 0) or of one of its tables.
    pub(super) fn put(
        &mut self,
        table: usize,
        key: &str,
        guess: &mut usize,
        val: Option<Val<'de>>,
    ) {
        let id = self.names.entry(self.schema, table, key, guess);
        let (slots, keys) = if table == 0 {
            (&mut self.outer, &mut self.outer_keys)
        } else {
            (&mut self.nested, &mut self.nested_keys)
        };
        keys.push(id);
        let Some(val) = val else { return };
        let Some(entry) = self.names.entries.get(id as usize) else {
            return;
        };
        for &(field, rank) in &entry.targets {
            let Some(slot) = slots.get_mut(field) else {
                continue;
            };
            let wins = match slot {
                None => true,
                Some(old) => {
                    rank < old.rank || (rank == old.rank && self.names.before(id, old.entry))
                }
            };
            if wins {
                *slot = Some(Slot {
                    val: val.clone(),
                    rank,
                    entry: id,
                });
            }
        }
    }

    /// A table of a nested record that is no object: the record cannot be
    /// read (the first such table by name is named).
    pub(super) fn bad_table(&mut self, table: &str) {
        if self
            .error
            .as_ref()
            .is_some_and(|(t, _)| t.as_str() <= table)
        {
            return;
        }
        let message = format!("table {table:?} of a nested record is not a JSON object");
        self.error = Some((table.to_string(), message));
    }

    /// A record that is no JSON object.
    pub(super) fn not_a_record(&mut self, kind: &str) {
        let message = match self.schema.matching {
            Matching::Candidates(_) => "a guardian record must be a JSON object".to_string(),
            Matching::AsSent => format!("a record must be a JSON object, got {kind}"),
        };
        let index = self.out.records.len();
        self.out.records.push(Parsed {
            key: None,
            outcome: Err(Failure {
                page: self.page,
                index,
                record_id: place(self.page, index),
                error: FieldError {
                    field: "(record)".to_string(),
                    value: String::new(),
                    message,
                },
            }),
        });
    }

    /// The record's closing brace: type it.
    pub(super) fn end_record(&mut self) {
        let (slots, keys) = if self.has_tables {
            (&self.nested, &self.nested_keys)
        } else {
            (&self.outer, &self.outer_keys)
        };
        for &id in keys {
            if let Some(e) = self.names.entries.get_mut(id as usize) {
                e.on_page = true;
            }
        }
        let index = self.out.records.len();
        let key_columns = self.schema.key.unwrap_or(&["dcid"]);
        let failure = |row: Option<&dyn Record>, error: FieldError| Failure {
            page: self.page,
            index,
            record_id: record_id(key_columns, row, self.page, index),
            error,
        };
        let parsed = match self.error.take() {
            Some((_, message)) => Parsed {
                key: None,
                outcome: Err(failure(
                    None,
                    FieldError {
                        field: "(record)".to_string(),
                        value: String::new(),
                        message,
                    },
                )),
            },
            None => {
                let row = Row {
                    fields: self.schema.fields,
                    slots,
                };
                Parsed {
                    key: self.schema.key.and_then(|k| key_of(&row, k)),
                    outcome: (self.build)(&row).map_err(|e| failure(Some(&row), e)),
                }
            }
        };
        self.out.records.push(parsed);
    }

    /// The page as read, with its keys for the first-page check.
    fn finish(mut self) -> Page<T> {
        self.out.keys = self
            .names
            .entries
            .iter()
            .filter(|e| e.on_page)
            .map(|e| e.qualified.clone())
            .collect();
        self.out.columns_resolved = self.names.resolved();
        self.out
    }
}

/// Reads one page's bytes into typed records. Only a JSON syntax error (a
/// body cut off) is an `Err`; everything else is in the page.
pub(super) fn read_page<T>(
    schema: &Schema,
    build: &Build<T>,
    page: u32,
    bytes: &[u8],
) -> Result<Page<T>, serde_json::Error> {
    let mut reader = PageReader::new(schema, build, page);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    PageSeed(&mut reader).deserialize(&mut de)?;
    de.end()?;
    Ok(reader.finish())
}
