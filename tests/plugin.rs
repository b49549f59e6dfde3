#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The plugin built from `[powerschool.fields]`: the default build is exactly
//! `powerschool-plugin/`, other field names reach the SQL and the access
//! request, and the offline checks refuse what PowerSchool would refuse.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::Output;
use student_sync::config::{PowerSchoolFields, TableColumn};
use student_sync::powerschool::plugin::{Plugin, NAMED_QUERIES_PATH};

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Every entry of a zip: name to text.
fn unzip(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        files.insert(entry.name().unwrap().to_string(), text);
    }
    files
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
    cmd.args(args)
        .env_remove("STUDENT_SYNC_CONFIG")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_default_build_is_the_shipped_plugin_folder() {
    let plugin = Plugin::for_fields(&PowerSchoolFields::default());
    let files = plugin.files().unwrap();
    for file in &files {
        assert_eq!(
            file.text,
            repo_file(&format!("powerschool-plugin/{}", file.path)),
            "powerschool-plugin/{} differs from what `plugin build` writes from the defaults; \
             rebuild it with `student-sync plugin build` and unzip it there",
            file.path
        );
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    plugin.write_zip(&mut bytes).unwrap();
    let zipped = unzip(bytes.get_ref());
    let names: Vec<&str> = zipped.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["plugin.xml", NAMED_QUERIES_PATH]);
    assert_eq!(
        zipped["plugin.xml"],
        repo_file("powerschool-plugin/plugin.xml")
    );
    assert_eq!(
        zipped[NAMED_QUERIES_PATH],
        repo_file(&format!("powerschool-plugin/{NAMED_QUERIES_PATH}"))
    );
}

#[test]
fn the_access_request_names_what_the_queries_and_the_guardian_query_read() {
    let plugin = Plugin::for_fields(&PowerSchoolFields::default());
    let request: BTreeSet<String> = plugin
        .access_request()
        .iter()
        .map(|c| c.to_string())
        .collect();
    for needed in [
        "SCHOOLS.SCHOOL_NUMBER",
        "SCHOOLS.NAME",
        "STUDENTS.ENROLL_STATUS",
        "U_STUDENT.STUDENTSDCID",
        "U_STUDENT.ORGEMAIL",
        "S_AB_STU_X.ENRLYTYPE3",
        "U_STUDENTCONTACTDETAIL.STUDENTCONTACTDETAILID",
        "PERSONEMAILADDRESSASSOC.EMAILADDRESSPRIORITYORDER",
        "GUARDIAN.GUARDIANID",
        "GUARDIAN.ACCOUNTIDENTIFIER",
        "GUARDIANSTUDENT.ACCOUNTTYPE",
        "PCAS_ACCOUNT.PCAS_ACCOUNTID",
        "PCAS_EMAILCONTACT.EMAILADDRESS",
        "PCAS_EMAILCONTACT.PCAS_ACCOUNTID",
    ] {
        assert!(
            request.contains(needed),
            "{needed} missing from {request:?}"
        );
    }
    // Nothing the SQL does not read: no derived-table alias, no output name.
    assert!(request
        .iter()
        .all(|c| !c.starts_with("REL.") && !c.starts_with("PE.")));
    let xml = repo_file("powerschool-plugin/plugin.xml");
    assert_eq!(xml.matches("<field ").count(), request.len());
    assert!(xml.contains("<oauth/>"));
}

#[test]
fn other_field_names_reach_the_sql_and_the_access_request() {
    let fields = PowerSchoolFields {
        enrolment_types: [
            TableColumn::new("S_BC_STU_X", "ENROLTYPE_A"),
            TableColumn::new("S_BC_STU_X", "ENROLTYPE_B"),
            TableColumn::new("U_DISTRICT_STU", "ENROLTYPE_C"),
        ],
        independent_enrolment_type: "977".into(),
        decision_making: TableColumn::new("STUDENTCONTACTDETAIL", "ISCUSTODIAL"),
        student_org_email: TableColumn::new("U_DISTRICT_STU", "SCHOOL_EMAIL"),
        student_personal_email: TableColumn::new("STUDENTS", "EMAIL_ADDR"),
    };
    let plugin = Plugin::for_fields(&fields);
    let request: BTreeSet<String> = plugin
        .access_request()
        .iter()
        .map(|c| c.to_string())
        .collect();
    for expected in [
        "S_BC_STU_X.ENROLTYPE_A",
        "S_BC_STU_X.STUDENTSDCID",
        "U_DISTRICT_STU.ENROLTYPE_C",
        "U_DISTRICT_STU.SCHOOL_EMAIL",
        "U_DISTRICT_STU.STUDENTSDCID",
        "STUDENTS.EMAIL_ADDR",
        "STUDENTCONTACTDETAIL.ISCUSTODIAL",
    ] {
        assert!(request.contains(expected), "{expected} missing");
    }
    for gone in ["U_STUDENT.", "S_AB_STU_X.", "U_STUDENTCONTACTDETAIL."] {
        assert!(
            request.iter().all(|c| !c.starts_with(gone)),
            "{gone} still requested: {request:?}"
        );
    }
    let files = plugin.files().unwrap();
    let queries = &files[1].text;
    assert!(queries.contains("LEFT JOIN s_bc_stu_x ON s_bc_stu_x.studentsdcid = students.dcid"));
    assert!(queries.contains("TRIM(u_district_stu.enroltype_c) = '977'"));
    assert!(queries.contains("MAX(NVL(studentcontactdetail.iscustodial, 0)) AS isdecisionmaking"));
    assert!(queries.contains("students.email_addr"));
    assert!(!queries.contains("u_student.") && !queries.contains("s_ab_stu_x"));
    // The output names stay the client's.
    for name in [
        "enrlytype1",
        "enrlytype3",
        "orgemail",
        "personalemail",
        "isdecisionmaking",
    ] {
        assert!(queries.contains(&format!(">{name}</column>")), "{name}");
    }
}

#[test]
fn plugin_build_writes_the_zip_from_the_settings_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("district.zip");
    let o = run(
        &[
            "plugin",
            "build",
            "--out",
            out.to_str().unwrap(),
            "--version",
            "1.4.2",
        ],
        &[
            (
                "STUDENT_SYNC_POWERSCHOOL_FIELDS_STUDENT_ORG_EMAIL",
                "u_ext.login_mail",
            ),
            (
                "STUDENT_SYNC_POWERSCHOOL_FIELDS_INDEPENDENT_ENROLMENT_TYPE",
                "300",
            ),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("U_EXT.LOGIN_MAIL"), "{stdout}");
    let files = unzip(&std::fs::read(&out).unwrap());
    assert!(files["plugin.xml"].contains(r#"<field table="U_EXT" field="LOGIN_MAIL""#));
    assert!(files["plugin.xml"].contains(r#"version="1.4.2""#));
    assert!(files[NAMED_QUERIES_PATH].contains("u_ext.login_mail"));
    assert!(files[NAMED_QUERIES_PATH].contains("= '300'"));
}

#[test]
fn plugin_build_refuses_a_field_name_that_is_not_an_sql_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("district.zip");
    let o = run(
        &["plugin", "build", "--out", out.to_str().unwrap()],
        &[(
            "STUDENT_SYNC_POWERSCHOOL_FIELDS_DECISION_MAKING",
            "U_SCD.ISDM OR 1=1",
        )],
    );
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("powerschool.fields.decision_making") && stderr.contains("TABLE.COLUMN"),
        "{stderr}"
    );
    assert!(!out.exists(), "no zip is written");
}

fn refusal(plugin: &Plugin) -> String {
    let err = plugin.files().unwrap_err().to_string();
    let mut bytes = std::io::Cursor::new(Vec::new());
    assert!(plugin.write_zip(&mut bytes).is_err());
    assert!(
        bytes.get_ref().is_empty(),
        "nothing written for a refused plugin"
    );
    err
}

#[test]
fn the_offline_checks_refuse_what_powerschool_would_refuse() {
    let good = Plugin::for_fields(&PowerSchoolFields::default());

    let mut bad = good.clone();
    bad.queries[1].name = "com.pearson.core.students.enrolled".into();
    let err = refusal(&bad);
    assert!(
        err.contains("query com.pearson.core.students.enrolled"),
        "{err}"
    );
    assert!(err.contains("org.studentsync"), "{err}");

    let mut bad = good.clone();
    bad.queries[2].name = "org.studentsync.independent".into();
    let err = refusal(&bad);
    assert!(err.contains("five"), "{err}");

    let mut bad = good.clone();
    bad.queries[3].sql = bad.queries[3].sql.replace(
        "ORDER BY",
        "AND students.grade_level = :grade\n      ORDER BY",
    );
    let err = refusal(&bad);
    assert!(
        err.contains("org.studentsync.sync.students.contacts")
            && err.contains(":grade")
            && err.contains("declare grade"),
        "{err}"
    );

    let mut bad = good.clone();
    bad.queries[0].columns.swap(0, 1);
    let err = refusal(&bad);
    assert!(
        err.contains("org.studentsync.sync.schools.list") && err.contains("order of the SQL"),
        "{err}"
    );

    let mut bad = good.clone();
    bad.info.name = "student-sync for the district of a very long name".into();
    let err = refusal(&bad);
    assert!(err.contains("plugin name") && err.contains("40"), "{err}");

    let mut bad = good;
    bad.info.description = "x".repeat(257);
    assert!(refusal(&bad).contains("256"));
}
