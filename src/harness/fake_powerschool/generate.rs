//! A synthetic district for demos and benchmarks: deterministic for a seed,
//! with the proportions and the mess of real data (see the brief in
//! `mod.rs::generate`).
//!
//! Shape: students come in families of 1–3 siblings, spread over schools of
//! about 600 students. A family has 1–3 parents, each a contact of every
//! child (same PERSON id for all siblings) and most with a Parent Portal
//! account linked to every child; some students also have an extra,
//! usually non-decision-making, contact. That gives about 2 contacts and 1.5
//! guardian links per student, and siblings sharing guardians.

use crate::harness::world::{
    PowerSchoolSide, WorldContact, WorldGuardianAccount, WorldSchool, WorldStudent,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const STUDENTS_PER_SCHOOL: usize = 600;

const FIRST: &[&str] = &[
    "Ava", "Liam", "Olivia", "Noah", "Emma", "Ethan", "Mei", "Arjun", "Sofia", "Lucas", "Amara",
    "Mateo", "Chloe", "Omar", "Isla", "Kenji", "Zoe", "Elijah", "Priya", "Finn", "Nora", "Diego",
    "Hana", "Samuel", "Leila", "Owen", "Aiyana", "Jonah", "Ines", "Tariq", "Ruby", "Felix", "Maya",
    "Aarav", "Clara", "Hugo", "Yara", "Theo", "Lina", "Malik", "Jade", "Oscar", "Sienna", "Ravi",
    "Freya", "Dmitri", "Anouk", "Kai", "Selin", "Benoît",
];

const LAST: &[&str] = &[
    "Lee",
    "Smith",
    "Nguyen",
    "Patel",
    "Garcia",
    "Brown",
    "Martin",
    "Wilson",
    "Chen",
    "Singh",
    "Tremblay",
    "Roy",
    "Kim",
    "Wong",
    "Anderson",
    "Taylor",
    "Thomas",
    "Lewis",
    "Walker",
    "Young",
    "Khan",
    "Ali",
    "Gagnon",
    "Cote",
    "Morales",
    "Okafor",
    "Haddad",
    "Novak",
    "Schmidt",
    "Rossi",
    "Yamamoto",
    "Kowalski",
    "Andersen",
    "Dubois",
    "Fraser",
    "MacDonald",
    "O'Brien",
    "Ng",
    "Sato",
    "Bautista",
    "Mensah",
    "Ivanova",
    "Larsen",
    "Silva",
    "Cohen",
    "Murphy",
    "Bell",
    "Crowchild",
    "Whitecalf",
    "Da Silva",
];

const PLACES: &[&str] = &[
    "Crescent Heights",
    "Bow Valley",
    "Nose Hill",
    "Elbow River",
    "Fish Creek",
    "Prairie Rose",
    "Aspen Ridge",
    "Sunalta",
    "Riverbend",
    "Glenmore",
    "Tuscany",
    "Hillhurst",
];

const KINDS: &[&str] = &["High School", "Middle School", "Elementary", "School"];

const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.net",
    "example.org",
    "inbox.example.com",
];

pub(crate) fn district(students: usize, seed: u64) -> PowerSchoolSide {
    let mut rng = StdRng::seed_from_u64(seed);
    let school_count = students.div_ceil(STUDENTS_PER_SCHOOL).max(1);
    let mut side = PowerSchoolSide {
        schools: schools(school_count),
        students: Vec::with_capacity(students),
        contacts: Vec::with_capacity(students * 21 / 10),
        guardian_accounts: Vec::with_capacity(students * 16 / 10),
    };
    let mut ids = NextIds {
        person: 700_001,
        guardian: 900_001,
    };
    while side.students.len() < students {
        let family = Family::draw(&mut rng, &mut ids, students - side.students.len());
        for _ in 0..family.children {
            add_child(&mut rng, &mut side, &family, &mut ids, school_count);
        }
    }
    side
}

/// The district's schools, named after places and kinds of school, numbered
/// from 101.
fn schools(count: usize) -> Vec<WorldSchool> {
    (0..count)
        .map(|i| {
            let place = cyclic(PLACES, i);
            let kind = cyclic(KINDS, i / PLACES.len());
            let round = i / (PLACES.len() * KINDS.len());
            let name = if round == 0 {
                format!("{place} {kind}")
            } else {
                format!("{place} {kind} {}", round + 1)
            };
            WorldSchool {
                school_number: 101 + i as i64,
                name,
            }
        })
        .collect()
}

/// The next free PERSON id and Parent Portal guardian id.
struct NextIds {
    person: i64,
    guardian: i64,
}

impl NextIds {
    fn person(&mut self) -> i64 {
        self.person += 1;
        self.person - 1
    }

    fn guardian(&mut self) -> i64 {
        self.guardian += 1;
        self.guardian - 1
    }
}

/// One family: a surname, how many children (at most `remaining`), and
/// the parents every child shares.
struct Family {
    last: &'static str,
    children: usize,
    parents: Vec<Parent>,
}

impl Family {
    fn draw(rng: &mut StdRng, ids: &mut NextIds, remaining: usize) -> Family {
        let last = pick(rng, LAST);
        let children = match rng.gen_range(0..100) {
            0..=59 => 1,
            60..=89 => 2,
            _ => 3,
        }
        .min(remaining);
        let parent_count = match rng.gen_range(0..100) {
            0..=24 => 1,
            25..=89 => 2,
            _ => 3,
        };
        let parents = (0..parent_count)
            .map(|_| {
                let person = ids.person();
                let account = rng.gen_bool(0.8).then(|| ids.guardian());
                Parent::new(rng, person, last, account)
            })
            .collect();
        Family {
            last,
            children,
            parents,
        }
    }
}

/// One child of `family`: the student, each parent as a contact (and a
/// guardian link where the parent has an account), and sometimes an extra
/// contact.
fn add_child(
    rng: &mut StdRng,
    side: &mut PowerSchoolSide,
    family: &Family,
    ids: &mut NextIds,
    school_count: usize,
) {
    let n = side.students.len();
    let dcid = 10_001 + n as i64;
    let student = make_student(rng, n, dcid, family.last, school_count);
    side.students.push(student);
    for p in &family.parents {
        side.contacts.push(WorldContact {
            student_dcid: dcid,
            person_id: p.person,
            first_name: Some(p.first.to_string()),
            last_name: Some(p.last.to_string()),
            email: p.contact_email.clone(),
            isdecisionmaking: i64::from(p.decision_making),
        });
        if let Some(guardianid) = p.account {
            side.guardian_accounts.push(WorldGuardianAccount {
                guardianid,
                student_dcid: dcid,
                email: p.account_email.clone(),
                first_name: Some(p.first.to_string()),
                last_name: Some(p.last.to_string()),
                web_access_account: rng.gen_bool(0.01),
            });
        }
    }
    if rng.gen_bool(0.2) {
        let extra = extra_contact(rng, ids, dcid, family.last);
        side.contacts.push(extra);
    }
}

/// A grandparent or emergency contact: rarely a decision maker.
fn extra_contact(
    rng: &mut StdRng,
    ids: &mut NextIds,
    dcid: i64,
    family_last: &'static str,
) -> WorldContact {
    let person = ids.person();
    let first = pick(rng, FIRST);
    let last = if rng.gen_bool(0.5) {
        family_last
    } else {
        pick(rng, LAST)
    };
    let clean = clean_email(rng, first, last, person);
    WorldContact {
        student_dcid: dcid,
        person_id: person,
        first_name: Some(first.to_string()),
        last_name: Some(last.to_string()),
        email: messy_email(rng, &clean),
        isdecisionmaking: i64::from(rng.gen_bool(0.2)),
    }
}

struct Parent {
    person: i64,
    first: &'static str,
    last: &'static str,
    contact_email: Option<String>,
    account: Option<i64>,
    account_email: Option<String>,
    decision_making: bool,
}

impl Parent {
    fn new(rng: &mut StdRng, person: i64, family_last: &'static str, account: Option<i64>) -> Self {
        let first = pick(rng, FIRST);
        let last = if rng.gen_bool(0.85) {
            family_last
        } else {
            pick(rng, LAST)
        };
        let clean = clean_email(rng, first, last, person);
        let contact_email = messy_email(rng, &clean);
        // Mostly the contact's address as the parent typed it again at
        // sign-up (case and spaces differ); sometimes another address that
        // matches no contact.
        let account_email = account.map(|_| match rng.gen_range(0..100) {
            0..=3 => format!(
                "{}{}.{}@work.example.net",
                initial(first),
                slug(last),
                person
            ),
            4..=33 => mixed_case(&clean),
            34..=38 => format!(" {clean} "),
            _ => clean.clone(),
        });
        Parent {
            person,
            first,
            last,
            contact_email,
            account,
            account_email,
            decision_making: rng.gen_bool(0.97),
        }
    }
}

fn make_student(
    rng: &mut StdRng,
    n: usize,
    dcid: i64,
    family_last: &'static str,
    school_count: usize,
) -> WorldStudent {
    let first = pick(rng, FIRST);
    let last = if rng.gen_bool(0.9) {
        family_last
    } else {
        pick(rng, LAST)
    };
    let enroll_status = match rng.gen_range(0..1000) {
        0..=899 => 0,
        900..=914 => -1,
        915..=964 => 2,
        965..=994 => 3,
        _ => 4,
    };
    let independent = rng.gen_bool(0.03);
    let mut types: [Option<String>; 3] = [None, None, None];
    if independent {
        if let Some(t) = types.get_mut(rng.gen_range(0..3)) {
            *t = Some("121".to_string());
        }
    }
    for t in types.iter_mut().filter(|t| t.is_none()) {
        match rng.gen_range(0..100) {
            0..=9 => *t = Some("100".to_string()),
            10..=14 => *t = Some("110".to_string()),
            15..=16 => *t = Some(String::new()),
            _ => {}
        }
    }
    let [enrlytype1, enrlytype2, enrlytype3] = types;
    let entrydate = if enroll_status == -1 && rng.gen_bool(0.7) {
        // Next school year's registrations.
        "2026-08-27".to_string()
    } else {
        format!(
            "{}-{:02}-{:02}",
            rng.gen_range(2014..=2025),
            // August three times in seven, then September, January to March
            // (drawn as an index, as ever, so a seed gives the same world).
            match rng.gen_range(0..7_usize) {
                0..=2 => 8,
                3 => 9,
                k => k - 3,
            },
            rng.gen_range(1..=28)
        )
    };
    let grade_level = if independent {
        rng.gen_range(11..=12)
    } else {
        rng.gen_range(0..=12)
    };
    let orgemail = match rng.gen_range(0..100) {
        0..=2 => None,
        3 => Some(String::new()),
        _ => Some(format!(
            "{}.{}{}@students.example.org",
            slug(first),
            slug(last),
            dcid
        )),
    };
    let personalemail = if independent || rng.gen_bool(0.08) {
        let clean = clean_email(rng, first, last, dcid);
        messy_email(rng, &clean)
    } else {
        None
    };
    WorldStudent {
        dcid,
        id: Some(n as i64 + 1),
        student_number: Some((200_001 + n).to_string()),
        first_name: Some(first.to_string()),
        last_name: Some(last.to_string()),
        schoolid: 101 + rng.gen_range(0..school_count) as i64,
        grade_level: Some(grade_level),
        enroll_status,
        entrydate: Some(entrydate),
        enrlytype1,
        enrlytype2,
        enrlytype3,
        orgemail,
        personalemail,
    }
}

fn pick(rng: &mut StdRng, list: &[&'static str]) -> &'static str {
    list.get(rng.gen_range(0..list.len()))
        .copied()
        .unwrap_or_default()
}

/// The `i`-th name of `list`, starting over at its end.
fn cyclic(list: &[&'static str], i: usize) -> &'static str {
    i.checked_rem(list.len())
        .and_then(|k| list.get(k))
        .copied()
        .unwrap_or_default()
}

/// Lower-case ASCII letters only, for the local part of an address.
fn slug(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn initial(name: &str) -> String {
    slug(name).chars().take(1).collect()
}

/// Unique per person (the number), so a match means the same person.
fn clean_email(rng: &mut StdRng, first: &str, last: &str, number: i64) -> String {
    format!(
        "{}.{}{}@{}",
        slug(first),
        slug(last),
        number,
        pick(rng, DOMAINS)
    )
}

/// Capitalises the first letter of each dot/at-separated part.
fn mixed_case(email: &str) -> String {
    let mut out = String::with_capacity(email.len());
    let mut upper = true;
    for c in email.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '.' || c == '@';
    }
    out
}

/// A contact's address as it sits in PowerSchool: mostly fine, some mixed
/// case or padded, some blank, missing or malformed.
fn messy_email(rng: &mut StdRng, clean: &str) -> Option<String> {
    Some(match rng.gen_range(0..1000) {
        0..=39 => return None,
        40..=49 => String::new(),
        50..=59 => "  ".to_string(),
        60..=69 => clean.replacen('@', ".", 1),
        70..=74 => clean.replacen('@', "@@", 1),
        75..=79 => clean.split('@').next().unwrap_or_default().to_string(),
        80..=179 => mixed_case(clean),
        180..=219 => format!(" {clean}"),
        220..=239 => format!("{clean}  "),
        _ => clean.to_string(),
    })
}
