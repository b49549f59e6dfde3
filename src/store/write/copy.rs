//! PostgreSQL's COPY text format and the staging it feeds: rows are encoded
//! straight into COPY chunks (no per-column copies), streamed into a
//! temporary staging table, and merged into their live table with one
//! set-based statement.

use super::Tx;
use crate::rules::{AccessTier, ConnectionCase, Limit, Origin};
use crate::store::{Doing, StoreError};

/// Rows go to PostgreSQL through `COPY … FROM STDIN` (text format) in
/// chunks of about this many bytes: no per-column copies of the rows, and
/// the server parses them at COPY speed.
const COPY_CHUNK: usize = 1 << 20;

/// One value in PostgreSQL's COPY text format.
pub(super) trait CopyValue {
    fn put(&self, out: &mut Vec<u8>);
}

impl CopyValue for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl CopyValue for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(if *self { b't' } else { b'f' });
    }
}

impl CopyValue for str {
    /// Copied a run at a time between the bytes COPY escapes (nearly every
    /// value has none).
    fn put(&self, out: &mut Vec<u8>) {
        let bytes = self.as_bytes();
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            let escaped: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                // As PostgreSQL's COPY TO writes them (see `store::digest`).
                0x08 => b"\\b",
                0x0b => b"\\v",
                0x0c => b"\\f",
                _ => continue,
            };
            out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
            out.extend_from_slice(escaped);
            start = i + 1;
        }
        out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    }
}

impl CopyValue for String {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_str().put(out)
    }
}

impl CopyValue for crate::rules::Name {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_str().put(out)
    }
}

impl CopyValue for chrono::NaiveDate {
    /// `YYYY-MM-DD`, as PostgreSQL writes an ISO date (the screen keeps
    /// only years 1900 to 2200).
    fn put(&self, out: &mut Vec<u8>) {
        use chrono::Datelike;
        let (year, month, day) = (self.year(), self.month(), self.day());
        if !(1000..=9999).contains(&year) {
            use std::io::Write;
            let _ = write!(out, "{}", self.format("%Y-%m-%d"));
            return;
        }
        let two = |n: u32, out: &mut Vec<u8>| {
            out.push(b'0' + (n / 10 % 10) as u8);
            out.push(b'0' + (n % 10) as u8);
        };
        let year = year.unsigned_abs();
        two(year / 100, out);
        two(year % 100, out);
        out.push(b'-');
        two(month, out);
        out.push(b'-');
        two(day, out);
    }
}

impl<T: CopyValue + ?Sized> CopyValue for &T {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out)
    }
}

impl<T: CopyValue> CopyValue for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.put(out),
            None => out.extend_from_slice(b"\\N"),
        }
    }
}

/// The rules' codes, as their strum spelling (see `codes`).
macro_rules! copy_code {
    ($($code:ty),+) => {$(
        impl CopyValue for $code {
            fn put(&self, out: &mut Vec<u8>) {
                self.as_str().put(out)
            }
        }
    )+};
}
copy_code!(AccessTier, ConnectionCase, Limit, Origin);

/// A text array of short codes (no quoting needed: letters, digits, `_`).
pub(super) struct CodeArray<'a, T>(pub(super) &'a [T]);

impl<T: CopyValue> CopyValue for CodeArray<'_, T> {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, code) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            code.put(out);
        }
        out.push(b'}');
    }
}

/// Appends one COPY text row (tab-separated, newline-terminated).
macro_rules! copy_row {
    ($out:expr; $first:expr $(, $rest:expr)* $(,)?) => {{
        let out: &mut Vec<u8> = $out;
        $crate::store::write::copy::CopyValue::put(&$first, out);
        $(
            out.push(b'\t');
            $crate::store::write::copy::CopyValue::put(&$rest, out);
        )*
        out.push(b'\n');
    }};
}
pub(super) use copy_row;

/// Streams rows into `statement` (a `COPY … FROM STDIN`) on the run's
/// transaction; returns how many rows PostgreSQL took. The rows come as
/// slices (no iterator is held across an await, so the future stays `Send`).
pub(super) async fn copy_in<T>(
    tx: &mut Tx<'_>,
    statement: &str,
    parts: &[&[T]],
    encode: impl Fn(&mut Vec<u8>, &T) + Send + Sync,
    doing: &str,
) -> Result<u64, StoreError> {
    let mut copy = (**tx).copy_in_raw(statement).await.doing(doing)?;
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + (64 << 10));
    for row in parts.iter().flat_map(|part| part.iter()) {
        encode(&mut buf, row);
        if buf.len() >= COPY_CHUNK {
            copy.send(buf.as_slice()).await.doing(doing)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice()).await.doing(doing)?;
    }
    drop(buf);
    copy.finish().await.doing(doing)
}

/// A temporary staging table for one kind of row, private to the run's
/// transaction (dropped at its end), emptied before each use. The live
/// tables only change through the set-based statement that follows.
async fn stage(tx: &mut Tx<'_>, table: &str, columns: &str, doing: &str) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DROP"
    ))
    .execute(&mut **tx)
    .await
    .doing(doing)?;
    sqlx::query(&format!("TRUNCATE {table}"))
        .execute(&mut **tx)
        .await
        .doing(doing)?;
    Ok(())
}

/// A temporary staging table: its name, its columns (as in `CREATE TABLE`),
/// and what writing through it is called in errors.
pub(super) struct Staging<'a> {
    pub table: &'a str,
    pub columns: &'a str,
    pub doing: &'a str,
}

/// Stages rows of one kind: an emptied staging table, then the rows
/// streamed into it with COPY. Returns how many rows were staged.
pub(super) async fn stage_rows<T>(
    tx: &mut Tx<'_>,
    staging: &Staging<'_>,
    parts: &[&[T]],
    encode: impl Fn(&mut Vec<u8>, &T) + Send + Sync,
) -> Result<u64, StoreError> {
    let Staging {
        table,
        columns,
        doing,
    } = *staging;
    stage(tx, table, columns, doing).await?;
    copy_in(
        tx,
        &format!("COPY {table} FROM STDIN"),
        parts,
        encode,
        doing,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_and_nulls() {
        let mut out = Vec::new();
        let none: Option<String> = None;
        copy_row!(&mut out; 5i64, "a\tb\\c\nd\re\u{8}\u{b}\u{c}", none, Some(true), CodeArray(&["R4", "R5"]));
        copy_row!(&mut out; CodeArray::<Limit>(&[]), chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap());
        copy_row!(&mut out; -42i64, i64::MIN, chrono::NaiveDate::from_ymd_opt(1900, 12, 31).unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "5\ta\\tb\\\\c\\nd\\re\\b\\v\\f\t\\N\tt\t{R4,R5}\n{}\t2026-01-02\n-42\t-9223372036854775808\t1900-12-31\n"
        );
    }
}
