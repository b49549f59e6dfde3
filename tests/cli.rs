#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The binary as a district admin uses it: real processes, a fake PowerSchool
//! over HTTP, a fresh database per test.

mod common;

use common::*;
use sqlx::PgPool;
use std::process::Output;
use student_sync::harness::fake_powerschool::{
    FakeCredentials, Faults, FieldOverride, RunningFake,
};

async fn run(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("STUDENT_SYNC_CONFIG")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("binary runs")
}

fn powerschool_env(fake: &RunningFake) -> Vec<(&'static str, String)> {
    let creds = FakeCredentials::default();
    vec![
        ("STUDENT_SYNC_POWERSCHOOL_URL", fake.base_url()),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", creds.client_id),
        (
            "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET",
            creds.client_secret,
        ),
    ]
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn fetch_json_counts_records_and_reports_bad_ones() {
    let world = load_world("00-independent-parent-read-only.json");
    let mut side = world.powerschool.clone();
    // A second guardian row and a Web Access row: both are records received.
    let mut extra = side.guardian_accounts[0].clone();
    extra.guardianid = 9002;
    extra.web_access_account = true;
    side.guardian_accounts.push(extra);
    let faults = Faults {
        overrides: vec![FieldOverride {
            query: "org.studentsync.sync.students.contacts".into(),
            record_index: 0,
            field: "personid".into(),
            value: serde_json::json!("not-a-number"),
        }],
        ..Faults::default()
    };
    let fake = start_fake(side, faults).await;
    let out = run(&["fetch", "--json"], &powerschool_env(&fake)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&out)).expect("fetch --json prints JSON");
    assert_eq!(
        json["counts"],
        serde_json::json!({"guardians": 2, "students": 1, "independent_students": 1, "contacts": 0})
    );
    let problems = json["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0]["query"],
        "org.studentsync.sync.students.contacts"
    );
    assert_eq!(problems[0]["field"], "personid");
    assert_eq!(problems[0]["value"], "not-a-number");

    let text = run(&["fetch"], &powerschool_env(&fake)).await;
    assert!(text.status.success());
    assert!(stdout(&text).contains("personid"), "{}", stdout(&text));
}

#[tokio::test]
async fn fetch_with_wrong_secret_says_what_to_check() {
    let world = load_world("00-independent-parent-read-only.json");
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let mut env = powerschool_env(&fake);
    env[2].1 = "wrong-secret".into();
    let out = run(&["fetch"], &env).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("client id and secret"), "{err}");
    assert!(
        !err.contains("wrong-secret"),
        "the secret must never be printed: {err}"
    );
}

#[tokio::test]
async fn a_bad_setting_stops_the_program_naming_the_key() {
    let out = run(
        &["fetch"],
        &[
            (
                "STUDENT_SYNC_POWERSCHOOL_URL",
                "http://ps.example.org".into(),
            ),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id".into()),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "s".into()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("powerschool.url") && err.contains("loopback"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_database_says_how_to_start_postgresql() {
    let out = run(
        &["access", "export"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach PostgreSQL") && err.contains("pg_ctlcluster"),
        "{err}"
    );
}

#[sqlx::test]
async fn a_bad_tier_matrix_names_the_key(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let matrix = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/access_tiers.toml"
    ))
    .unwrap()
    .replacen(
        "view_forms = \"starter_forms_only\"",
        "view_forms = \"some\"",
        1,
    );
    std::fs::write(dir.path().join("access_tiers.toml"), matrix).unwrap();
    std::fs::write(
        dir.path().join("student-sync.toml"),
        "[sync]\naccess_tiers_file = \"access_tiers.toml\"\n",
    )
    .unwrap();
    let config = dir.path().join("student-sync.toml");
    let out = run(
        &[
            "--config",
            config.to_str().unwrap(),
            "explain",
            "--student",
            "1",
            "--email",
            "a@b.org",
        ],
        &[("DATABASE_URL", database_url(&pool).await)],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("restricted.view_forms"),
        "{}",
        stderr(&out)
    );
}

#[sqlx::test]
async fn seed_sync_export_and_explain_through_the_binary(pool: PgPool) {
    let world = load_world("06-case-d-existing-connection.json");
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let db = ("DATABASE_URL", database_url(&pool).await);
    let world_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/worlds/06-case-d-existing-connection.json"
    );

    let seeded = run(&["seed", "--world", world_path], std::slice::from_ref(&db)).await;
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let again = run(&["seed", "--world", world_path], std::slice::from_ref(&db)).await;
    assert_eq!(again.status.code(), Some(1), "seeding twice is refused");
    assert!(
        stderr(&again).contains("empty database"),
        "{}",
        stderr(&again)
    );

    let mut env = powerschool_env(&fake);
    env.push(db.clone());
    let synced = run(&["sync", "--once", "--json"], &env).await;
    assert!(synced.status.success(), "{}", stderr(&synced));
    let report: serde_json::Value = serde_json::from_str(&stdout(&synced)).unwrap();
    assert!(
        report["counts"]["connections"]["updated"].as_u64().unwrap() >= 1,
        "{report}"
    );

    let exported = run(&["access", "export"], std::slice::from_ref(&db)).await;
    assert!(exported.status.success(), "{}", stderr(&exported));
    let got: serde_json::Value = serde_json::from_str(&stdout(&exported)).unwrap();
    assert_eq!(
        got,
        serde_json::to_value(world.expect.as_ref().unwrap()).unwrap()
    );

    // Explain a restricted connection: the contact that is not decision-making is named.
    let restricted = world
        .expect
        .as_ref()
        .unwrap()
        .connections
        .iter()
        .find(|c| c.limits == ["R4"])
        .expect("the world has an R4 connection")
        .clone();
    let dcid = restricted.student_dcid.to_string();
    let text = run(
        &["explain", "--student", &dcid, "--email", &restricted.email],
        std::slice::from_ref(&db),
    )
    .await;
    assert!(text.status.success(), "{}", stderr(&text));
    let t = stdout(&text);
    assert!(t.contains("R4 failed"), "{t}");
    assert!(t.contains("restricted"), "{t}");
    assert!(t.contains("Audit history"), "{t}");
    assert!(
        t.contains("no connection → restricted") || t.contains("→ restricted"),
        "{t}"
    );

    let json = run(
        &[
            "explain",
            "--student",
            &dcid,
            "--email",
            &restricted.email,
            "--json",
        ],
        std::slice::from_ref(&db),
    )
    .await;
    let j: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(j["audit_history"].as_array().unwrap().len(), 1, "{j}");

    // A pair with no connection is explained in rule terms.
    let none = run(
        &[
            "explain",
            "--student",
            &dcid,
            "--email",
            "stranger@example.com",
        ],
        &[db],
    )
    .await;
    assert!(none.status.success());
    let t = stdout(&none);
    assert!(
        t.contains("stranger@example.com") && t.contains("R2"),
        "{t}"
    );
}

#[sqlx::test]
async fn demo_runs_the_bundled_world_and_matches_it(pool: PgPool) {
    let url = database_url(&pool).await;
    let out = run(&["demo"], &[("DATABASE_URL", url)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let t = stdout(&out);
    assert!(
        t.contains("Matches the world's expected access table"),
        "{t}"
    );
    // The demo made its own database beside the test's; leave nothing behind.
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let demo: String = name.chars().take(58).collect::<String>() + "_demo";
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{demo}\" WITH (FORCE)"))
        .execute(&pool)
        .await
        .expect("the demo database existed and is dropped");
}

#[sqlx::test]
async fn secrets_never_reach_the_logs_even_at_trace_level(pool: PgPool) {
    let world = load_world("06-case-d-existing-connection.json");
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    // Trust auth ignores the password, so a marked one can ride along unharmed.
    let mut url = url::Url::parse(&database_url(&pool).await).unwrap();
    url.set_password(Some("db-password-4711")).unwrap();
    let mut env = powerschool_env(&fake);
    env.push(("DATABASE_URL", url.to_string()));
    env.push(("RUST_LOG", "trace".into()));
    env.push(("STUDENT_SYNC_LOG_FORMAT", "json".into()));
    let out = run(&["sync", "--once"], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let everything = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        everything.contains("run 1 succeeded"),
        "the run logged its progress: {everything}"
    );
    let secret = FakeCredentials::default().client_secret;
    assert!(!everything.contains(&secret), "client secret leaked");
    assert!(
        !everything.contains("db-password-4711"),
        "database password leaked"
    );
}

#[tokio::test]
async fn a_missing_tier_matrix_file_is_a_configuration_mistake_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("student-sync.toml"),
        "[sync]\naccess_tiers_file = \"access_tiers.toml\"\n",
    )
    .unwrap();
    let config = dir.path().join("student-sync.toml");
    let out = run(
        &[
            "--config",
            config.to_str().unwrap(),
            "explain",
            "--student",
            "1",
            "--email",
            "a@b.org",
        ],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x".into())],
    )
    .await;
    // Exit 2, so systemd's RestartPreventExitStatus=2 does not loop on it.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("sync.access_tiers_file") && err.contains("copy config/access_tiers.toml"),
        "{err}"
    );
}

#[sqlx::test]
async fn sync_once_waits_for_a_run_that_holds_the_run_lock(pool: PgPool) {
    let world = load_world("06-case-d-existing-connection.json");
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    let mut env = powerschool_env(&fake);
    env.push(("DATABASE_URL", database_url(&pool).await));

    // Another run (a daemon's, say) holds the district's run lock.
    let mut holder = pool.acquire().await.unwrap();
    let key = student_sync::store::lock::run_lock_key("district");
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(&key)
        .execute(&mut *holder)
        .await
        .unwrap();
    let sync = tokio::spawn(async move { run(&["sync", "--once"], &env).await });
    until_someone_waits_for_a_lock(&pool).await;
    assert!(!sync.is_finished(), "sync --once must wait for the lock");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM sync_runs").await,
        0,
        "no run starts while it waits"
    );

    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(&key)
        .execute(&mut *holder)
        .await
        .unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), sync)
        .await
        .expect("it runs once the lock is free")
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another run holds the run lock"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'"
        )
        .await,
        1
    );
}

/// An answer read through `head` or `less` that stops early: a closed pipe
/// ends the printing quietly, with success, never a panic.
#[tokio::test]
async fn a_reader_that_stops_reading_early_is_not_an_error() {
    let world = load_world("00-independent-parent-read-only.json");
    let fake = start_fake(world.powerschool.clone(), Faults::default()).await;
    for args in [&["fetch"][..], &["fetch", "--json"][..]] {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_student-sync"));
        cmd.args(args)
            .env_remove("DATABASE_URL")
            .env_remove("STUDENT_SYNC_CONFIG")
            .env("RUST_LOG", "warn")
            .envs(powerschool_env(&fake))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("binary runs");
        // The reader goes away before the answer is printed (the fetch
        // first asks the fake PowerSchool over HTTP).
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

/// The binary allocates with jemalloc and its built-in options take effect
/// (the symbol jemalloc reads them from is spelled right): jemalloc's own
/// statistics, printed at exit when asked, show two arenas and freed pages
/// returned after 100 ms.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[tokio::test]
async fn the_binary_runs_on_jemalloc_with_its_options() {
    let out = run(
        &["--version"],
        &[("_RJEM_MALLOC_CONF", "stats_print:true".to_string())],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let stats = format!("{}{}", stdout(&out), stderr(&out));
    assert!(stats.contains("jemalloc statistics"), "{stats}");
    assert!(stats.contains("opt.narenas: 2"), "{stats}");
    assert!(stats.contains("opt.dirty_decay_ms: 100"), "{stats}");
    assert!(stats.contains("opt.muzzy_decay_ms: 0"), "{stats}");
}
