//! The one definition of a "normalised email" (access-rules.md, README decision 1):
//! every comparison of emails between PowerSchool and SchoolEngage goes
//! through here, so a capital letter or a stray space never locks a parent out.

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// The longest address the mail standards allow (RFC 5321's path limit), in
/// bytes. A longer one is malformed.
pub const MAX_EMAIL_BYTES: usize = 254;

/// How many rounds of trim, NFC and lower-case an address may need before
/// nothing changes. Lower-casing can make a pair NFC composes (`J` + caron
/// becomes `j` + caron, which NFC makes `ǰ`), so one round is not always
/// enough; two are for every string we know of. An address still changing
/// after this many rounds is malformed.
const MAX_ROUNDS: usize = 4;

/// Trimmed, Unicode NFC, lower-cased, repeated until nothing changes (so
/// normalising a normalised address gives it back, for every string);
/// `None` when the result is empty or malformed, because such an address
/// must match nobody.
pub fn normalise_email(raw: &str) -> Option<String> {
    // ASCII (nearly every real address): NFC changes nothing and lower-case
    // stays ASCII, so one round is the fixed point; no Unicode tables needed.
    if raw.is_ascii() {
        let current = raw.trim().to_ascii_lowercase();
        return is_well_formed(&current).then_some(current);
    }
    let mut current = one_round(raw);
    for _ in 1..MAX_ROUNDS {
        let next = one_round(&current);
        if next == current {
            return is_well_formed(&current).then_some(current);
        }
        current = next;
    }
    None
}

fn one_round(raw: &str) -> String {
    let trimmed = raw.trim();
    // Text the quick check finds already NFC is left as it is (NFC of it is itself).
    if is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
        trimmed.to_lowercase()
    } else {
        trimmed.nfc().collect::<String>().to_lowercase()
    }
}

/// `normalise_email` for the `Option<String>` fields PowerSchool hands us.
pub fn normalise_optional(raw: Option<&str>) -> Option<String> {
    raw.and_then(normalise_email)
}

/// README decision 1: exactly one '@', a local part and a domain, a '.' in the
/// domain, no whitespace, control or invisible format character anywhere
/// (zero-width, bidi), at most `MAX_EMAIL_BYTES` bytes. Deliberately no stricter: a district's
/// real addresses must not be refused by a pedantic RFC check.
fn is_well_formed(email: &str) -> bool {
    if email.len() > MAX_EMAIL_BYTES || has_unwanted(email) {
        return false;
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && !domain.is_empty() && domain.contains('.')
}

/// Whether the address holds whitespace, a control character or an
/// invisible format character. In ASCII (nearly every address) those are
/// the bytes up to the space, and DEL: no format character is ASCII. A run
/// checks every address of the district, so ASCII is checked byte by byte.
fn has_unwanted(email: &str) -> bool {
    if email.is_ascii() {
        email.bytes().any(|b| b <= b' ' || b == 0x7f)
    } else {
        email.chars().any(is_unwanted)
    }
}

fn is_unwanted(c: char) -> bool {
    c.is_whitespace() || super::text::is_control(c) || super::text::is_format(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_check_refuses_exactly_the_characters_the_full_check_does() {
        for b in 0u8..128 {
            let email = format!("a{}b@example.org", b as char);
            let expected = !is_unwanted(b as char) && b != b'@';
            assert_eq!(is_well_formed(&email), expected, "byte {b:#04x}");
        }
    }

    #[test]
    fn case_and_surrounding_whitespace_do_not_matter() {
        assert_eq!(
            normalise_email("  Mei.Lee@Example.COM\t"),
            Some("mei.lee@example.com".to_string())
        );
    }

    #[test]
    fn decomposed_and_composed_accents_are_the_same_address() {
        // "é" as e + combining acute (NFD) and as one code point (NFC).
        let decomposed = "Rene\u{301}@example.fr";
        let composed = "ren\u{e9}@example.fr";
        assert_eq!(normalise_email(decomposed), normalise_email(composed));
        assert_eq!(
            normalise_email(decomposed),
            Some("ren\u{e9}@example.fr".into())
        );
    }

    #[test]
    fn empty_and_malformed_emails_match_nothing() {
        for bad in [
            "",
            "   ",
            "no-at-sign.example.com",
            "two@@example.com",
            "a@b@example.com",
            "@example.com",
            "someone@",
            "someone@localhost",
            "some one@example.com",
            "someone@exa mple.com",
            "someone@example.com\u{a0}x",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad:?} should be malformed");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in [" A@B.C ", "Mei.Lee@Example.com", "Ren\u{e9}@x.fr"] {
            let once = normalise_email(raw).unwrap();
            assert_eq!(normalise_email(&once), Some(once.clone()));
        }
    }

    #[test]
    fn optional_missing_email_is_none() {
        assert_eq!(normalise_optional(None), None);
        assert_eq!(normalise_optional(Some("x@y.z")), Some("x@y.z".into()));
    }
}
