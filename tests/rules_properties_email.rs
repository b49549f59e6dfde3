#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Property tests of email normalisation (`normalise_email`, README decision
//! 1 and `docs/access-rules.md`) over arbitrary and deliberately hard Unicode
//! strings: normalising twice equals normalising once and gives a well-formed
//! address, the fast paths (ASCII, text already in NFC) give exactly the
//! answer of the definition as written, and the known hard cases are fixed
//! points.

use proptest::prelude::*;
use student_sync::rules::normalise_email;
use unicode_normalization::UnicodeNormalization;

/// Characters that make normalisation hard: any code point, combining marks,
/// capitals whose lower case NFC then composes (J + caron), letters whose
/// lower case is longer (İ) or context-dependent (Σ), title-case digraphs,
/// compatibility and format characters, and plain ASCII.
fn hard_char() -> impl Strategy<Value = char> {
    prop_oneof![
        any::<char>(),
        proptest::char::range('\u{300}', '\u{36f}'),
        proptest::char::range('\u{1ab0}', '\u{1aff}'),
        proptest::char::range('A', 'Z'),
        proptest::char::range('a', 'z'),
        prop::sample::select(vec![
            'J', 'İ', 'Σ', 'ẞ', 'ǅ', 'Å', 'Ω', 'K', '\u{212b}', '\u{1e9e}', '\u{200b}', '\u{202e}',
            '.', '@', ' ', '\u{a0}', '\u{0}',
        ]),
    ]
}

fn hard_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(hard_char(), 0..max).prop_map(|cs| cs.into_iter().collect())
}

/// Arbitrary strings, and strings shaped like addresses (so that many are
/// well formed and the property is not only about `None`).
fn email_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        hard_text(24),
        (hard_text(10), hard_text(8), hard_text(4))
            .prop_map(|(local, domain, tld)| format!(" {local}@{domain}.{tld}\t")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Normalising twice is normalising once, for every Unicode string: a
    /// normalised address normalises to itself, and is well formed.
    #[test]
    fn normalising_an_email_twice_equals_normalising_it_once(raw in email_like()) {
        if let Some(once) = normalise_email(&raw) {
            prop_assert_eq!(normalise_email(&once), Some(once.clone()), "raw {:?}", raw);
            prop_assert!(once.len() <= 254);
            prop_assert!(!once.chars().any(|c| c.is_control() || c.is_whitespace()));
        }
    }
}

/// The definition of README decision 1 as written, with no shortcut: trim,
/// NFC and lower-case, repeated until nothing changes (at most 4 rounds),
/// then the well-formedness check. `normalise_email` skips NFC for ASCII and
/// for text the quick check finds already NFC; this is what it must equal.
fn normalise_by_definition(raw: &str) -> Option<String> {
    let round = |s: &str| s.trim().nfc().collect::<String>().to_lowercase();
    let mut current = round(raw);
    for _ in 1..4 {
        let next = round(&current);
        if next == current {
            let mut parts = current.split('@');
            let well_formed = current.len() <= 254
                && !current.chars().any(|c| {
                    c.is_whitespace()
                        || student_sync::rules::text::is_control(c)
                        || student_sync::rules::text::is_format(c)
                })
                && matches!(
                    (parts.next(), parts.next(), parts.next()),
                    (Some(l), Some(d), None) if !l.is_empty() && !d.is_empty() && d.contains('.')
                );
            return well_formed.then_some(current);
        }
        current = next;
    }
    None
}

/// ASCII addresses as PowerSchool holds them: any case, stray whitespace
/// and control characters.
fn ascii_email() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~\t\n\r\x0b\x0c\x1c-\x1f]{0,30}",
        "[ \t]{0,2}[A-Za-z0-9._+-]{1,12}@[A-Za-z0-9-]{1,8}\\.[A-Za-z]{2,4}[ \t\r\n]{0,2}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// The fast paths (ASCII, already NFC) give exactly the definition's answer.
    #[test]
    fn the_fast_paths_normalise_exactly_as_the_definition(
        raw in prop_oneof![email_like(), ascii_email()]
    ) {
        prop_assert_eq!(normalise_email(&raw), normalise_by_definition(&raw), "raw {:?}", raw);
    }
}

/// The properties above are not vacuous: address-shaped strings of the
/// generator are well formed often, and the known hard cases are fixed points.
#[test]
fn email_normalisation_hard_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = email_like();
    let well_formed = (0..600)
        .filter(|_| {
            let raw = strategy.new_tree(&mut runner).unwrap().current();
            normalise_email(&raw).is_some()
        })
        .count();
    assert!(
        well_formed >= 30,
        "only {well_formed} of 600 were well formed"
    );
    let once = normalise_email("J\u{30C}ane@Example.com").unwrap();
    assert_eq!(once, "\u{1f0}ane@example.com");
    assert_eq!(normalise_email(&once), Some(once.clone()));
    assert_eq!(
        normalise_email("\u{1f0}ane@example.com"),
        normalise_email("j\u{30C}ane@example.com")
    );
}
