//! The serde visitors behind `page::read_page`: the page object, its
//! `record` list (or lone record), each record, its `tables` and each value.
//! They never fail on content, only on JSON syntax: whatever does not fit is
//! noted in the `PageReader` (a page-level shape error, or a record that
//! cannot be read) and the rest of the page is read on.

use super::page::{PageReader, Val};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// What kind of JSON value something was, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    List,
}

impl Kind {
    fn text(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::List => "a list",
        }
    }
}

/// Consumes a list whose content does not matter.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the scalar visits of a visitor that only wants their kind.
macro_rules! scalar_kinds {
    ($out:ty, $f:ident) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
            Ok(self.$f(Kind::Bool))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$out, E> {
            Ok(self.$f(Kind::Number))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$out, E> {
            Ok(self.$f(Kind::Number))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
            Ok(self.$f(Kind::Number))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$out, E> {
            Ok(self.$f(Kind::String))
        }
        fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
            Ok(self.$f(Kind::Null))
        }
        fn visit_none<E: de::Error>(self) -> Result<$out, E> {
            Ok(self.$f(Kind::Null))
        }
    };
}

/// As `scalar_kinds`, and a list (skipped) too.
macro_rules! kinds {
    ($out:ty, $f:ident) => {
        scalar_kinds!($out, $f);
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<$out, A::Error> {
            skip_seq(seq)?;
            Ok(self.$f(Kind::List))
        }
    };
}

/// A key, borrowed from the page when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The whole answer: an object with `record` (and maybe `count`, `name`).
pub(super) struct PageSeed<'r, 'de, T>(pub(super) &'r mut PageReader<'de, T>);

impl<'de, T> DeserializeSeed<'de> for PageSeed<'_, 'de, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> PageSeed<'_, 'de, T> {
    fn not_object(self, kind: Kind) {
        self.0.out.shape = Err(format!("the page is {}, not a JSON object", kind.text()));
    }
}

impl<'de, T> Visitor<'de> for PageSeed<'_, 'de, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a PowerQuery page")
    }
    kinds!((), not_object);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key.as_ref() {
                "record" => {
                    seen = true;
                    map.next_value_seed(RecordsSeed(&mut *self.0))?;
                }
                "count" => {
                    seen = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.0.out.maybe_message = !seen;
        Ok(())
    }
}

/// The value of `record`: a list of records, one record, or null.
struct RecordsSeed<'r, 'de, T>(&'r mut PageReader<'de, T>);

impl<'de, T> DeserializeSeed<'de> for RecordsSeed<'_, 'de, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> RecordsSeed<'_, 'de, T> {
    fn other(self, kind: Kind) {
        if kind != Kind::Null {
            self.0.out.shape = Err(format!("`record` is {}, not a list", kind.text()));
        }
    }
}

impl<'de, T> Visitor<'de> for RecordsSeed<'_, 'de, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }
    scalar_kinds!((), other);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RecordSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_record(self.0, map)
    }
}

/// One element of the `record` list.
struct RecordSeed<'r, 'de, T>(&'r mut PageReader<'de, T>);

impl<'de, T> DeserializeSeed<'de> for RecordSeed<'_, 'de, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> RecordSeed<'_, 'de, T> {
    fn not_object(self, kind: Kind) {
        self.0.not_a_record(kind.text());
    }
}

impl<'de, T> Visitor<'de> for RecordSeed<'_, 'de, T> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }
    kinds!((), not_object);
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_record(self.0, map)
    }
}

/// A record object: its own columns and, when it has them, its `tables`.
fn read_record<'de, T, A: MapAccess<'de>>(
    reader: &mut PageReader<'de, T>,
    mut map: A,
) -> Result<(), A::Error> {
    reader.begin_record();
    let mut guess = 0;
    while let Some(key) = map.next_key_seed(KeySeed)? {
        if key == "tables" {
            if let Some(val) = map.next_value_seed(TablesSeed(&mut *reader))? {
                reader.put(0, &key, &mut guess, val);
            }
        } else {
            let val = map.next_value_seed(ValueSeed)?;
            reader.put(0, &key, &mut guess, val);
        }
    }
    reader.end_record();
    Ok(())
}

/// `tables`: an object of tables (then `None`), or else a plain column's
/// value (`Some`), as a record without tables has.
struct TablesSeed<'r, 'de, T>(&'r mut PageReader<'de, T>);

impl<'de, T> DeserializeSeed<'de> for TablesSeed<'_, 'de, T> {
    type Value = Option<Option<Val<'de>>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> Visitor<'de> for TablesSeed<'_, 'de, T> {
    type Value = Option<Option<Val<'de>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the tables of a record")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        ValueSeed.visit_bool(v).map(Some)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        ValueSeed.visit_i64(v).map(Some)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        ValueSeed.visit_u64(v).map(Some)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        ValueSeed.visit_f64(v).map(Some)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        ValueSeed.visit_borrowed_str(v).map(Some)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        ValueSeed.visit_str(v).map(Some)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        ValueSeed.visit_seq(seq).map(Some)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let reader = self.0;
        reader.has_tables = true;
        while let Some(name) = map.next_key_seed(KeySeed)? {
            let table = reader.names.table(&name);
            let is_object = map.next_value_seed(TableSeed {
                reader: &mut *reader,
                table,
            })?;
            if !is_object {
                reader.bad_table(&name);
            }
        }
        Ok(None)
    }
}

/// One table of a nested record; `false` when it is no object.
struct TableSeed<'r, 'de, T> {
    reader: &'r mut PageReader<'de, T>,
    table: usize,
}

impl<'de, T> DeserializeSeed<'de> for TableSeed<'_, 'de, T> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<T> TableSeed<'_, '_, T> {
    fn not_object(self, _: Kind) -> bool {
        false
    }
}

impl<'de, T> Visitor<'de> for TableSeed<'_, 'de, T> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table of a record")
    }
    kinds!(bool, not_object);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut guess = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let val = map.next_value_seed(ValueSeed)?;
            self.reader.put(self.table, &key, &mut guess, val);
        }
        Ok(true)
    }
}

/// One column's value: `None` for NULL (`null` or blank text).
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Option<Val<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Trimmed text, `None` when blank.
fn text<'de>(t: Cow<'de, str>) -> Option<Val<'de>> {
    let trimmed = match t {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) if o.trim().len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
    };
    (!trimmed.is_empty()).then_some(Val::Text(trimmed))
}

/// A value that is no scalar, kept as its JSON so a problem can show it.
fn json_text<'de>(value: serde_json::Value) -> Option<Val<'de>> {
    text(Cow::Owned(value.to_string()))
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Option<Val<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column's value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Val::Text(Cow::Borrowed(if v { "1" } else { "0" }))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Val::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(match i64::try_from(v) {
            Ok(i) => Val::Int(i),
            Err(_) => Val::Text(Cow::Owned(v.to_string())),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // As `parse::scalar_text`: integers stay integers even as `121.0`.
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            return Ok(Some(Val::Int(v as i64)));
        }
        let text = serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        Ok(Some(Val::Text(Cow::Owned(text))))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(text(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = serde::Deserialize::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(json_text(value))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = serde::Deserialize::deserialize(MapAccessDeserializer::new(map))?;
        Ok(json_text(value))
    }
}
