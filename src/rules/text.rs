//! What a text or date value from PowerSchool must look like before the
//! sync keeps it (docs/powerschool.md, "Values the sync refuses"). Pure: each
//! check takes one value and says what to keep or why the value is refused;
//! `sync` applies them to every field of every fetched record.
//!
//! The rules, per kind of field:
//! - names and other short text (student numbers, enrolment types): control
//!   characters (NUL, tab, line breaks, DEL, C1) refuse the value; invisible
//!   format characters (zero-width, bidi controls) are stripped, since they
//!   change nothing a reader sees; longer than `MAX_NAME_CHARS` refuses it;
//! - emails: a control or format character, or more than
//!   `MAX_EMAIL_BYTES` bytes, refuses the value (it would match nobody anyway,
//!   project decision 1);
//! - dates: outside `EARLIEST_DATE..=LATEST_DATE` refuses the value.
//!
//! A refused value is read as empty and reported; the record itself is kept.

use super::email::MAX_EMAIL_BYTES;
use super::Name;
use chrono::NaiveDate;

/// The longest name (first or last name of a student, guardian or contact,
/// a school's name) or other short text field the sync keeps, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// How much of a refused value a problem shows, in characters.
pub const SHOWN_CHARS: usize = 200;

/// The earliest and latest dates the sync accepts from PowerSchool.
pub const EARLIEST_DATE: (i32, u32, u32) = (1900, 1, 1);
pub const LATEST_DATE: (i32, u32, u32) = (2200, 12, 31);

/// Why a value was refused, in words a problem can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The value holds a control character (NUL, a line break, …) at this
    /// character position (from 1).
    ControlCharacter { position: usize, code: u32 },
    /// An email holds an invisible format character (zero-width, bidi).
    FormatCharacter { position: usize, code: u32 },
    /// Longer than allowed.
    TooLong {
        length: usize,
        max: usize,
        unit: &'static str,
    },
    /// A date outside the years the sync accepts.
    DateOutOfRange,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ControlCharacter { position, code } => write!(
                f,
                "holds the control character U+{code:04X} at character {position}"
            ),
            Refusal::FormatCharacter { position, code } => write!(
                f,
                "holds the invisible character U+{code:04X} at character {position}, so it can match nobody"
            ),
            Refusal::TooLong { length, max, unit } => {
                write!(f, "is {length} {unit} long; at most {max} are kept")
            }
            Refusal::DateOutOfRange => write!(
                f,
                "is outside {}-{:02}-{:02} to {}-{:02}-{:02}",
                EARLIEST_DATE.0,
                EARLIEST_DATE.1,
                EARLIEST_DATE.2,
                LATEST_DATE.0,
                LATEST_DATE.1,
                LATEST_DATE.2
            ),
        }
    }
}

/// A control character: C0 (NUL to U+001F), DEL and C1 (U+0080 to U+009F).
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// An invisible format character: the soft hyphen, zero-width characters
/// and joiners, bidi marks, embeddings, overrides and isolates, the word
/// joiner and invisible operators, the byte-order mark, interlinear
/// annotation marks and tag characters.
pub fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Printable ASCII only (space to `~`), as nearly every name and email is:
/// no control or format character can be in it, so the checks below skip
/// their scans by character.
fn printable_ascii(value: &str) -> bool {
    value.bytes().all(|b| matches!(b, b' '..=b'~'))
}

fn first_control(value: &str) -> Option<Refusal> {
    value
        .chars()
        .enumerate()
        .find(|(_, c)| is_control(*c))
        .map(|(i, c)| Refusal::ControlCharacter {
            position: i + 1,
            code: c as u32,
        })
}

/// A name or other short text: what to keep (`None` when only invisible
/// characters were sent), or why it is refused.
pub fn check_name(raw: &str) -> Result<Option<Name>, Refusal> {
    let ascii = printable_ascii(raw);
    if let Some(refusal) = (!ascii).then(|| first_control(raw)).flatten() {
        return Err(refusal);
    }
    // Nearly every name has no format character: it is then kept as read.
    let kept: std::borrow::Cow<'_, str> = match !ascii && raw.chars().any(is_format) {
        true => raw
            .chars()
            .filter(|c| !is_format(*c))
            .collect::<String>()
            .into(),
        false => raw.into(),
    };
    let kept = kept.trim();
    let length = match ascii {
        true => kept.len(),
        false => kept.chars().count(),
    };
    if length > MAX_NAME_CHARS {
        return Err(Refusal::TooLong {
            length,
            max: MAX_NAME_CHARS,
            unit: "characters",
        });
    }
    Ok((!kept.is_empty()).then(|| Name::from(kept)))
}

/// An email as PowerSchool holds it: kept unchanged (it is normalised where
/// it is compared), or refused.
pub fn check_email(raw: &str) -> Result<(), Refusal> {
    let ascii = printable_ascii(raw);
    if let Some(refusal) = (!ascii).then(|| first_control(raw)).flatten() {
        return Err(refusal);
    }
    let format = || raw.chars().enumerate().find(|(_, c)| is_format(*c));
    if let Some((i, c)) = (!ascii).then(format).flatten() {
        return Err(Refusal::FormatCharacter {
            position: i + 1,
            code: c as u32,
        });
    }
    if raw.len() > MAX_EMAIL_BYTES {
        return Err(Refusal::TooLong {
            length: raw.len(),
            max: MAX_EMAIL_BYTES,
            unit: "bytes",
        });
    }
    Ok(())
}

/// A date the sync accepts.
pub fn check_date(date: NaiveDate) -> Result<(), Refusal> {
    let bound = |(y, m, d): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, d);
    match (bound(EARLIEST_DATE), bound(LATEST_DATE)) {
        (Some(earliest), Some(latest)) if (earliest..=latest).contains(&date) => Ok(()),
        _ => Err(Refusal::DateOutOfRange),
    }
}

/// A value as a problem shows it: control and format characters written as
/// `\u{..}`, at most `SHOWN_CHARS` characters (then `…`). The result holds
/// no NUL or other control character, so the database can always store it.
pub fn shown(value: &str) -> String {
    shown_at_most(value, SHOWN_CHARS)
}

/// `shown` with another length limit (a problem's message is allowed more).
pub fn shown_at_most(value: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (count, c) in value.chars().enumerate() {
        if count >= max_chars {
            out.push('…');
            break;
        }
        if is_control(c) || is_format(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_control_characters_and_strip_invisible_ones() {
        assert_eq!(check_name("Ana"), Ok(Some("Ana".into())));
        assert_eq!(
            check_name("Ana\u{0}Lee"),
            Err(Refusal::ControlCharacter {
                position: 4,
                code: 0
            })
        );
        assert!(check_name("Ana\tLee").is_err());
        assert!(check_name("Ana\u{85}").is_err(), "C1 NEL");
        assert_eq!(
            check_name("\u{202E}Ana\u{200B} Lee\u{2066}"),
            Ok(Some("Ana Lee".into()))
        );
        assert_eq!(check_name("\u{200B}"), Ok(None));
        // Combining marks and non-Latin scripts are names like any other.
        assert_eq!(
            check_name("Rene\u{301} \u{5d3}\u{5d5}\u{5d3}"),
            Ok(Some("Rene\u{301} \u{5d3}\u{5d5}\u{5d3}".into()))
        );
    }

    #[test]
    fn overlong_names_are_refused_at_the_documented_length() {
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        let e = check_name(&"é".repeat(MAX_NAME_CHARS + 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is 101 characters long; at most 100 are kept"
        );
    }

    #[test]
    fn emails_refuse_control_format_and_overlong_values() {
        assert_eq!(check_email("Mei.Lee@Example.com"), Ok(()));
        assert!(check_email("a\u{0}@x.org").is_err());
        assert!(matches!(
            check_email("a\u{200B}@x.org"),
            Err(Refusal::FormatCharacter { position: 2, .. })
        ));
        let long = format!("{}@example.com", "a".repeat(3000));
        assert!(matches!(
            check_email(&long),
            Err(Refusal::TooLong { max: 254, .. })
        ));
    }

    #[test]
    fn plain_ascii_takes_the_short_way_to_the_same_answers() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            let (name, email) = (format!("A{c}b"), format!("a{c}b@x.org"));
            assert_eq!(check_name(&name).is_err(), c.is_control(), "{b:#x}");
            assert_eq!(check_email(&email).is_err(), c.is_control(), "{b:#x}");
        }
        assert_eq!(check_name("  Ana Lee "), Ok(Some("Ana Lee".into())));
        assert_eq!(check_name("   "), Ok(None));
        assert!(check_name(&format!(" {} ", "x".repeat(MAX_NAME_CHARS))).is_ok());
        let e = check_name(&"x".repeat(MAX_NAME_CHARS + 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is 101 characters long; at most 100 are kept"
        );
    }

    #[test]
    fn dates_outside_1900_to_2200_are_refused() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert!(check_date(d(0, 1, 1)).is_err());
        assert!(check_date(d(1899, 12, 31)).is_err());
        assert!(check_date(d(1900, 1, 1)).is_ok());
        assert!(check_date(d(2200, 12, 31)).is_ok());
        assert!(check_date(d(2201, 1, 1)).is_err());
    }

    #[test]
    fn shown_values_are_escaped_and_truncated() {
        assert_eq!(shown("a\u{0}b\u{202e}"), "a\\u{0000}b\\u{202e}");
        let long = shown(&"x".repeat(3000));
        assert_eq!(long.chars().count(), SHOWN_CHARS + 1);
        assert!(long.ends_with('…'));
        assert!(!shown("\u{0}\u{1}\u{7f}").chars().any(char::is_control));
    }
}
