#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! `explain` decides only the part of a district its question can depend on
//! (`rules::scope_of`). Over generated, deliberately messy districts (the
//! generators of `tests/common/rules_gen.rs`), two of them side by side:
//! every question about the first is answered word for word as deciding
//! the whole of both answers it. When they share no student, account, user
//! or email, its scope holds nothing of the second; when one record of the
//! second takes one key of the first (a row's, a user's, a contact's or a
//! student's own email, an account, a user), the answer is still the whole
//! district's. The second's records are numbered below the first's so that
//! they win its ties when they count (the lowest account makes a new user,
//! …); a contact's or a student's own email never joins them, as no rule
//! compares it with another student's records.

mod common;

use common::rules_gen::district;
use proptest::prelude::*;
use student_sync::rules::{
    explain_pair, scope_of, DistrictFacts, Explanation, StudentContact, TierMatrix,
};

/// Everything of the second district moved clear of the first: its
/// students and accounts numbered `BELOW` lower (the generators number the
/// first's from 5000 and 9000), its users and connections `ABOVE` higher,
/// and every address with an `@` given another domain (`x@example.com`
/// becomes `x@b.example.com`), so no key of it is one of the first's.
const BELOW: i64 = 4_000;
const ABOVE: i64 = 100;

fn of_second_student(dcid: i64) -> bool {
    dcid < 4_500
}

fn moved(email: &str) -> String {
    email.replacen('@', "@b.", 1)
}

fn moved_opt(email: &Option<String>) -> Option<String> {
    email.as_deref().map(moved)
}

fn side_by_side(a: &DistrictFacts, b: &DistrictFacts, bridge: u8) -> DistrictFacts {
    let mut both = a.clone();
    let (students, contacts, rows) = (a.students.len(), a.contacts.len(), a.guardian_rows.len());
    let (users, connections, forms) = (a.users.len(), a.connections.len(), a.forms.len());
    both.students
        .extend(b.students.iter().cloned().map(|mut s| {
            s.dcid -= BELOW;
            s.org_email = moved_opt(&s.org_email);
            s.personal_email = moved_opt(&s.personal_email);
            s
        }));
    both.contacts
        .extend(b.contacts.iter().cloned().map(|mut c| {
            c.student_dcid -= BELOW;
            c.person_id += ABOVE;
            c.email = moved_opt(&c.email);
            c
        }));
    both.guardian_rows
        .extend(b.guardian_rows.iter().cloned().map(|mut r| {
            r.student_dcid -= BELOW;
            r.guardian_id -= BELOW;
            r.email = moved_opt(&r.email);
            r
        }));
    both.users.extend(b.users.iter().cloned().map(|mut u| {
        u.user_id += ABOVE;
        u.email = moved(&u.email);
        u.powerschool_guardian_id = u.powerschool_guardian_id.map(|g| g - BELOW);
        u
    }));
    both.connections
        .extend(b.connections.iter().cloned().map(|mut c| {
            c.id += ABOVE;
            c.student_dcid -= BELOW;
            c.user_id += ABOVE;
            c.powerschool_guardian_id = c.powerschool_guardian_id.map(|g| g - BELOW);
            c
        }));
    both.forms.extend(b.forms.iter().cloned().map(|mut f| {
        f.student_dcid -= BELOW;
        f.created_by_user_id += ABOVE;
        f
    }));
    Firsts {
        students,
        contacts,
        rows,
        users,
        connections,
        forms,
    }
    .bridge(&mut both, bridge)
}

/// Where the second district's records start in the side-by-side facts.
struct Firsts {
    students: usize,
    contacts: usize,
    rows: usize,
    users: usize,
    connections: usize,
    forms: usize,
}

impl Firsts {
    /// The facts with one record of the second district given one key of
    /// the first (`bridge` says which; 0, or a kind either district lacks,
    /// gives none): the only tie between them.
    fn bridge(&self, both: &mut DistrictFacts, bridge: u8) -> DistrictFacts {
        let a_email = (both
            .guardian_rows
            .get(..self.rows)
            .unwrap_or_default()
            .iter())
        .find_map(|r| r.email.clone());
        let a_guardian = both.guardian_rows.first().map(|r| r.guardian_id);
        let a_user = both.users.first().map(|u| u.user_id);
        match bridge % 10 {
            1 => {
                // A link of the second, valid (its student has a
                // decision-making contact with the email), with an email of
                // the first: its account, numbered lower, makes the new user.
                if let (Some(r), Some(e)) = (both.guardian_rows.get_mut(self.rows), a_email) {
                    r.email = Some(e.clone());
                    r.web_access_account = false;
                    let student_dcid = r.student_dcid;
                    both.contacts.push(StudentContact {
                        student_dcid,
                        person_id: 1,
                        first_name: None,
                        last_name: None,
                        email: Some(e),
                        is_decision_making: true,
                    });
                }
            }
            2 => {
                if let (Some(r), Some(g)) = (both.guardian_rows.get_mut(self.rows), a_guardian) {
                    r.guardian_id = g;
                }
            }
            3 => {
                if let (Some(u), Some(e)) = (both.users.get_mut(self.users), a_email) {
                    u.email = e;
                }
            }
            4 => {
                if let (Some(u), Some(g)) = (both.users.get_mut(self.users), a_guardian) {
                    u.powerschool_guardian_id = Some(g);
                }
            }
            5 => {
                if let (Some(c), Some(u)) = (both.connections.get_mut(self.connections), a_user) {
                    c.user_id = u;
                }
            }
            6 => {
                if let (Some(f), Some(u)) = (both.forms.get_mut(self.forms), a_user) {
                    f.created_by_user_id = u;
                }
            }
            7 => {
                if let Some(c) = both.contacts.get_mut(self.contacts) {
                    c.email = a_email.or(c.email.take());
                }
            }
            8 => {
                // A student of the second with an email of the first as its own.
                if let Some(s) = both.students.get_mut(self.students) {
                    s.personal_email = a_email.or(s.personal_email.take());
                }
            }
            9 => {
                // A connection of the first's student to a user of the second.
                let b_user = both.users.get(self.users).map(|u| u.user_id);
                if let (Some(c), Some(u)) = (both.connections.first_mut(), b_user) {
                    if self.connections > 0 {
                        c.user_id = u;
                    }
                }
            }
            _ => {}
        }
        std::mem::take(both)
    }
}

/// Every question worth asking of the first district: each of its
/// students (and one outside the sync set) with each email the records of
/// either district hold (as written, so padding and case too) and one
/// nobody has. (`a` is both districts side by side; the students asked
/// about are the first's.)
fn questions(a: &DistrictFacts) -> Vec<(i64, String)> {
    let firsts = |dcid: &i64| !of_second_student(*dcid);
    let mut students: Vec<i64> = a.students.iter().map(|s| s.dcid).filter(firsts).collect();
    students.extend(
        a.guardian_rows
            .iter()
            .map(|r| r.student_dcid)
            .filter(firsts),
    );
    students.push(4_999);
    students.sort_unstable();
    students.dedup();
    let mut emails: Vec<String> = (a.guardian_rows.iter().filter_map(|r| r.email.clone()))
        .chain(a.contacts.iter().filter_map(|c| c.email.clone()))
        .chain(a.users.iter().map(|u| u.email.clone()))
        .chain(["nobody@example.net".to_string()])
        .collect();
    emails.sort();
    emails.dedup();
    let mut asked = Vec::new();
    for &s in &students {
        for e in &emails {
            asked.push((s, e.clone()));
        }
    }
    asked
}

/// The explanation as `--json` prints it, but for the new user's number
/// (`UserRef::New(i)`), which counts the users created in what was decided.
fn json_but_new_user_number(e: &Explanation) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap();
    if let Some(user) = v.get_mut("user").and_then(|u| u.get_mut("user")) {
        if user.get("new").is_some() {
            *user = serde_json::json!({"new": "n"});
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_question_reads_the_same_from_its_scope_as_from_the_whole_district(
        a in district(),
        b in district(),
        bridge in 0u8..10,
    ) {
        let both = side_by_side(&a, &b, bridge);
        let matrix = TierMatrix::default();
        for (student, email) in questions(&both) {
            let whole = explain_pair(&both, &matrix, student, &email);
            let scope = scope_of(both.clone(), &[(student, email.as_str())]);
            if bridge == 0 && !email.contains("@b.") {
                prop_assert!(
                    scope.students.iter().all(|s| !of_second_student(s.dcid))
                        && scope.users.iter().all(|u| u.user_id <= ABOVE)
                        && scope.guardian_rows.iter().all(|r| !of_second_student(r.student_dcid)),
                    "the scope of ({}, {:?}) reached the other district", student, email
                );
            }
            let scoped = explain_pair(&scope, &matrix, student, &email);
            prop_assert_eq!(scoped.to_text(), whole.to_text(), "({}, {:?})", student, email);
            prop_assert_eq!(
                json_but_new_user_number(&scoped),
                json_but_new_user_number(&whole),
                "({}, {:?})", student, email
            );
        }
    }
}

/// The same through PostgreSQL: after a night of a generated district,
/// `explain` (the keys of every stored record, then the records of the
/// scope) reads word for word as the rules deciding every stored record,
/// and the keys it read are every stored record's.
#[sqlx::test]
async fn explain_from_the_database_reads_the_same_as_deciding_every_stored_record(
    pool: sqlx::PgPool,
) {
    use student_sync::rules::{reach, Scope, ScopeKeys};
    use student_sync::store::{scope::load_scoped, state::CurrentState};
    use student_sync::sync::{explain::explain, facts::facts_from_state};

    let district = student_sync::harness::fake_powerschool::generate(400, 11);
    let fake = common::start_fake(district, Default::default()).await;
    let all = common::settings_for(&fake);
    student_sync::sync::run_once(&pool, &all, &common::client(&all), &common::options(&all))
        .await
        .unwrap();
    let settings = all.sync;
    let whole = facts_from_state(CurrentState::load(&pool).await.unwrap(), &settings);

    let mut read = None;
    load_scoped(&pool, |keys| {
        read = Some(keys);
        Scope::default()
    })
    .await
    .unwrap();
    let read = read.unwrap();
    let expected = ScopeKeys::of(&whole);
    let sorted = |mut v: Vec<(i64, i64)>| {
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut rows = read.rows.clone();
    rows.sort_unstable();
    let mut expected_rows = expected.rows.clone();
    expected_rows.sort_unstable();
    assert_eq!(rows, expected_rows);
    assert_eq!(sorted(read.pairs.clone()), sorted(expected.pairs.clone()));
    assert_eq!(read.users.len(), expected.users.len());

    // Questions: every 9th guardian account's student and email, each
    // with an address nobody has, and one student outside the sync set.
    let mut asked: Vec<(i64, String)> = Vec::new();
    for r in whole.guardian_rows.iter().step_by(9) {
        if let Some(e) = &r.email {
            asked.push((r.student_dcid, e.clone()));
        }
        asked.push((r.student_dcid, "nobody@example.net".into()));
    }
    asked.push((999_999_999, whole.users[0].email.clone()));
    assert!(asked.len() > 40, "{} questions", asked.len());
    let matrix = TierMatrix::default();
    let mut smaller = 0;
    for (student, email) in &asked {
        let scoped = explain(&pool, &settings, &matrix, *student, email)
            .await
            .unwrap();
        let full = explain_pair(&whole, &matrix, *student, email);
        assert_eq!(
            scoped.explanation.to_text(),
            full.to_text(),
            "({student}, {email:?})"
        );
        assert_eq!(
            json_but_new_user_number(&scoped.explanation),
            json_but_new_user_number(&full),
            "({student}, {email:?})"
        );
        let scope = reach(&expected, &[(*student, email.as_str())]);
        if scope.students.len() < whole.students.len() / 10 {
            smaller += 1;
        }
    }
    // A family, not the district: nearly every scope is a small part of it.
    assert!(
        smaller * 10 >= asked.len() * 9,
        "{smaller} of {}",
        asked.len()
    );
}
