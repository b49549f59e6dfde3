#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Property tests of the pure rules engine (issue 4, point 7): changes to the
//! district facts that must not change the decisions, over generated,
//! deliberately messy district facts (the generators are in
//! `tests/common/rules_gen.rs`). The order of the rows, Web Access rows (R1),
//! the own emails of a student who is not independent, and the case, padding
//! and Unicode composition of emails change nothing; a contact that stops
//! being decision-making (R4) never raises a tier.

mod common;

use common::rules_gen::{district, rank, shuffled};
use proptest::prelude::*;
use student_sync::rules::{
    decide, AccessTier, ConnectionAction, ConnectionCase, Decisions, Limit, UserRef,
};
use unicode_normalization::UnicodeNormalization;

/// A decision without its prose, for comparing two runs whose verdict
/// texts may legitimately differ (they quote the rows they looked at).
type Summary = (
    i64,
    UserRef,
    ConnectionAction,
    ConnectionCase,
    AccessTier,
    Vec<Limit>,
    Option<i64>,
    bool,
    bool,
);

fn summary(d: &Decisions) -> Vec<Summary> {
    d.connections
        .iter()
        .map(|c| {
            (
                c.student_dcid,
                c.user,
                c.action,
                c.case,
                c.tier,
                c.limits.clone(),
                c.guardian_id,
                c.present_in_powerschool,
                c.orphaned,
            )
        })
        .collect()
}

// ---------------- properties ----------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Never panics, and gives the identical answer (prose included) for the
    /// same facts in any order of rows.
    #[test]
    fn same_facts_in_any_order_give_the_same_decisions(facts in district(), seed in any::<u64>()) {
        let expected = decide(&facts);
        let again = decide(&shuffled(&facts, seed));
        prop_assert_eq!(again, expected);
    }

    /// R1: Web Access rows are ignored entirely; dropping them changes
    /// nothing but the count of ignored rows (and the prose that quotes them).
    #[test]
    fn web_access_rows_change_nothing(facts in district()) {
        let with = decide(&facts);
        let mut without_facts = facts.clone();
        without_facts.guardian_rows.retain(|r| !r.web_access_account);
        let without = decide(&without_facts);
        prop_assert_eq!(summary(&with), summary(&without));
        prop_assert_eq!(&with.new_users, &without.new_users);
        prop_assert_eq!(&with.guardian_links, &without.guardian_links);
        prop_assert_eq!(&with.incomplete_users, &without.incomplete_users);
        let mut report = with.report.clone();
        prop_assert_eq!(
            report.web_access_rows_ignored as usize,
            facts.guardian_rows.iter().filter(|r| r.web_access_account).count()
        );
        report.web_access_rows_ignored = 0;
        prop_assert_eq!(report, without.report);
    }

    /// The emails of a student who is not independent are never read (R5
    /// concerns independent students only), so a run leaves them out of the
    /// rules' facts: the decisions, verdicts included, are identical.
    #[test]
    fn a_dependent_students_own_emails_change_nothing(facts in district()) {
        let with = decide(&facts);
        let mut without_facts = facts.clone();
        for s in without_facts.students.iter_mut().filter(|s| !s.independent) {
            s.org_email = None;
            s.personal_email = None;
        }
        prop_assert_eq!(decide(&without_facts), with);
    }

    /// Capital letters, padding and Unicode composition in PowerSchool's
    /// emails never change who sees whom.
    #[test]
    fn email_case_and_whitespace_never_matter(facts in district(), style in any::<u8>()) {
        let before = decide(&facts);
        let mut messy = facts.clone();
        let mess = |e: &mut Option<String>| {
            if let Some(text) = e {
                *text = match style % 3 {
                    0 => format!(" {}\t", text.to_uppercase()),
                    1 => text.nfd().collect(),
                    _ => format!("\n{}  ", text.nfc().collect::<String>().to_uppercase()),
                };
            }
        };
        messy.contacts.iter_mut().for_each(|c| mess(&mut c.email));
        messy.guardian_rows.iter_mut().for_each(|r| mess(&mut r.email));
        for s in &mut messy.students {
            mess(&mut s.org_email);
            mess(&mut s.personal_email);
        }
        let after = decide(&messy);
        prop_assert_eq!(summary(&before), summary(&after));
        prop_assert_eq!(&before.new_users, &after.new_users);
        prop_assert_eq!(&before.guardian_links, &after.guardian_links);
        prop_assert_eq!(&before.incomplete_users, &after.incomplete_users);
        prop_assert_eq!(&before.report, &after.report);
    }

    /// R4 only ever lowers: making one contact not decision-making keeps
    /// every connection and never raises a tier.
    #[test]
    fn a_contact_losing_decision_making_never_raises_a_tier(facts in district(), pick in any::<prop::sample::Index>()) {
        prop_assume!(!facts.contacts.is_empty());
        let before = decide(&facts);
        let mut lowered = facts.clone();
        let i = pick.index(lowered.contacts.len());
        lowered.contacts[i].is_decision_making = false;
        let after = decide(&lowered);
        let pairs = |d: &Decisions| d.connections.iter().map(|c| (c.student_dcid, c.user, c.case, c.action)).collect::<Vec<_>>();
        prop_assert_eq!(pairs(&before), pairs(&after));
        for (b, a) in before.connections.iter().zip(&after.connections) {
            prop_assert!(rank(a.tier) <= rank(b.tier), "{:?} rose to {:?}", b, a);
        }
    }
}
