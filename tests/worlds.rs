#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! Every world in fixtures/worlds (and the shared example): fake PowerSchool
//! over HTTP → seed → sync → access export, compared with the world's
//! `expect` as plain JSON equality.

mod common;

use common::*;
use sqlx::PgPool;
use student_sync::harness::seed;
use student_sync::harness::world::World;
use student_sync::store;
use student_sync::sync;

fn world_files() -> Vec<std::path::PathBuf> {
    let mut files = fixture_world_files();
    // More worlds from elsewhere (a team's shared examples), when named.
    let extra = std::env::var_os("STUDENT_SYNC_EXTRA_WORLDS");
    if let Some(dir) = extra.and_then(|d| std::fs::read_dir(d).ok()) {
        files.extend(
            dir.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json")),
        );
    }
    files.sort();
    files
}

async fn run_world(pool: &PgPool, world: &World) -> student_sync::harness::world::AccessTable {
    reset_tables(pool).await;
    seed::seed_world(pool, &world.schoolengage)
        .await
        .expect("world seeds");
    let (fake, settings, options) = world_setup(world).await;
    sync::run_once(pool, &settings, &client(&settings), &options)
        .await
        .expect("run succeeds");
    fake.shutdown().await;
    store::access::export(pool).await.unwrap()
}

#[sqlx::test]
async fn every_world_gives_its_expected_access_table(pool: PgPool) {
    let files = world_files();
    assert!(
        files.len() >= 20,
        "expected the worlds of fixtures/worlds, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let world = World::load(path).unwrap();
        let expect = world
            .expect
            .clone()
            .unwrap_or_else(|| panic!("{} has no expect", path.display()));
        let got = run_world(&pool, &world).await;
        let got_json = serde_json::to_value(&got).unwrap();
        let expect_json = serde_json::to_value(&expect).unwrap();
        if got_json != expect_json {
            failures.push(format!(
                "{}\n  {}\n  expected {}\n  got      {}",
                path.file_name().unwrap().to_string_lossy(),
                world.description,
                expect_json,
                got_json
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} worlds differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[sqlx::test]
async fn a_world_synced_twice_keeps_its_access_table(pool: PgPool) {
    // The second night must not flip cases back and forth or write again.
    for path in world_files() {
        let world = World::load(&path).unwrap();
        let first = run_world(&pool, &world).await;
        let (_fake, settings, options) = world_setup(&world).await;
        let before = fingerprint(&pool).await;
        let second = sync::run_once(&pool, &settings, &client(&settings), &options)
            .await
            .unwrap();
        let c = &second.report.counts.connections;
        assert_eq!(
            (c.created, c.updated, c.removed),
            (0, 0, 0),
            "{}: {c:?}",
            path.display()
        );
        assert_eq!(fingerprint(&pool).await, before, "{}", path.display());
        // The same access; what the first night created is case D now.
        let mut expected = first.clone();
        for c in &mut expected.connections {
            if c.case == "created" || c.case == "matched_form_creator" {
                c.case = "synced".into();
            }
        }
        assert_eq!(
            store::access::export(&pool).await.unwrap(),
            expected,
            "{}",
            path.display()
        );
    }
}
