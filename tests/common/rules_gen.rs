//! Generators shared by the property tests of the rules engine
//! (`tests/rules_properties.rs` and `tests/rules_properties_invariance.rs`):
//! generated, deliberately messy district facts (mixed-case and padded
//! emails, blank and malformed ones, Web Access rows, contacts that are not
//! decision-making, independent students, rows for students outside the sync
//! set, and existing connections of every origin), the same facts with their
//! rows shuffled, and the order of the tiers as `docs/access-rules.md` gives
//! it (read independently of the engine), which both files compare against.
#![allow(clippy::indexing_slicing)] // the generators index their own fixed tables

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::subsequence;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use strum::VariantArray;
use student_sync::rules::{
    AccessTier, ConnectionCase, ConnectionFacts, DistrictFacts, FormFacts, GuardianLink, Limit,
    Origin, Policy, RemovalPolicy, StudentContact, StudentFacts, UserFacts,
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

pub fn district() -> impl Strategy<Value = DistrictFacts> {
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

pub fn shuffled(facts: &DistrictFacts, seed: u64) -> DistrictFacts {
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
pub fn rank(tier: AccessTier) -> u8 {
    match tier {
        AccessTier::Full => 3,
        AccessTier::Restricted => 2,
        AccessTier::ReadOnly => 1,
        AccessTier::Incomplete => 0,
    }
}
