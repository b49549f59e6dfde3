#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! `student-sync doctor`, the real binary against the fake PowerSchool over
//! HTTP: all passed on a good server; a query that is not installed, a
//! district field that does not exist, and one the plugin is not granted each
//! fail with the query or column, its setting and the fix. No database.

mod common;

use common::*;
use std::process::Output;
use student_sync::harness::fake_powerschool::{
    FakeCredentials, Faults, FieldOverride, RunningFake, CONTACTS, INDEPENDENT,
};

const QUERIES: &[&str] = &[
    "org.studentsync.sync.schools.list",
    "com.pearson.core.guardian.student_guardian_detail",
    "org.studentsync.sync.students.independent",
    "org.studentsync.sync.students.enrolled",
    "org.studentsync.sync.students.contacts",
];

async fn doctor(fake: &RunningFake, args: &[&str], env: &[(&str, &str)]) -> Output {
    let creds = FakeCredentials::default();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
    cmd.arg("doctor")
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("STUDENT_SYNC_CONFIG")
        .env("RUST_LOG", "warn")
        .env("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url())
        .env("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", creds.client_id)
        .env(
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            creds.client_secret,
        )
        .env("STUDENT_SYNC_POWERSCHOOL_MAX_ATTEMPTS", "2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

async fn fake_with(faults: Faults) -> RunningFake {
    let world = load_world("00-independent-parent-read-only.json");
    start_fake(world.powerschool, faults).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `doctor` against a fake with `faults`: it exits 1 with exactly one
/// FAILED line, given with the whole output.
async fn one_failure(faults: Faults) -> (Output, Vec<String>) {
    let fake = fake_with(faults).await;
    let o = doctor(&fake, &[], &[]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let failed = failed_lines(&o);
    assert_eq!(failed.len(), 1, "{}", stdout(&o));
    (o, failed)
}

/// The text lines that start with FAILED.
fn failed_lines(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter(|l| l.starts_with("FAILED"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_check_passes_on_a_good_server() {
    let fake = fake_with(Faults::default()).await;
    let o = doctor(&fake, &[], &[]).await;
    let text = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(failed_lines(&o).is_empty(), "{text}");
    assert!(
        text.contains("ok      token: issued; it lasts 3599 s"),
        "{text}"
    );
    for q in QUERIES {
        assert!(
            text.contains(&format!("ok      query {q}: installed")),
            "{q}\n{text}"
        );
        assert!(
            text.contains(&format!("ok      query {q}: /count")),
            "{q}\n{text}"
        );
    }
    assert!(text.contains(
        "ok      field U_STUDENT.ORGEMAIL (powerschool.fields.student_org_email): exists"
    ));
    assert!(text.contains("grants all 15 fields it needs"), "{text}");
    assert!(
        text.contains("ok      guardian field email: read from pcas_emailcontact.emailaddress"),
        "{text}"
    );
    assert!(
        text.contains("ok      guardian field guardian_id: read from guardian.guardianid"),
        "{text}"
    );
    assert!(
        text.contains("guardianstudent.guardianid, guardianstudent.studentsdcid"),
        "{text}"
    );

    let o = doctor(&fake, &["--json"], &[]).await;
    assert_eq!(o.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["passed"], true);
    let checks = report["checks"].as_array().unwrap();
    // token, 5 queries x (installed, count) + 4 column checks + the guardian
    // record and its 6 fields, 6 district fields, the access list, the
    // page-size cap.
    assert_eq!(checks.len(), 1 + 10 + 4 + 1 + 6 + 6 + 1 + 1, "{report:#}");
    assert!(checks.iter().all(|c| c["ok"] == true));
    let stats = fake.stats();
    assert!(stats.records_served > 0, "{stats:?}");
}

#[tokio::test]
async fn a_query_that_is_not_installed_fails_naming_it() {
    let (o, failed) = one_failure(Faults {
        missing_queries: vec![CONTACTS.to_string()],
        ..Faults::default()
    })
    .await;
    assert!(
        failed[0].starts_with(&format!("FAILED  query {CONTACTS}: "))
            && failed[0].contains("not installed")
            && failed[0].contains("install or enable the student-sync plugin"),
        "{}",
        failed[0]
    );
    // Its count and columns are not asked once it is known to be missing.
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 of 28 doctor checks failed"));
}

#[tokio::test]
async fn a_field_missing_on_the_server_fails_naming_the_column_and_its_setting() {
    let (o, failed) = one_failure(Faults {
        missing_columns: vec!["U_STUDENT.ORGEMAIL".into()],
        ..Faults::default()
    })
    .await;
    assert!(
        failed[0].contains("field U_STUDENT.ORGEMAIL (powerschool.fields.student_org_email)")
            && failed[0].contains("does not exist on this server")
            && failed[0].contains("Invalid field"),
        "{}",
        failed[0]
    );
    assert!(stdout(&o).contains("fix: set powerschool.fields.student_org_email to"));

    // A district setting naming a column this server does not have.
    let fake = fake_with(Faults::default()).await;
    let o = doctor(
        &fake,
        &["--json"],
        &[(
            "STUDENT_SYNC_POWERSCHOOL_FIELDS_ENROLMENT_TYPE_3",
            "S_AB_STU_X.ENRLTYPE3",
        )],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bad: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{report:#}");
    assert_eq!(
        bad[0]["check"],
        "field S_AB_STU_X.ENRLTYPE3 (powerschool.fields.enrolment_type_3)"
    );
    assert!(bad[0]["fix"]
        .as_str()
        .unwrap()
        .contains("powerschool.fields.enrolment_type_3"));
}

#[tokio::test]
async fn a_field_the_plugin_is_not_granted_fails_with_the_plugin_fix() {
    let (o, failed) = one_failure(Faults {
        ungranted_columns: vec!["U_STUDENTCONTACTDETAIL.ISDECISIONMAKING".into()],
        ..Faults::default()
    })
    .await;
    assert!(
        failed[0].contains(
            "field U_STUDENTCONTACTDETAIL.ISDECISIONMAKING (powerschool.fields.decision_making)"
        ) && failed[0].contains("not granted")
            && failed[0].contains("NoAccess"),
        "{}",
        failed[0]
    );
    assert!(stdout(&o)
        .contains("fix: build the plugin from these settings (`student-sync plugin build`)"));
}

#[tokio::test]
async fn a_guardian_field_the_access_request_lacks_is_named() {
    let (_, failed) = one_failure(Faults {
        access_list_extra: vec!["PCAS_ACCOUNT.USERNAME".into()],
        ..Faults::default()
    })
    .await;
    assert!(
        failed[0].starts_with(
            "FAILED  access list of com.pearson.core.guardian.student_guardian_detail: "
        ) && failed[0].ends_with("the plugin's access request lacks PCAS_ACCOUNT.USERNAME"),
        "{}",
        failed[0]
    );
}

#[tokio::test]
async fn a_missing_required_column_in_the_first_record_fails_the_query() {
    let (_, failed) = one_failure(Faults {
        overrides: vec![FieldOverride {
            query: INDEPENDENT.into(),
            record_index: 0,
            field: "dcid".into(),
            value: serde_json::json!(""),
        }],
        ..Faults::default()
    })
    .await;
    assert!(
        failed[0].starts_with(&format!(
            "FAILED  query {INDEPENDENT}: columns: the first record lacks dcid"
        )),
        "{}",
        failed[0]
    );
}

#[tokio::test]
async fn bad_credentials_fail_the_token_check_and_stop_there() {
    let fake = fake_with(Faults::default()).await;
    let o = doctor(
        &fake,
        &[],
        &[("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "wrong")],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert_eq!(failed_lines(&o).len(), 1, "{text}");
    assert!(
        text.contains("FAILED  token: ") && text.contains("client id and secret"),
        "{text}"
    );
    assert_eq!(
        fake.stats().page_requests,
        0,
        "nothing asked after the token failed"
    );
}

#[tokio::test]
async fn a_guardian_email_under_another_column_fails_naming_the_keys_and_the_setting() {
    let fake = fake_with(Faults {
        guardian_email_column: Some("pcas_contact.mail".into()),
        ..Faults::default()
    })
    .await;
    let o = doctor(&fake, &[], &[]).await;
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let failed = failed_lines(&o);
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains("guardian field email")
            && failed[0].contains("powerschool.guardian_columns.email")
            && failed[0].contains("pcas_contact.mail"),
        "{text}"
    );
    assert!(text.contains("fix: add the column that holds it"), "{text}");

    // With the column among the candidates, every check passes.
    let o = doctor(
        &fake,
        &[],
        &[(
            "STUDENT_SYNC_POWERSCHOOL_GUARDIAN_COLUMNS_EMAIL",
            "pcas_contact.mail,guardian.email",
        )],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("ok      guardian field email: read from pcas_contact.mail"));
}

#[tokio::test]
async fn the_servers_page_size_cap_is_reported_with_the_setting_to_match() {
    let district = student_sync::harness::fake_powerschool::generate(200, 3);
    let fake = start_fake(
        district,
        Faults {
            page_size_cap: Some(20),
            ..Faults::default()
        },
    )
    .await;
    let o = doctor(&fake, &[], &[("STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE", "50")]).await;
    let text = stdout(&o);
    assert!(
        text.contains("page-size cap: the server serves at most 20 records a page")
            && text.contains("set it to 20 to match the server"),
        "{text}"
    );
}
