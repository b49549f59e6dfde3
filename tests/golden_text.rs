#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The words admins read stay the same whatever the audit and the run's
//! problems are stored as: on every world of `fixtures/worlds`, the plan
//! preview (with details), the run report, the run's problems as read back,
//! every audit row as read back, and `explain` (text and JSON) of every
//! pair the world names are compared with `fixtures/golden/<world>.txt`,
//! written by the version whose words they are.
//!
//! `STUDENT_SYNC_BLESS=1 cargo test --test golden_text` rewrites the files
//! (only when the words are meant to change; the diff is then reviewed).

mod common;

use common::*;
use sqlx::{PgPool, Row};
use std::collections::BTreeSet;
use std::fmt::Write;
use student_sync::harness::seed;
use student_sync::harness::world::World;
use student_sync::rules::TierMatrix;
use student_sync::sync;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every (student, email) pair a world names: its guardian rows, its
/// users against each of its students, and the connections it ends with.
fn pairs_of(world: &World, exported: &[(i64, String)]) -> BTreeSet<(i64, String)> {
    let mut pairs: BTreeSet<(i64, String)> = exported.iter().cloned().collect();
    let ps = &world.powerschool;
    for g in &ps.guardian_accounts {
        if let Some(email) = &g.email {
            pairs.insert((g.student_dcid, email.clone()));
        }
    }
    for s in &ps.students {
        for u in &world.schoolengage.users {
            pairs.insert((s.dcid, u.email.clone()));
        }
    }
    pairs
}

/// Everything an admin reads about one world, in a fixed order.
async fn words_of(pool: &PgPool, world: &World) -> String {
    reset_tables(pool).await;
    seed::seed_world(pool, &world.schoolengage).await.unwrap();
    let (fake, settings, options) = world_setup(world).await;
    let mut out = String::new();
    let preview = sync::preview(pool, &settings, &client(&settings), options.today)
        .await
        .unwrap();
    writeln!(out, "== plan --details ==\n{}", preview.to_text(true)).unwrap();
    let outcome = sync::run_once(pool, &settings, &client(&settings), &options)
        .await
        .unwrap();
    fake.shutdown().await;
    let mut report = outcome.report.clone();
    report.duration = std::time::Duration::ZERO;
    writeln!(out, "== report ==\n{}", report.to_text()).unwrap();
    let mut json = serde_json::to_value(&report).unwrap();
    json["duration"] = serde_json::Value::Null;
    writeln!(out, "== report --json ==\n{json:#}").unwrap();

    writeln!(out, "== run_problems ==").unwrap();
    for p in student_sync::store::access::run_problems(pool, outcome.run_id)
        .await
        .unwrap()
    {
        writeln!(out, "{}", serde_json::to_string(&p).unwrap()).unwrap();
    }

    writeln!(out, "== access_audit ==").unwrap();
    let audited: Vec<(i64, i64)> =
        sqlx::query("SELECT DISTINCT student_dcid, user_id FROM access_audit ORDER BY 1, 2")
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    for (dcid, user) in audited {
        for mut a in student_sync::store::access::audit_history(pool, dcid, user)
            .await
            .unwrap()
        {
            a.recorded_at = chrono::DateTime::UNIX_EPOCH;
            writeln!(out, "{dcid} {user} {}", serde_json::to_string(&a).unwrap()).unwrap();
        }
    }

    let exported: Vec<(i64, String)> = student_sync::store::access::export(pool)
        .await
        .unwrap()
        .connections
        .into_iter()
        .map(|c| (c.student_dcid, c.email))
        .collect();
    let matrix = TierMatrix::default();
    for (dcid, email) in pairs_of(world, &exported) {
        let mut e = sync::explain::explain(pool, &settings.sync, &matrix, dcid, &email)
            .await
            .unwrap();
        for a in &mut e.audit_history {
            a.recorded_at = chrono::DateTime::UNIX_EPOCH;
        }
        writeln!(out, "== explain {dcid} {email} ==\n{}", e.to_text()).unwrap();
        writeln!(out, "{:#}", serde_json::to_value(&e).unwrap()).unwrap();
    }
    out
}

#[sqlx::test]
async fn every_world_reads_word_for_word_as_its_golden_file(pool: PgPool) {
    let bless = std::env::var_os("STUDENT_SYNC_BLESS").is_some();
    let dir = root().join("fixtures/golden");
    let files = fixture_world_files();
    assert!(files.len() >= 20, "the worlds of fixtures/worlds");
    let mut differ = Vec::new();
    for path in &files {
        let world = World::load(path).unwrap();
        let got = words_of(&pool, &world).await;
        let golden = dir.join(path.file_stem().unwrap()).with_extension("txt");
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (bless to write it)", golden.display()));
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(g, w)| g != w)
                .unwrap_or(got.lines().count().min(want.lines().count()));
            differ.push(format!(
                "{}: first difference at line {}\n  golden: {}\n  now:    {}",
                golden.display(),
                line + 1,
                want.lines().nth(line).unwrap_or("(end)"),
                got.lines().nth(line).unwrap_or("(end)")
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
