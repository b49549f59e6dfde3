#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! `student-sync demo` as a newcomer runs it: the real binary, from a
//! directory that is not the project's, against the test's PostgreSQL or a
//! throwaway cluster of its own.

mod common;

use common::database_url;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::Output;

async fn demo(args: &[&str], dir: &Path, env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
    cmd.arg("demo")
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("STUDENT_SYNC_DATABASE_URL")
        .env_remove("STUDENT_SYNC_CONFIG")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Drops the database the demo made beside the test's.
async fn drop_demo_database(pool: &PgPool) {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let demo: String = name.chars().take(58).collect::<String>() + "_demo";
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{demo}\" WITH (FORCE)"))
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test]
async fn demo_runs_its_built_in_world_from_any_directory(pool: PgPool) {
    let elsewhere = tempfile::tempdir().unwrap();
    let url = database_url(&pool).await;
    let out = demo(&[], elsewhere.path(), &[("DATABASE_URL", url)]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("(built in)"), "{stdout}");
    assert!(
        stdout.contains("Matches the world's expected access table"),
        "{stdout}"
    );
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none(),
        "the demo writes nothing into the directory it runs from"
    );
    drop_demo_database(&pool).await;
}

#[sqlx::test]
async fn demo_of_a_generated_district_prints_a_summary(pool: PgPool) {
    let elsewhere = tempfile::tempdir().unwrap();
    let url = database_url(&pool).await;
    let out = demo(
        &["--students", "300", "--seed", "4"],
        elsewhere.path(),
        &[("DATABASE_URL", url)],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("a generated district of 300 students"),
        "{stdout}"
    );
    assert!(stdout.contains("by tier: "), "{stdout}");
    assert!(
        !stdout.contains(" ↔ "),
        "connections are counted, not listed one by one: {stdout}"
    );
    drop_demo_database(&pool).await;
}

/// The directory holding `initdb` and `pg_ctl`, as the demo looks for it.
fn postgres_installed() -> bool {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| has(&d)))
        .unwrap_or(false);
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().any(|e| has(&e.path().join("bin"))))
        .unwrap_or(false);
    on_path || versions
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn demo_starts_and_removes_a_throwaway_cluster_when_none_answers() {
    if !postgres_installed() {
        eprintln!(
            "SKIPPED: initdb/pg_ctl are not installed; the throwaway cluster cannot be tested here"
        );
        return;
    }
    let elsewhere = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the demo's "default port" for the test.
    let port = free_port();
    let out = demo(
        &[],
        elsewhere.path(),
        &[("STUDENT_SYNC_DEMO_PG_PORT", port.to_string())],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(
        stderr.contains(&format!("No PostgreSQL answers on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        stdout.contains("Matches the world's expected access table"),
        "{stdout}"
    );
    let dir: PathBuf = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Throwaway PostgreSQL cluster in "))
        .and_then(|rest| rest.split(" on port ").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the demo names its cluster's directory: {stderr}"));
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("student-sync-demo-"),
        "{dir:?}"
    );
    assert!(!dir.exists(), "the throwaway cluster {dir:?} is removed");
}
