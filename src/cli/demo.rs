//! `demo`: a world run end to end on one machine. A fake PowerSchool on a
//! loopback port serves the world's PowerSchool side, a fresh demo database
//! (never the district's own) gets its SchoolEngage side, one sync runs over
//! real HTTP, and the report and access table are printed and compared
//! with the world's expected table.

use super::load::{database, settings, Loaded};
use super::output::print_json;
use super::CliError;
use crate::config::{self, Settings};
use crate::harness::fake_powerschool::{self, FakeCredentials, Faults, RunningFake};
use crate::harness::seed::seed_world;
use crate::harness::world::{AccessTable, World};
use crate::harness::world_settings;
use crate::powerschool::PowerSchoolClient;
use crate::store::{self, RunTrigger};
use crate::sync::{self, RunOptions, RunOutcome};
use std::collections::HashMap;
use std::path::Path;

pub(super) async fn demo(loaded: Loaded, world_path: &Path, json: bool) -> Result<(), CliError> {
    let world = World::load(world_path)?;
    // The demo never touches the district's database: it recreates its own.
    let offline = with_demo_database(settings(loaded)?);
    drop_demo_database(&offline).await?;
    let pool = database(&offline).await?;
    let credentials = FakeCredentials::default();
    let running = fake_powerschool::spawn(
        world.powerschool.clone(),
        credentials.clone(),
        Faults::default(),
        "127.0.0.1:0".parse().expect("loopback address"),
    )
    .await
    .map_err(|source| CliError::Io {
        what: "cannot start the fake PowerSchool on a loopback port".into(),
        source,
    })?;
    let mut settings = settings_for_fake(&running, &credentials, &offline)?;
    world_settings::apply(&world.settings, &mut settings.sync)?;
    seed_world(&pool, &world.schoolengage).await?;
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let mut options = RunOptions::now(&settings, RunTrigger::Manual);
    if let Some(today) = world_settings::today(&world.settings)? {
        options.today = today;
    }
    let outcome = sync::run_once(&pool, &settings, &client, &options).await?;
    let access = store::access::export(&pool).await?;
    running.shutdown().await;
    if json {
        print_json(&serde_json::json!({"report": outcome.report, "access": access}));
        return Ok(());
    }
    print_demo(world_path, &world, &offline, &outcome, &access);
    Ok(())
}

/// The settings with the database renamed to the demo's own: the configured
/// name with `_demo` appended.
fn with_demo_database(mut offline: Settings) -> Settings {
    let mut url = offline.database.url.clone();
    // PostgreSQL cuts names at 63 bytes; a cut name would be the district's own.
    let base: String = url
        .path()
        .trim_start_matches('/')
        .chars()
        .take(58)
        .collect();
    let name = format!("{base}_demo");
    url.set_path(&format!("/{name}"));
    offline.database.url = url;
    offline
}

/// Drops the demo database a previous demo left, if any, so every demo
/// starts from an empty one.
async fn drop_demo_database(offline: &Settings) -> Result<(), CliError> {
    let connect_url = offline.database.connect_url();
    store::drop_database_if_exists(connect_url.expose(), &offline.database.display_url()).await?;
    Ok(())
}

/// Settings loaded as a district's would be, from an environment that points
/// at the fake PowerSchool and the demo database.
fn settings_for_fake(
    running: &RunningFake,
    credentials: &FakeCredentials,
    offline: &Settings,
) -> Result<Settings, CliError> {
    let mut sources_env = HashMap::new();
    sources_env.insert(
        "STUDENT_SYNC_POWERSCHOOL_URL".to_string(),
        running.base_url(),
    );
    sources_env.insert(
        "STUDENT_SYNC_POWERSCHOOL_CLIENT_ID".to_string(),
        credentials.client_id.clone(),
    );
    sources_env.insert(
        "STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET".to_string(),
        credentials.client_secret.clone(),
    );
    sources_env.insert(
        "DATABASE_URL".to_string(),
        offline.database.connect_url().expose().to_string(),
    );
    Ok(Settings::load(&config::Sources {
        file: None,
        env: sources_env,
    })?)
}

/// The demo's text: the world, the run report, the access table after the
/// run, whether it matches the world's expected table, and the `explain`
/// command to try next.
fn print_demo(
    world_path: &Path,
    world: &World,
    offline: &Settings,
    outcome: &RunOutcome,
    access: &AccessTable,
) {
    println!("Demo: {}", world_path.display());
    println!("  {}", world.description);
    println!(
        "Fake PowerSchool on a loopback port; database {}\n",
        offline.database.display_url()
    );
    print!("{}", outcome.report.to_text());
    println!("\nAccess after the run:");
    for c in &access.connections {
        let limits = if c.limits.is_empty() {
            String::new()
        } else {
            format!(" limited by {}", c.limits.join(", "))
        };
        println!(
            "  student {} ↔ {}: {} ({}){}",
            c.student_dcid, c.email, c.tier, c.case, limits
        );
    }
    if !access.incomplete_users.is_empty() {
        println!(
            "Users flagged incomplete: {}",
            access.incomplete_users.join(", ")
        );
    }
    if let Some(expect) = &world.expect {
        if expect == access {
            println!("\nMatches the world's expected access table.");
        } else {
            println!(
                "\nDIFFERS from the world's expected access table:\n{}",
                serde_json::to_string_pretty(expect).unwrap_or_default()
            );
        }
    }
    // Offer the first connection as a ready-to-paste example.
    let (dcid, email) = access
        .connections
        .first()
        .map(|c| (c.student_dcid.to_string(), c.email.clone()))
        .unwrap_or_else(|| ("DCID".into(), "EMAIL".into()));
    println!(
        "\nWhy this access? Try:\n  DATABASE_URL={} cargo run --release -- explain --student {dcid} --email {email}",
        offline.database.display_url()
    );
}
