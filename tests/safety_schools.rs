#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Safety holds of a district of two schools: the limits per school and per
//! table that hold a night, and what a held plan keeps (its reasons as the
//! audit's codes, read back and written on approval). `tests/safety.rs` has
//! the hold, approve and discard cycle itself.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::harness::fake_powerschool::Faults;
use student_sync::harness::world::PowerSchoolSide;
use student_sync::store::{self};
use student_sync::sync::{self, plan::Plan, SyncError};

/// Two schools of twelve students, each student with one decision-making
/// contact and a Parent Portal account of the same email.
fn two_schools() -> PowerSchoolSide {
    use common::records::{account, contact, student};
    use student_sync::harness::world::WorldSchool;
    let mut side = PowerSchoolSide::default();
    for (school, first) in [(101, 5001), (102, 6001)] {
        side.schools.push(WorldSchool {
            school_number: school,
            name: format!("School {school}"),
        });
        for dcid in first..first + 12 {
            side.students.push(student(dcid, school, 0));
            side.contacts.push(contact(dcid, dcid, 1));
            side.guardian_accounts.push(account(
                dcid,
                dcid,
                &format!("p{dcid}@example.com"),
                false,
            ));
        }
    }
    side
}

/// A night held by `held_after`.
struct HeldNight {
    run_id: i64,
    reason: String,
    /// What `plan` said just before the run.
    preview: sync::report::PlanPreview,
    settings: student_sync::config::Settings,
}

/// Night 1 applies `two_schools`; night 2's answer is `night2`, and must be
/// held without changing any live table.
async fn held_after(
    pool: &PgPool,
    night2: PowerSchoolSide,
    tune: impl Fn(&mut student_sync::config::Settings),
) -> HeldNight {
    let fake = start_fake(two_schools(), Faults::default()).await;
    let mut settings = settings_for(&fake);
    tune(&mut settings);
    sync::run_once(pool, &settings, &client(&settings), &options(&settings))
        .await
        .expect("night 1 succeeds");
    fake.shutdown().await;

    let fake = start_fake(night2, Faults::default()).await;
    let mut settings = settings_for(&fake);
    tune(&mut settings);
    let preview = sync::preview(
        pool,
        &settings,
        &client(&settings),
        options(&settings).today,
    )
    .await
    .unwrap();
    let live_before = fingerprint(pool).await;
    let err = sync::run_once(pool, &settings, &client(&settings), &options(&settings))
        .await
        .expect_err("night 2 must be held");
    fake.shutdown().await;
    let SyncError::Held { run_id, reason } = err else {
        panic!("expected a hold, got {err}");
    };
    assert_eq!(
        fingerprint(pool).await,
        live_before,
        "a held run changed live tables"
    );
    HeldNight {
        run_id,
        reason,
        preview,
        settings,
    }
}

#[sqlx::test]
async fn a_school_whose_contacts_come_back_empty_is_held(pool: PgPool) {
    let mut night2 = two_schools();
    night2.contacts.retain(|c| c.student_dcid < 6000);
    // Only the per-school limit may catch it: the district-wide ones are opened up.
    let held = held_after(&pool, night2, |s| {
        let wide = student_sync::config::Threshold {
            count: 100_000,
            percent: 100.0,
        };
        s.safety.contacts_removed = wide;
        s.safety.connections_orphaned = wide;
        s.safety.connections_losing_access = wide;
    })
    .await;
    let (reason, plan) = (held.reason, held.preview.to_text(false));
    assert!(
        reason.contains("safety.school_contacts_shrink: 12 fewer contacts at school 102"),
        "{reason}"
    );
    assert!(reason.contains("100.0% of 12"), "{reason}");
    assert!(!reason.contains("school 101"), "{reason}");
    assert!(!reason.contains("safety.contacts_removed"), "{reason}");
    assert!(
        plan.contains("HOLD safety.school_contacts_shrink"),
        "{plan}"
    );
    // `plan` shows every limit, crossed or not.
    for key in [
        "safety.contacts_removed",
        "safety.guardian_accounts_removed",
        "safety.connections_orphaned",
        "safety.school_students_shrink",
    ] {
        assert!(plan.contains(&format!("ok   {key}")), "{key}: {plan}");
    }
}

#[sqlx::test]
async fn removed_guardian_accounts_and_orphaned_connections_hold_the_run(pool: PgPool) {
    let mut night2 = two_schools();
    night2.guardian_accounts.retain(|g| g.student_dcid < 6000);
    let reason = held_after(&pool, night2, |_| {}).await.reason;
    assert!(
        reason.contains(
            "safety.guardian_accounts_removed: 12 guardian accounts would be removed (50.0% of 24)"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("safety.connections_orphaned: 12 connections would be orphaned"),
        "{reason}"
    );
}

#[sqlx::test]
async fn removed_contacts_hold_the_run(pool: PgPool) {
    let mut night2 = two_schools();
    // Half of each school's contacts: no school loses more than its limit's share.
    night2.contacts.retain(|c| c.student_dcid % 2 == 0);
    let reason = held_after(&pool, night2, |s| {
        s.safety.school_contacts_shrink.percent = 60.0;
    })
    .await
    .reason;
    assert!(
        reason.contains("safety.contacts_removed: 12 contacts would be removed (50.0% of 24)"),
        "{reason}"
    );
    assert!(!reason.contains("school_contacts_shrink"), "{reason}");
}

/// A run keeps its connections' reasons as the audit's codes: the plan it
/// holds reads them back as the very verdicts `plan` shows in sentences, and
/// approving it writes those codes to the audit.
#[sqlx::test]
async fn a_held_plan_keeps_its_reasons_as_codes_and_reads_them_back(pool: PgPool) {
    let mut night2 = two_schools();
    night2.guardian_accounts.retain(|g| g.student_dcid < 6000);
    let HeldNight {
        run_id,
        preview: shown,
        settings,
        ..
    } = held_after(&pool, night2, |_| {}).await;
    let stored = store::held::load(&pool, run_id).await.unwrap();
    let plan: Plan = serde_json::from_slice(&stored.plan).unwrap();
    assert_eq!(plan.connections.len(), 12, "{:?}", plan.counts);
    assert!(plan
        .connections
        .iter()
        .all(|c| c.decision.coded.is_some() && c.decision.verdicts.is_empty()));
    let read_back = sync::report::PlanPreview::new(&plan, None, shown.safety.clone());
    let verdicts = |p: &sync::report::PlanPreview| -> Vec<_> {
        p.changes
            .iter()
            .filter(|c| c.kind == "connection")
            .map(|c| c.verdicts.clone())
            .collect()
    };
    // (The record is labelled without the logins: a stored plan has no state.)
    assert_eq!(verdicts(&read_back), verdicts(&shown), "the same verdicts");

    let report = sync::hold::approve(&pool, &settings, run_id, "approver-test")
        .await
        .expect("approval applies");
    assert_eq!(report.run_id, run_id);
    let stored_codes: Vec<String> = sqlx::query_scalar(
        "SELECT reason_codes::text FROM access_audit WHERE run_id = $1 ORDER BY student_dcid",
    )
    .bind(run_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut planned: Vec<(i64, String)> = plan
        .connections
        .iter()
        .map(|c| {
            let codes = &c.decision.coded.as_ref().unwrap().codes;
            let value: serde_json::Value = serde_json::from_str(codes).unwrap();
            (c.decision.student_dcid, value.to_string())
        })
        .collect();
    planned.sort();
    let stored_codes: Vec<String> = stored_codes
        .iter()
        .map(|t| {
            serde_json::from_str::<serde_json::Value>(t)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        stored_codes,
        planned.into_iter().map(|(_, c)| c).collect::<Vec<_>>()
    );
}
