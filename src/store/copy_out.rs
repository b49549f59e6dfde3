//! Tables read as COPY text: the one place a COPY line's fields are read.
//! A run reads every stored row of the mirrored tables (as keys and
//! digests, `LineKey`, `field`) and every user and connection (`FromLine`)
//! beside the fetch, which keeps both processors busy. Read as sqlx rows,
//! the users and connections alone took 12.5 % of a quiet night's
//! processor time (a `perf` profile); `COPY … TO STDOUT` hands the rows
//! over as text lines, read here field by field.

use super::state::{ConnectionRow, UserRow};
use super::{Doing, StoreError};
use futures::TryStreamExt;
use sqlx::PgConnection;
use std::str::FromStr;

/// Every line a `COPY … TO STDOUT` of `table` sends, handed to `each`;
/// `each` answers `None` for a line it cannot read, which fails the read.
pub(super) async fn read_lines(
    tx: &mut PgConnection,
    copy_out: &str,
    table: &str,
    mut each: impl FnMut(&[u8]) -> Option<()>,
) -> Result<(), StoreError> {
    let doing = || format!("reading {table}");
    let mut copy = tx.copy_out_raw(copy_out).await.doing(&doing())?;
    // PostgreSQL sends a row a message; a line split across two is put
    // back together all the same.
    let mut partial: Vec<u8> = Vec::new();
    while let Some(chunk) = copy.try_next().await.doing(&doing())? {
        let mut rest: &[u8] = &chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(end);
            rest = after.get(1..).unwrap_or_default();
            let line = match partial.is_empty() {
                true => line,
                false => {
                    partial.extend_from_slice(line);
                    partial.as_slice()
                }
            };
            each(line).ok_or_else(|| StoreError::UnreadableRow {
                table: table.to_string(),
                key: format!(
                    "{:?}",
                    String::from_utf8_lossy(field(line, 0).unwrap_or_default())
                ),
            })?;
            partial.clear();
        }
        partial.extend_from_slice(rest);
    }
    Ok(())
}

/// A mirrored table's key, read from the first fields of its COPY line.
pub(super) trait LineKey: Sized {
    /// How many fields the key takes.
    const WIDTH: usize;
    fn from_line(line: &[u8]) -> Option<Self>;
}

/// The `n`th tab-separated field of a COPY line, as written (`\\N` for NULL).
pub(super) fn field(line: &[u8], n: usize) -> Option<&[u8]> {
    line.split(|b| *b == b'\t').nth(n)
}

/// The `n`th field of a COPY line, as a number (read from its bytes as
/// `str::parse` would read them: a state holds millions of keys).
pub(super) fn number_field(line: &[u8], n: usize) -> Option<i64> {
    parse_number(field(line, n)?)
}

/// A number written in COPY text, read as `str::parse` reads it.
pub(super) fn parse_number(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    // Counted below zero, where i64 reaches one further.
    let mut below = 0i64;
    for &b in digits {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        below = below.checked_mul(10)?.checked_sub(i64::from(digit))?;
    }
    match negative {
        true => Some(below),
        false => below.checked_neg(),
    }
}

impl LineKey for i64 {
    const WIDTH: usize = 1;
    fn from_line(line: &[u8]) -> Option<i64> {
        number_field(line, 0)
    }
}

impl LineKey for (i64, i64) {
    const WIDTH: usize = 2;
    fn from_line(line: &[u8]) -> Option<(i64, i64)> {
        Some((number_field(line, 0)?, number_field(line, 1)?))
    }
}

/// Every row `select` returns, read from its COPY text lines (`select`'s
/// columns in the order `T::from_line` reads them).
pub(super) async fn read_rows<T: FromLine>(
    tx: &mut PgConnection,
    select: &str,
    table: &str,
) -> Result<Vec<T>, StoreError> {
    let mut rows = Vec::new();
    read_lines(tx, &format!("COPY ({select}) TO STDOUT"), table, |line| {
        rows.push(T::from_line(&mut Fields::of(line))?);
        Some(())
    })
    .await?;
    Ok(rows)
}

/// A row kind read from a COPY text line, its columns in `SELECT` order.
pub(super) trait FromLine: Sized {
    /// The row, or `None` if a field cannot be read or the line has more
    /// or fewer fields than the row.
    fn from_line(fields: &mut Fields<'_>) -> Option<Self>;
}

impl FromLine for UserRow {
    fn from_line(f: &mut Fields<'_>) -> Option<UserRow> {
        let row = UserRow {
            user_id: f.number()?,
            email: f.text()??,
            first_name: f.text()?.map(Into::into),
            last_name: f.text()?.map(Into::into),
            email_verified: f.boolean()?,
            incomplete: f.boolean()?,
            powerschool_guardian_id: f.optional_number()?,
        };
        f.end().map(|()| row)
    }
}

impl FromLine for ConnectionRow {
    fn from_line(f: &mut Fields<'_>) -> Option<ConnectionRow> {
        let row = ConnectionRow {
            id: f.number()?,
            student_dcid: f.number()?,
            user_id: f.number()?,
            tier: f.code()?,
            case: f.optional_code()?,
            limits: f.codes()?,
            origin: f.code()?,
            present_in_powerschool: f.boolean()?,
            powerschool_guardian_id: f.optional_number()?,
        };
        f.end().map(|()| row)
    }
}

/// The fields of one COPY text line, read in order. Each reader answers
/// `None` when the field is missing or is not of its type.
pub(super) struct Fields<'a> {
    rest: Option<&'a [u8]>,
}

/// How COPY text writes NULL.
const NULL: &[u8] = b"\\N";

impl<'a> Fields<'a> {
    pub(super) fn of(line: &'a [u8]) -> Fields<'a> {
        Fields { rest: Some(line) }
    }

    fn next_field(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|b| *b == b'\t') {
            Some(tab) => {
                self.rest = rest.get(tab + 1..);
                rest.get(..tab)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }

    /// The next field, `None` inside for NULL.
    fn nullable(&mut self) -> Option<Option<&'a [u8]>> {
        self.next_field().map(|f| (f != NULL).then_some(f))
    }

    pub(super) fn number(&mut self) -> Option<i64> {
        parse_number(self.next_field()?)
    }

    pub(super) fn optional_number(&mut self) -> Option<Option<i64>> {
        match self.nullable()? {
            Some(f) => parse_number(f).map(Some),
            None => Some(None),
        }
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.next_field()? {
            b"t" => Some(true),
            b"f" => Some(false),
            _ => None,
        }
    }

    /// A text field, its escapes undone.
    pub(super) fn text(&mut self) -> Option<Option<String>> {
        match self.nullable()? {
            Some(f) => unescape(f).map(Some),
            None => Some(None),
        }
    }

    fn code<T: FromStr>(&mut self) -> Option<T> {
        std::str::from_utf8(self.next_field()?).ok()?.parse().ok()
    }

    fn optional_code<T: FromStr>(&mut self) -> Option<Option<T>> {
        match self.nullable()? {
            Some(f) => std::str::from_utf8(f).ok()?.parse().ok().map(Some),
            None => Some(None),
        }
    }

    /// A `text[]` of codes (`{R4,R5}`): codes are plain words, never
    /// quoted, escaped or NULL (the tables' `CHECK` constraints).
    fn codes<T: FromStr>(&mut self) -> Option<Vec<T>> {
        let field = std::str::from_utf8(self.next_field()?).ok()?;
        let inner = field.strip_prefix('{')?.strip_suffix('}')?;
        match inner.is_empty() {
            true => Some(Vec::new()),
            false => inner.split(',').map(|c| c.parse().ok()).collect(),
        }
    }

    /// Every field has been read.
    pub(super) fn end(&mut self) -> Option<()> {
        self.rest.is_none().then_some(())
    }
}

/// A COPY text value with its backslash escapes undone (PostgreSQL writes
/// `\\`, `\b`, `\f`, `\n`, `\r`, `\t` and `\v`; any other escaped byte
/// stands for itself, as COPY FROM reads it). `None` if not UTF-8.
fn unescape(field: &[u8]) -> Option<String> {
    if !field.contains(&b'\\') {
        return std::str::from_utf8(field).ok().map(str::to_string);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next()? {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            other => *other,
        });
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::state::{SELECT_CONNECTIONS, SELECT_USERS};

    /// Users and connections with every kind of value, read as COPY lines
    /// and as sqlx rows: the same rows.
    #[sqlx::test]
    async fn rows_read_as_copy_text_are_the_rows_sqlx_reads(pool: sqlx::PgPool) {
        sqlx::raw_sql(
            r#"
            INSERT INTO users (id, email, first_name, last_name, email_verified, incomplete,
                               powerschool_guardian_id) VALUES
              (1, 'a@example.org', 'Ana', 'Lee', true, false, 10),
              (2, 'b@example.org', NULL, NULL, false, true, NULL),
              (3, 'c\d@example.org', E'Tab\there', E'New\nline\\back', false, false, -5),
              (4, 'd@example.org', 'Zoë Ñúñez 李', E'\b\f\r\v', true, true, 9223372036854775807),
              (5, 'e@example.org', '', '\N', false, false, NULL);
            INSERT INTO connections (id, student_dcid, user_id, tier, case_code, limits, origin,
                                     present_in_powerschool, powerschool_guardian_id) VALUES
              (1, 100, 1, 'full', 'synced', '{}', 'powerschool', true, 10),
              (2, 100, 2, 'restricted', NULL, '{R4}', 'admin', false, NULL),
              (3, 101, 3, 'read_only', 'matched_form_creator', '{R4,R5}', 'form', false, -5),
              (4, 102, 4, 'incomplete', 'created', '{R5}', 'powerschool', true, NULL),
              (5, 103, 5, 'full', 'schoolengage_only', '{}', 'admin', false, NULL),
              (6, 104, 1, 'restricted', 'unlinked_returning_parent', '{R5,R4}', 'form', true, 7);
            "#,
        )
        .execute(&pool)
        .await
        .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let users: Vec<UserRow> = read_rows(&mut conn, &SELECT_USERS, "users").await.unwrap();
        let expected: Vec<UserRow> = sqlx::query_as(&SELECT_USERS)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(users.len(), 5);
        assert_eq!(users, expected);
        assert_eq!(users[2].first_name.as_deref(), Some("Tab\there"));
        assert_eq!(
            users[4].last_name.as_deref(),
            Some("\\N"),
            "a text, not NULL"
        );
        let connections: Vec<ConnectionRow> =
            read_rows(&mut conn, &SELECT_CONNECTIONS, "connections")
                .await
                .unwrap();
        let expected: Vec<ConnectionRow> = sqlx::query_as(&SELECT_CONNECTIONS)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(connections.len(), 6);
        assert_eq!(connections, expected);
    }

    #[test]
    fn a_number_field_reads_as_str_parse_reads_it() {
        let cases = [
            "0",
            "7",
            "-12",
            "+3",
            "007",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "-",
            "+",
            "1a",
            " 1",
            "\\N",
            "1.5",
            "--1",
            "١",
        ];
        for case in cases {
            let line = format!("x\t{case}\ty");
            assert_eq!(
                number_field(line.as_bytes(), 1),
                case.parse::<i64>().ok(),
                "{case:?}"
            );
        }
        assert_eq!(number_field(b"5", 1), None, "no such field");
    }

    #[test]
    fn keys_are_read_from_the_first_fields() {
        assert_eq!(<(i64, i64)>::from_line(b"7\t1\tAna"), Some((7, 1)));
        assert_eq!(i64::from_line(b"-12\tx"), Some(-12));
        assert_eq!(i64::from_line(b"\\N\tx"), None);
    }

    /// A stored value the row kind cannot hold fails the read, naming the
    /// table and the row's key.
    #[sqlx::test]
    async fn a_row_that_cannot_be_read_is_named_with_its_table(pool: sqlx::PgPool) {
        sqlx::raw_sql(
            "ALTER TABLE connections DROP CONSTRAINT connections_tier_check;
             INSERT INTO users (id, email) VALUES (1, 'a@example.org');
             INSERT INTO connections (id, student_dcid, user_id, tier, origin)
                 VALUES (77, 100, 1, 'super', 'admin');",
        )
        .execute(&pool)
        .await
        .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let err = read_rows::<ConnectionRow>(&mut conn, &SELECT_CONNECTIONS, "connections")
            .await
            .unwrap_err();
        let StoreError::UnreadableRow { table, key } = &err else {
            panic!("{err}");
        };
        assert_eq!((table.as_str(), key.as_str()), ("connections", "\"77\""));
        assert!(err.to_string().contains("\\d connections"), "{err}");
    }

    #[test]
    fn a_line_with_a_field_too_many_or_too_few_is_not_read() {
        let line = b"1\ta@example.org\tAna\t\\N\tt\tf\t\\N";
        assert!(UserRow::from_line(&mut Fields::of(line)).is_some());
        assert!(UserRow::from_line(&mut Fields::of(b"1\ta@example.org\tAna\t\\N\tt\tf")).is_none());
        let longer = [&line[..], b"\t7"].concat();
        assert!(UserRow::from_line(&mut Fields::of(&longer)).is_none());
        let unknown_tier = b"1\t2\t3\tsuper\t\\N\t{}\tadmin\tf\t\\N";
        assert!(ConnectionRow::from_line(&mut Fields::of(unknown_tier)).is_none());
    }
}
