#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Property tests of the pure rules engine (issue 4, point 7) over generated,
//! deliberately messy district facts: mixed-case and padded emails, blank and
//! malformed ones, Web Access rows, contacts that are not decision-making,
//! independent students, rows for students outside the sync set, and existing
//! connections of every origin.
//!
//! The checks compare `decide` with an independent reading of
//! `docs/access-rules.md` written here (R3/R4/R5, the tier ceilings,
//! step 2's order, cases A/C and `on_powerschool_removal`), so a property
//! never holds merely because it restates the engine's own code.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::subsequence;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use strum::VariantArray;
use student_sync::rules::{
    decide, normalise_email, AccessTier, ConnectionAction, ConnectionCase, ConnectionDecision,
    ConnectionFacts, Decisions, DistrictFacts, FormFacts, GuardianLink, Limit, Origin, Policy,
    RemovalPolicy, StudentContact, StudentFacts, UserFacts, UserRef,
};
use unicode_normalization::UnicodeNormalization;

// ---------------- generators ----------------

/// Well-formed addresses, in NFC and lower case. Few, so that contacts,
/// accounts, students and users collide on them all the time.
const EMAILS: &[&str] = &[
    "mei.lee@example.com",
    "dad@example.com",
    "gran@example.org",
    "ren\u{e9}@example.fr",
    "kid1@students.example.org",
    "kid2@students.example.org",
];

/// Addresses that must match nothing.
const BAD_EMAILS: &[&str] = &[
    "",
    "   ",
    "mei.lee@example",
    "no-at.example.com",
    "a@@example.com",
];

/// Students in the sync set are `FIRST_DCID..FIRST_DCID + n`; rows and
/// contacts also point one or two past the end (not in the sync set).
const FIRST_DCID: i64 = 5000;
const FIRST_GUARDIAN: i64 = 9000;

/// A well-formed address as PowerSchool or SE might hold it.
fn dressed(base: &str, style: u8) -> String {
    match style % 6 {
        0 => base.to_string(),
        1 => base.to_uppercase(),
        2 => format!("  {base}"),
        3 => {
            // Title-case the first letter, trailing tab.
            let mut chars = base.chars();
            let first = chars.next().map(|c| c.to_uppercase().to_string());
            format!("{}{}\t", first.unwrap_or_default(), chars.as_str())
        }
        4 => base.nfd().collect(),
        _ => format!(" {} ", base.to_uppercase().nfd().collect::<String>()),
    }
}

fn any_email() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => (0..EMAILS.len(), any::<u8>()).prop_map(|(i, s)| Some(dressed(EMAILS[i], s))),
        1 => (0..BAD_EMAILS.len()).prop_map(|i| Some(BAD_EMAILS[i].to_string())),
        1 => Just(None),
    ]
}

fn any_tier() -> impl Strategy<Value = AccessTier> {
    prop::sample::select(AccessTier::ALL.to_vec())
}

fn any_origin() -> impl Strategy<Value = Origin> {
    prop::sample::select(vec![Origin::Admin, Origin::Form, Origin::Powerschool])
}

fn any_policy() -> impl Strategy<Value = RemovalPolicy> {
    prop::sample::select(vec![
        RemovalPolicy::Keep,
        RemovalPolicy::Restrict,
        RemovalPolicy::Revoke,
    ])
}

/// A student index that is usually in the sync set of `n` students.
fn student_ref(n: usize) -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => (0..n as i64).prop_map(|i| FIRST_DCID + i),
        1 => (n as i64..n as i64 + 2).prop_map(|i| FIRST_DCID + i),
    ]
}

fn students(n: usize) -> impl Strategy<Value = Vec<StudentFacts>> {
    let one = (
        prop::bool::weighted(0.35),
        prop::option::weighted(0.6, (0..EMAILS.len(), any::<u8>())),
        prop::option::weighted(0.3, any_email()),
    );
    prop::collection::vec(one, n).prop_map(|list| {
        list.into_iter()
            .enumerate()
            .map(|(i, (independent, org, personal))| StudentFacts {
                dcid: FIRST_DCID + i as i64,
                independent,
                org_email: org.map(|(e, s)| dressed(EMAILS[e], s)),
                personal_email: personal.flatten(),
            })
            .collect()
    })
}

fn contacts(n: usize) -> impl Strategy<Value = Vec<StudentContact>> {
    let one = (
        student_ref(n),
        800i64..806,
        any_email(),
        prop::bool::weighted(0.7),
    )
        .prop_map(|(student_dcid, person_id, email, dm)| StudentContact {
            student_dcid,
            person_id,
            first_name: None,
            last_name: None,
            email,
            is_decision_making: dm,
        });
    prop::collection::vec(one, 0..14)
}

fn guardian_rows(n: usize) -> impl Strategy<Value = Vec<GuardianLink>> {
    let names = prop::sample::select(vec![
        (Some("Mei"), Some("Lee")),
        (Some("Sam"), Some("Lee")),
        (None, Some("Okafor")),
        (None, None),
    ]);
    let one = (
        FIRST_GUARDIAN..FIRST_GUARDIAN + 6,
        student_ref(n),
        any_email(),
        names,
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(guardian_id, student_dcid, email, (first, last), web)| GuardianLink {
                guardian_id,
                student_dcid,
                email,
                first_name: first.map(Into::into),
                last_name: last.map(Into::into),
                web_access_account: web,
            },
        );
    prop::collection::vec(one, 0..12)
}

/// SE users: ids 1.., unique normalised emails (SE's unique index), some
/// unverified, some linked to a guardian account by an earlier sync.
fn users() -> impl Strategy<Value = Vec<UserFacts>> {
    subsequence((0..EMAILS.len()).collect::<Vec<_>>(), 0..=4).prop_flat_map(|picked| {
        let k = picked.len();
        (
            Just(picked),
            prop::collection::vec(
                (
                    any::<u8>(),
                    prop::bool::weighted(0.7),
                    prop::option::weighted(0.3, FIRST_GUARDIAN..FIRST_GUARDIAN + 7),
                    any::<bool>(),
                ),
                k,
            ),
        )
            .prop_map(|(picked, attrs)| {
                picked
                    .into_iter()
                    .zip(attrs)
                    .enumerate()
                    .map(|(i, (e, (style, verified, gid, incomplete)))| UserFacts {
                        user_id: i as i64 + 1,
                        email: dressed(EMAILS[e], style),
                        email_verified: verified,
                        powerschool_guardian_id: gid,
                        incomplete,
                        ..UserFacts::default()
                    })
                    .collect()
            })
    })
}

/// Existing connections, one per (student, user); user 6 never exists.
fn connections(n: usize) -> impl Strategy<Value = Vec<ConnectionFacts>> {
    let one = (
        student_ref(n),
        1i64..7,
        any_tier(),
        prop::option::of(prop::sample::select(ConnectionCase::VARIANTS.to_vec())),
        prop::sample::subsequence(vec![Limit::R4, Limit::R5], 0..=2),
        any_origin(),
    )
        .prop_map(|(s, u, tier, case, limits, origin)| ConnectionFacts {
            id: 0,
            student_dcid: s,
            user_id: u,
            tier,
            case,
            limits,
            origin,
            present_in_powerschool: false,
            powerschool_guardian_id: None,
        });
    prop::collection::vec(one, 0..7).prop_map(|list| {
        let mut unique = BTreeMap::new();
        for c in list {
            unique.entry((c.student_dcid, c.user_id)).or_insert(c);
        }
        unique.into_values().collect()
    })
}

fn forms(n: usize) -> impl Strategy<Value = Vec<FormFacts>> {
    prop::collection::vec(
        (student_ref(n), 1i64..7).prop_map(|(s, u)| FormFacts {
            student_dcid: s,
            created_by_user_id: u,
        }),
        0..6,
    )
}

fn district() -> impl Strategy<Value = DistrictFacts> {
    (1usize..5).prop_flat_map(|n| {
        (
            students(n),
            contacts(n),
            guardian_rows(n),
            users(),
            connections(n),
            forms(n),
            any_policy(),
        )
            .prop_map(
                |(students, contacts, guardian_rows, users, connections, forms, policy)| {
                    DistrictFacts {
                        students,
                        contacts,
                        guardian_rows,
                        users,
                        connections,
                        forms,
                        policy: Policy {
                            on_powerschool_removal: policy,
                        },
                    }
                },
            )
    })
}

fn shuffled(facts: &DistrictFacts, seed: u64) -> DistrictFacts {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut f = facts.clone();
    f.students.shuffle(&mut rng);
    f.contacts.shuffle(&mut rng);
    f.guardian_rows.shuffle(&mut rng);
    f.users.shuffle(&mut rng);
    f.connections.shuffle(&mut rng);
    f.forms.shuffle(&mut rng);
    f
}

// ---------------- the spec, read independently ----------------

/// access-rules.md, "Tiers": the order, most to least access.
fn rank(tier: AccessTier) -> u8 {
    match tier {
        AccessTier::Full => 3,
        AccessTier::Restricted => 2,
        AccessTier::ReadOnly => 1,
        AccessTier::Incomplete => 0,
    }
}

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

fn in_sync_set(f: &DistrictFacts, dcid: i64) -> bool {
    f.students.iter().any(|s| s.dcid == dcid)
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

// ---------------- email normalisation ----------------

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
