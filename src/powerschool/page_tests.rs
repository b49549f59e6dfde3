//! The page parser against the map-of-strings path it replaces: every
//! record types the same, fails with the same problem, and keys the same.

use super::columns::guardian_record;
use super::page::{key_of, Key, Page};
use super::paging::PageRead;
use super::parse::{self, record_columns, Columns};
use super::queries::key_columns;
use super::readers::{Typed, STUDENT_FIELDS};
use super::records::{GuardianLink, Student};
use crate::config::GuardianColumns;
use serde_json::{json, Value};

fn students() -> Typed<Student> {
    Typed::as_sent(STUDENT_FIELDS, Some(&["dcid"]), |c| {
        parse::student(c, Some(101))
    })
}

fn guardians() -> Typed<GuardianLink> {
    Typed::guardian(
        &GuardianColumns::default(),
        Some(&["guardianid", "studentsdcid"]),
    )
}

fn read<T: Send + 'static>(reader: &Typed<T>, page: &Value) -> Page<T> {
    reader.read(2, page.to_string().as_bytes()).unwrap()
}

fn oks<T: Send + 'static>(page: Page<T>) -> Vec<T> {
    page.records
        .into_iter()
        .map(|r| r.outcome.unwrap_or_else(|f| panic!("{f:?}")))
        .collect()
}

#[test]
fn nested_and_flat_guardian_records_type_the_same() {
    let nested = json!({"record": [{"id": 1, "name": "student_guardian_detail", "tables": {
        "guardian": {"guardianid": "12", "firstname": " Pat ", "lastname": "", "email": "old@x.org"},
        "guardianstudent": {"guardianid": "12", "studentsdcid": "5001", "accounttype": "WebAccess"},
        "pcas_emailcontact": {"emailaddress": "Pat@X.org"}
    }}]});
    let flat = json!({"record": [{"GuardianID": 12, "studentsdcid": "5001",
        "email": "Pat@X.org", "firstname": "Pat", "accounttype": "webaccess"}]});
    let a = oks(read(&guardians(), &nested));
    let b = oks(read(&guardians(), &flat));
    assert_eq!(a, b);
    let g = &a[0];
    assert_eq!((g.guardian_id, g.student_dcid), (12, 5001));
    assert_eq!(
        g.email.as_deref(),
        Some("Pat@X.org"),
        "the first candidate wins"
    );
    assert_eq!(g.first_name.as_deref(), Some("Pat"));
    assert_eq!(g.last_name, None, "\"\" is NULL");
    assert!(g.web_access_account);
    // A plain column under a table is no plain candidate's match.
    let odd = json!({"record": {"tables": {"other": {"email": "a@b.org",
        "guardianid": 1, "studentsdcid": 2}}}});
    let page = read(&guardians(), &odd);
    let f = page.records[0].outcome.as_ref().unwrap_err();
    assert_eq!(f.error.field, "guardianid");
}

#[test]
fn a_bad_value_in_one_record_is_reported_while_the_others_parse() {
    let page = json!({"name": "q", "record": [
        {"dcid": "1", "enroll_status": "0", "grade_level": "9"},
        {"dcid": "2", "enroll_status": "0", "grade_level": "x"},
        "not a record",
        {"tables": {"students": {"dcid": 4, "enroll_status": 0}, "s_x": "oops"}},
        {"dcid": 5, "enroll_status": -1},
    ]});
    let page = read(&students(), &page);
    assert_eq!(page.records.len(), 5);
    let outcomes: Vec<_> = page.records.iter().map(|r| &r.outcome).collect();
    assert_eq!(outcomes[0].as_ref().unwrap().grade_level, Some(9));
    let bad = outcomes[1].as_ref().unwrap_err();
    assert_eq!(
        (
            bad.record_id.as_str(),
            bad.error.field.as_str(),
            bad.error.value.as_str()
        ),
        ("dcid=2", "grade_level", "x")
    );
    let not_object = outcomes[2].as_ref().unwrap_err();
    assert_eq!(not_object.record_id, "page 2, record 3");
    assert_eq!(
        not_object.error.message,
        "a record must be a JSON object, got a string"
    );
    let table = outcomes[3].as_ref().unwrap_err();
    assert_eq!(
        (table.record_id.as_str(), table.error.field.as_str()),
        ("page 2, record 4", "(record)")
    );
    assert!(table.error.message.contains("\"s_x\""), "{table:?}");
    assert_eq!(outcomes[4].as_ref().unwrap().enroll_status, -1);
}

#[test]
fn unknown_columns_are_ignored() {
    let page = json!({"record": [{"dcid": "7", "enroll_status": "0", "hobby": {"a": [1]},
        "shoe_size": 44, "first_name": "Ava", "x": null}]});
    let s = &oks(read(&students(), &page))[0];
    assert_eq!((s.dcid, s.first_name.as_deref()), (7, Some("Ava")));
}

#[test]
fn column_names_are_resolved_once_per_page() {
    let record = |i: usize| {
        json!({"tables": {
            "guardian": {"guardianid": i.to_string(), "firstname": "A", "email": "a@x.org"},
            "guardianstudent": {"guardianid": i.to_string(), "studentsdcid": "9"},
        }})
    };
    let few = json!({"record": (0..2).map(record).collect::<Vec<_>>()});
    let many = json!({"record": (0..500).map(record).collect::<Vec<_>>()});
    let few = read(&guardians(), &few);
    let many = read(&guardians(), &many);
    assert_eq!(many.records.len(), 500);
    assert_eq!(few.columns_resolved, 5);
    assert_eq!(
        many.columns_resolved, 5,
        "one resolution per column, not per record"
    );
    let keys: Vec<&str> = many.keys.iter().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "guardian.email",
            "guardian.firstname",
            "guardian.guardianid",
            "guardianstudent.guardianid",
            "guardianstudent.studentsdcid"
        ]
    );
}

#[test]
fn pages_of_every_shape() {
    let empty = read(&students(), &json!({"name": "q"}));
    assert!(empty.records.is_empty() && empty.maybe_message && empty.shape.is_ok());
    let null = read(&students(), &json!({"record": null, "count": 0}));
    assert!(null.records.is_empty() && !null.maybe_message);
    let one = read(
        &students(),
        &json!({"record": {"dcid": 1, "enroll_status": 0}}),
    );
    assert_eq!(oks(one)[0].dcid, 1);
    let list = read(&students(), &json!([1]));
    assert_eq!(
        list.shape,
        Err("the page is a list, not a JSON object".into())
    );
    let number = read(&students(), &json!({"record": 5}));
    assert_eq!(number.shape, Err("`record` is a number, not a list".into()));
    let cut = br#"{"record": [{"dcid": "1", "enroll_st"#;
    assert!(students().read(1, cut).is_err());
}

/// The old path: the record as a map of strings, then typed.
fn old<T>(
    record: &Value,
    guardian: bool,
    build: impl Fn(&Columns) -> Result<T, parse::FieldError>,
) -> Result<T, String> {
    let cols = GuardianColumns::default();
    let columns = if guardian {
        guardian_record(&cols, record)
    } else {
        record_columns(record)
    };
    columns.and_then(|c| build(&c).map_err(|e| format!("{}={}: {}", e.field, e.value, e.message)))
}

fn new<T: Send + 'static>(reader: &Typed<T>, record: &Value) -> Result<T, String> {
    let page = read(reader, &json!({ "record": [record] }));
    let parsed = page.records.into_iter().next().unwrap();
    parsed.outcome.map_err(|f| {
        if f.error.field == "(record)" {
            f.error.message
        } else {
            format!("{}={}: {}", f.error.field, f.error.value, f.error.message)
        }
    })
}

#[test]
fn every_record_types_as_the_map_of_strings_did() {
    let student_records = [
        json!({"dcid": 5001.0, "id": "17", "student_number": 100234, "first_name": " Ava ",
            "last_name": null, "grade_level": "-1", "schoolid": "101", "enroll_status": 0,
            "entrydate": "2026-08-27", "orgemail": "", "personalemail": true}),
        json!({"tables": {"b": {"dcid": "2", "first_name": ""}, "a": {"first_name": "A"},
            "c": {"DCID": "3", "enroll_status": "0", "Last_Name": "L", "last_name": "l"}}}),
        json!({"DCID": "4", "dcid": "5", "enroll_status": "0", "tables": "x",
            "student_number": [1, {"b": 2}], "first_name": {"z": 1, "a": "\u{e9}"}}),
        json!({"dcid": "6", "enroll_status": "0", "entrydate": 20260827}),
        json!({"dcid": "7", "enroll_status": "0", "grade_level": 1.5, "id": 18446744073709551615u64}),
        json!({"dcid": "8", "enroll_status": "0", "first_name": "a\\\"b\n", "tables": null}),
        json!({"dcid": "1e3", "enroll_status": "0"}),
        json!({"tables": {"t": {"dcid": "9"}, "u": 5}}),
        json!(7),
    ];
    for record in &student_records {
        assert_eq!(
            new(&students(), record),
            old(record, false, |c| parse::student(c, Some(101))),
            "{record}"
        );
    }
    let guardian_records = [
        json!({"tables": {"guardian": {"guardianid": "1", "email": "g@x"},
            "guardianstudent": {"GuardianID": "2", "studentsdcid": 3, "accounttype": 1},
            "pcas_emailcontact": {"emailaddress": ""}}}),
        json!({"guardianid": "1", "studentsdcid": "3", "email": "a", "EMAIL": "b"}),
        json!({"guardianid": "1", "studentsdcid": "x"}),
        json!("nope"),
    ];
    for record in &guardian_records {
        assert_eq!(
            new(&guardians(), record),
            old(record, true, parse::guardian),
            "{record}"
        );
    }
}

#[test]
fn keys_are_equal_exactly_when_their_texts_are() {
    let key = |v: Value| {
        let page = read(&students(), &json!({ "record": [v] }));
        page.records.into_iter().next().unwrap().key
    };
    let a = key(json!({"dcid": "5001", "enroll_status": 0}));
    assert_eq!(a, key(json!({"dcid": 5001, "enroll_status": 0})));
    assert_eq!(a, Some(Key::Ints(5001, 0)));
    assert_ne!(a, key(json!({"dcid": "05001", "enroll_status": 0})));
    assert_eq!(key(json!({"enroll_status": 0})), None);
    let mut c = Columns::new();
    c.insert("studentsdcid".into(), "12".into());
    c.insert("personid".into(), "x".into());
    let keys = key_columns(super::CONTACTS_QUERY).unwrap();
    assert_eq!(key_of(&c, keys), Some(Key::Text("12\u{1f}x".into())));
}
