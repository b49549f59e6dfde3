//! Small PowerSchool records for tests that build a world by hand.
#![allow(dead_code)]

use student_sync::harness::world::{WorldContact, WorldGuardianAccount, WorldStudent};

pub fn student(dcid: i64, school: i64, enroll_status: i64) -> WorldStudent {
    WorldStudent {
        dcid,
        id: Some(dcid - 5000),
        student_number: Some(format!("{}", 100000 + dcid)),
        first_name: Some(format!("First{dcid}")),
        last_name: Some("Lee".to_string()),
        schoolid: school,
        grade_level: Some(10),
        enroll_status,
        entrydate: Some("2025-08-27".to_string()),
        enrlytype1: None,
        enrlytype2: None,
        enrlytype3: None,
        orgemail: Some(format!("s{dcid}@students.example.org")),
        personalemail: None,
    }
}

pub fn contact(dcid: i64, person: i64, decision: i64) -> WorldContact {
    WorldContact {
        student_dcid: dcid,
        person_id: person,
        first_name: Some("Mei".to_string()),
        last_name: Some("Lee".to_string()),
        email: Some(format!("p{person}@example.com")),
        isdecisionmaking: decision,
    }
}

pub fn account(guardianid: i64, dcid: i64, email: &str, web: bool) -> WorldGuardianAccount {
    WorldGuardianAccount {
        guardianid,
        student_dcid: dcid,
        email: Some(email.to_string()),
        first_name: Some("Mei".to_string()),
        last_name: None,
        web_access_account: web,
    }
}
