#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Property tests of the pure rules engine (issue 4, point 7): what `decide`
//! decides, over generated, deliberately messy district facts (the generators
//! are in `tests/common/rules_gen.rs`): the tier and limits of every link
//! (R3/R4/R5 and the tier ceilings), the user each valid link reaches
//! (step 2's order, never through an unverified email), existing
//! connections without a link (cases A/C and `on_powerschool_removal`), the
//! new users; and that the generators really produce every messy situation
//! these are about.
//!
//! The checks compare `decide` with an independent reading of
//! `docs/access-rules.md` written here (R3/R4/R5, the tier ceilings,
//! step 2's order, cases A/C and `on_powerschool_removal`; the order of the
//! tiers is in `tests/common/rules_gen.rs`), so a property never holds merely
//! because it restates the engine's own code.
//!
//! Changes to the facts that must change nothing are checked in
//! `tests/rules_properties_invariance.rs`, email normalisation in
//! `tests/rules_properties_email.rs`.

mod common;

use std::collections::BTreeSet;

use common::rules_gen::{district, rank};
use proptest::prelude::*;
use student_sync::rules::{
    decide, normalise_email, AccessTier, ConnectionAction, ConnectionCase, ConnectionDecision,
    Decisions, DistrictFacts, GuardianLink, Limit, Origin, RemovalPolicy, StudentContact,
    UserFacts, UserRef,
};

// ---------------- the spec, read independently ----------------

/// access-rules.md, step 1: R4 caps at `restricted`, R5 at `read_only`.
fn spec_ceiling(limit: Limit) -> AccessTier {
    match limit {
        Limit::R4 => AccessTier::Restricted,
        Limit::R5 => AccessTier::ReadOnly,
    }
}

/// The lowest of `full` and the ceilings of `limits`.
fn lowest_ceiling(limits: &[Limit]) -> AccessTier {
    let mut tier = AccessTier::Full;
    for &l in limits {
        if rank(spec_ceiling(l)) < rank(tier) {
            tier = spec_ceiling(l);
        }
    }
    tier
}

/// Step 1 for one row, straight from the spec: `None` when the row is not a
/// valid link, else its normalised email and the limits R4/R5 impose.
fn spec_link(f: &DistrictFacts, row: &GuardianLink) -> Option<(String, Vec<Limit>)> {
    if row.web_access_account {
        return None; // R1
    }
    let student = f.students.iter().find(|s| s.dcid == row.student_dcid)?;
    let email = normalise_email(row.email.as_deref()?)?;
    let same_email: Vec<&StudentContact> = f
        .contacts
        .iter()
        .filter(|c| {
            c.student_dcid == row.student_dcid
                && c.email.as_deref().and_then(normalise_email).as_deref() == Some(email.as_str())
        })
        .collect();
    if same_email.is_empty() {
        return None; // R3
    }
    let mut limits = Vec::new();
    if same_email.iter().any(|c| !c.is_decision_making) {
        limits.push(Limit::R4);
    }
    let own = |e: &Option<String>| {
        e.as_deref().and_then(normalise_email).as_deref() == Some(email.as_str())
    };
    if student.independent && !own(&student.org_email) && !own(&student.personal_email) {
        limits.push(Limit::R5);
    }
    Some((email, limits))
}

fn user(f: &DistrictFacts, id: i64) -> Option<&UserFacts> {
    f.users.iter().find(|u| u.user_id == id)
}

fn user_with_email<'f>(f: &'f DistrictFacts, email: &str) -> Option<&'f UserFacts> {
    f.users
        .iter()
        .find(|u| normalise_email(&u.email).as_deref() == Some(email))
}

fn decision_for(d: &Decisions, student: i64, user: UserRef) -> Option<&ConnectionDecision> {
    d.connections
        .iter()
        .find(|c| c.student_dcid == student && c.user == user)
}

fn in_sync_set(f: &DistrictFacts, dcid: i64) -> bool {
    f.students.iter().any(|s| s.dcid == dcid)
}

// ---------------- properties ----------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A link backed by PowerSchool carries exactly the limits R4/R5 give its
    /// row, its tier is the lowest ceiling of those limits, and so it is
    /// never `full` when R4 or R5 failed.
    #[test]
    fn linked_tier_is_the_lowest_ceiling_and_never_full_when_r4_or_r5_fails(facts in district()) {
        let d = decide(&facts);
        for c in &d.connections {
            let mut sorted = c.limits.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&sorted, &c.limits, "limits sorted without duplicates");
            if !c.limits.is_empty() {
                prop_assert_ne!(c.tier, AccessTier::Full, "{:?}", c);
            }
            if !c.present_in_powerschool {
                prop_assert!(c.limits.is_empty(), "no limits without a link: {:?}", c);
                continue;
            }
            prop_assert_eq!(c.tier, lowest_ceiling(&c.limits), "{:?}", c);
            let gid = c.guardian_id.expect("a linked connection names its account");
            // The limits are those of a valid row of that account for that student.
            let backing: Vec<Vec<Limit>> = facts
                .guardian_rows
                .iter()
                .filter(|r| r.guardian_id == gid && r.student_dcid == c.student_dcid)
                .filter_map(|r| spec_link(&facts, r))
                .map(|(_, mut limits)| { limits.sort(); limits })
                .collect();
            prop_assert!(
                backing.contains(&c.limits),
                "decision {:?} not backed by a valid row of account {}: {:?}", c, gid, backing
            );
        }
    }

    /// Step 2 and the cases for every valid link: the account's earlier user
    /// first, then a verified user with the email, never an unverified one,
    /// else one new user; the pair's tier is at least the link's.
    #[test]
    fn every_valid_link_reaches_the_right_user(facts in district()) {
        let d = decide(&facts);
        for row in &facts.guardian_rows {
            let Some((email, limits)) = spec_link(&facts, row) else { continue };
            let row_tier = lowest_ceiling(&limits);
            let earlier = facts
                .users
                .iter()
                .filter(|u| u.powerschool_guardian_id == Some(row.guardian_id))
                .map(|u| u.user_id)
                .min();
            let by_email = user_with_email(&facts, &email);
            let target = match (earlier, by_email) {
                (Some(u), _) => UserRef::Existing(u),
                (None, Some(u)) if u.email_verified => UserRef::Existing(u.user_id),
                (None, Some(u)) => {
                    // Unverified: reported, no connection through the email.
                    prop_assert!(
                        d.report.unverified_email_matches.contains(&(row.guardian_id, row.student_dcid, email.clone())),
                        "unverified match not reported: {:?}", row
                    );
                    prop_assert!(d.new_users.iter().all(|n| n.email != email), "a second user for {}", email);
                    let _ = u;
                    continue;
                }
                (None, None) => {
                    let i = d.new_users.iter().position(|n| n.email == email);
                    prop_assert!(i.is_some(), "no new user for {} ({:?})", email, row);
                    UserRef::New(i.unwrap())
                }
            };
            let c = decision_for(&d, row.student_dcid, target);
            prop_assert!(c.is_some(), "no connection for valid link {:?} to {:?}", row, target);
            let c = c.unwrap();
            prop_assert!(c.present_in_powerschool && !c.orphaned, "{:?}", c);
            prop_assert!(rank(c.tier) >= rank(row_tier), "pair {:?} lower than its link {:?}", c, row);
            let existed = match target {
                UserRef::Existing(u) => facts
                    .connections
                    .iter()
                    .any(|k| k.student_dcid == row.student_dcid && k.user_id == u),
                UserRef::New(_) => false,
            };
            let expected_case = match target {
                _ if existed => ConnectionCase::Synced,
                UserRef::Existing(u) if facts.forms.iter().any(|f| f.student_dcid == row.student_dcid && f.created_by_user_id == u) => ConnectionCase::MatchedFormCreator,
                _ => ConnectionCase::Created,
            };
            prop_assert_eq!(c.case, expected_case, "{:?}", c);
            prop_assert_eq!(c.action, if existed { ConnectionAction::Keep } else { ConnectionAction::Create });
        }
    }

    /// Existing connections without a valid link: never dropped silently;
    /// case A keeps the tier, except `restrict`/`revoke` on connections an
    /// earlier sync made; case C only for form connections of form creators.
    #[test]
    fn unlinked_existing_connections_follow_cases_a_and_c(facts in district()) {
        let d = decide(&facts);
        for k in &facts.connections {
            if !in_sync_set(&facts, k.student_dcid) {
                prop_assert!(decision_for(&d, k.student_dcid, UserRef::Existing(k.user_id)).is_none());
                continue;
            }
            let c = decision_for(&d, k.student_dcid, UserRef::Existing(k.user_id));
            prop_assert!(c.is_some(), "existing connection {:?} vanished", k);
            let c = c.unwrap();
            if c.present_in_powerschool {
                continue;
            }
            prop_assert!(c.action != ConnectionAction::Create, "{:?}", c);
            prop_assert_eq!(c.orphaned, k.origin == Origin::Powerschool && c.case == ConnectionCase::SchoolengageOnly);
            match c.case {
                ConnectionCase::UnlinkedReturningParent => {
                    prop_assert_eq!(k.origin, Origin::Form, "case C only for form connections");
                    prop_assert!(facts.forms.iter().any(|f| f.student_dcid == k.student_dcid && f.created_by_user_id == k.user_id));
                    prop_assert_eq!(c.tier, AccessTier::Incomplete);
                    prop_assert!(d.incomplete_users.contains(&k.user_id));
                }
                ConnectionCase::SchoolengageOnly => {
                    let policy = facts.policy.on_powerschool_removal;
                    let (tier, action) = match (k.origin, policy) {
                        (Origin::Powerschool, RemovalPolicy::Restrict) => (
                            if rank(k.tier) > rank(AccessTier::Restricted) { AccessTier::Restricted } else { k.tier },
                            ConnectionAction::Keep,
                        ),
                        (Origin::Powerschool, RemovalPolicy::Revoke) => (k.tier, ConnectionAction::Remove),
                        _ => (k.tier, ConnectionAction::Keep),
                    };
                    prop_assert_eq!((c.tier, c.action), (tier, action), "{:?} from {:?}", c, k);
                    prop_assert_eq!(d.report.orphaned.contains(&(k.student_dcid, k.user_id)), c.orphaned);
                }
                other => prop_assert!(false, "unlinked connection in case {:?}: {:?}", other, c),
            }
        }
    }

    /// No user created twice for one email, none for an email an existing
    /// user already has, and every new user's email is normalised.
    #[test]
    fn new_users_are_unique_normalised_and_new(facts in district()) {
        let d = decide(&facts);
        let emails: BTreeSet<&str> = d.new_users.iter().map(|n| n.email.as_str()).collect();
        prop_assert_eq!(emails.len(), d.new_users.len(), "duplicate new users: {:?}", d.new_users);
        for n in &d.new_users {
            let renormalised = normalise_email(&n.email);
            prop_assert_eq!(renormalised.as_deref(), Some(n.email.as_str()));
            prop_assert!(user_with_email(&facts, &n.email).is_none(), "{} already has a user", n.email);
            // Created for an account that validly links someone with that email.
            prop_assert!(facts.guardian_rows.iter().any(|r| r.guardian_id == n.powerschool_guardian_id
                && spec_link(&facts, r).is_some_and(|(e, _)| e == n.email)));
        }
        for (i, _) in d.new_users.iter().enumerate() {
            prop_assert!(d.connections.iter().any(|c| c.user == UserRef::New(i)), "new user {} has no connection", i);
        }
    }

    /// Nobody gains a student through an unverified email: a linked
    /// connection of an unverified user is backed by the account an earlier
    /// sync linked to them, and the run never links an unverified user.
    #[test]
    fn no_connection_through_an_unverified_users_email(facts in district()) {
        let d = decide(&facts);
        for c in &d.connections {
            let UserRef::Existing(u) = c.user else { continue };
            let Some(user) = user(&facts, u) else { continue };
            if user.email_verified || !c.present_in_powerschool {
                continue;
            }
            prop_assert_eq!(user.powerschool_guardian_id, c.guardian_id, "{:?}", c);
        }
        for (u, _) in &d.guardian_links {
            let user = user(&facts, *u);
            prop_assert!(user.is_some_and(|x| x.email_verified && x.powerschool_guardian_id.is_none()), "linked {:?}", user);
        }
    }
}

/// The generators really produce the mess the properties are about: over a
/// fixed sample, every kind of situation shows up.
#[test]
fn generators_cover_the_messy_situations() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = district();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for _ in 0..400 {
        let facts = strategy.new_tree(&mut runner).unwrap().current();
        let d = decide(&facts);
        let mut mark = |what: &'static str, hit: bool| {
            if hit {
                seen.insert(what);
            }
        };
        mark(
            "web access row",
            facts.guardian_rows.iter().any(|r| r.web_access_account),
        );
        mark(
            "blank email",
            facts
                .guardian_rows
                .iter()
                .any(|r| r.email.as_deref().is_some_and(|e| e.trim().is_empty())),
        );
        mark(
            "mixed-case email",
            facts
                .contacts
                .iter()
                .any(|c| c.email.as_deref().is_some_and(|e| e != e.to_lowercase())),
        );
        mark(
            "padded email",
            facts
                .guardian_rows
                .iter()
                .any(|r| r.email.as_deref().is_some_and(|e| e != e.trim())),
        );
        mark(
            "not decision-making",
            facts.contacts.iter().any(|c| !c.is_decision_making),
        );
        mark(
            "independent student",
            facts.students.iter().any(|s| s.independent),
        );
        mark(
            "unverified user",
            facts.users.iter().any(|u| !u.email_verified),
        );
        for origin in [Origin::Admin, Origin::Form, Origin::Powerschool] {
            mark(
                origin.as_str(),
                facts.connections.iter().any(|c| c.origin == origin),
            );
        }
        for c in &d.connections {
            mark(c.case.as_str(), true);
            if c.limits.contains(&Limit::R4) {
                mark("R4", true);
            }
            if c.limits.contains(&Limit::R5) {
                mark("R5", true);
            }
            if c.action == ConnectionAction::Remove {
                mark("revoked", true);
            }
        }
        mark(
            "unverified match",
            !d.report.unverified_email_matches.is_empty(),
        );
        mark("form_creator_only", !d.report.form_creator_only.is_empty());
        mark("new user", !d.new_users.is_empty());
    }
    let wanted = [
        "web access row",
        "blank email",
        "mixed-case email",
        "padded email",
        "not decision-making",
        "independent student",
        "unverified user",
        "admin",
        "form",
        "powerschool",
        "synced",
        "matched_form_creator",
        "created",
        "schoolengage_only",
        "unlinked_returning_parent",
        "R4",
        "R5",
        "revoked",
        "unverified match",
        "form_creator_only",
        "new user",
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !seen.contains(w))
        .collect();
    assert!(missing.is_empty(), "generators never produced: {missing:?}");
}
