//! The one definition of a "normalised email" (access-rules.md, README decision 1):
//! every comparison of emails between PowerSchool and SchoolEngage goes
//! through here, so a capital letter or a stray space never locks a parent out.

use unicode_normalization::UnicodeNormalization;

/// Trimmed, Unicode NFC, lower-cased; `None` when the result is empty or
/// malformed, because such an address must match nobody.
pub fn normalise_email(raw: &str) -> Option<String> {
    let normalised: String = raw.trim().nfc().collect::<String>().to_lowercase();
    if is_well_formed(&normalised) {
        Some(normalised)
    } else {
        None
    }
}

/// `normalise_email` for the `Option<String>` fields PowerSchool hands us.
pub fn normalise_optional(raw: Option<&str>) -> Option<String> {
    raw.and_then(normalise_email)
}

/// README decision 1: exactly one '@', a local part and a domain, a '.' in the
/// domain, no whitespace anywhere. Deliberately no stricter: a district's
/// real addresses must not be refused by a pedantic RFC check.
fn is_well_formed(email: &str) -> bool {
    if email.chars().any(char::is_whitespace) {
        return false;
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && !domain.is_empty() && domain.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

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
