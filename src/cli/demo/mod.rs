//! `demo`: a world run end to end on one machine. A fake PowerSchool on a
//! loopback port serves the world's PowerSchool side (the bundled example
//! world, a world file, or a generated district of `--students N`), a fresh
//! demo database (never the district's own) gets its SchoolEngage side, one
//! sync runs over real HTTP with its progress bars, and the report is
//! printed (with the access table, compared with the world's expected one,
//! for a small world).
//!
//! The example world is built into the binary, so `demo` works from any
//! directory. With no database configured and none answering on the
//! loopback port, a throwaway PostgreSQL is started for the demo (`cluster`).

mod cluster;

use super::args::DemoArgs;
use super::load::{database, settings, Loaded};
use super::output::print_json;
use super::progress::Bars;
use super::CliError;
use crate::config::{self, Settings, DEFAULT_DATABASE_URL};
use crate::harness::fake_powerschool::{self, FakeCredentials, Faults, RunningFake};
use crate::harness::seed::seed_world;
use crate::harness::world::{AccessTable, World, WorldError};
use crate::harness::world_settings;
use crate::powerschool::PowerSchoolClient;
use crate::store::{self, RunTrigger};
use crate::sync::{self, RunOptions, RunOutcome};
use cluster::Cluster;
use std::collections::HashMap;
use std::time::Duration;

/// The example world every `student-sync` carries.
const EXAMPLE_WORLD_NAME: &str = "00-independent-parent-read-only.json";
const EXAMPLE_WORLD: &str =
    include_str!("../../../fixtures/worlds/00-independent-parent-read-only.json");

/// Above this many connections the demo prints counts, not every row.
const ROWS_SHOWN: usize = 40;

pub(super) async fn demo(loaded: Loaded, args: &DemoArgs) -> Result<(), CliError> {
    let (name, world) = choose_world(args)?;
    let mut offline = settings(loaded)?;
    // Taken over at once, so a Ctrl-C while the throwaway cluster starts
    // waits for it and then removes it, instead of killing the demo.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|source| CliError::Io {
        what: "cannot listen for Ctrl-C".into(),
        source,
    })?;
    // Kept until the demo ends: dropping it stops and removes the cluster.
    let cluster = choose_database(&mut offline, args.pg_port).await?;
    let throwaway = cluster.is_some();
    let work = run_demo(&name, &world, offline, args, throwaway);
    tokio::select! {
        result = work => {
            drop(cluster);
            result
        }
        _ = interrupt.recv() => {
            drop(cluster);
            Err(CliError::Usage("demo interrupted (Ctrl-C); its throwaway database is removed".into()))
        }
    }
}

/// The world to run and the name it is shown by.
fn choose_world(args: &DemoArgs) -> Result<(String, World), CliError> {
    if let Some(n) = args.students {
        let world = World {
            powerschool: fake_powerschool::generate(n, args.seed),
            ..World::default()
        };
        return Ok((
            format!("a generated district of {n} students (seed {})", args.seed),
            world,
        ));
    }
    match &args.world {
        Some(path) => Ok((path.display().to_string(), World::load(path)?)),
        None => {
            let world =
                serde_json::from_str(EXAMPLE_WORLD).map_err(|source| WorldError::Parse {
                    path: EXAMPLE_WORLD_NAME.to_string(),
                    source,
                })?;
            Ok((format!("{EXAMPLE_WORLD_NAME} (built in)"), world))
        }
    }
}

/// Points the settings at the demo's database: the configured server, or
/// with none configured, PostgreSQL on 127.0.0.1:`port` if it answers, or
/// else a throwaway cluster (returned: the caller keeps it alive).
async fn choose_database(offline: &mut Settings, port: u16) -> Result<Option<Cluster>, CliError> {
    let default_url: url::Url = DEFAULT_DATABASE_URL.parse().map_err(|e| {
        CliError::Usage(format!(
            "the built-in database URL {DEFAULT_DATABASE_URL} does not parse ({e}); set DATABASE_URL"
        ))
    })?;
    if offline.database.url != default_url {
        return Ok(None);
    }
    let mut url = default_url;
    let _ = url.set_port(Some(port));
    let answering = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    if answering {
        offline.database.url = url;
        return Ok(None);
    }
    eprintln!("No PostgreSQL answers on 127.0.0.1:{port}: starting a throwaway one for the demo…");
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .map_err(|e| CliError::Usage(format!("starting the throwaway PostgreSQL failed: {e}")))??;
    eprintln!(
        "Throwaway PostgreSQL cluster in {} on port {} (removed when the demo ends)",
        cluster.dir().display(),
        cluster.port()
    );
    offline.database.url = cluster.url().parse().map_err(|e| {
        CliError::Usage(format!(
            "the throwaway PostgreSQL's URL {} does not parse ({e}); set DATABASE_URL to a \
             PostgreSQL the demo may use instead",
            cluster.url()
        ))
    })?;
    offline.database.password = None;
    Ok(Some(cluster))
}

async fn run_demo(
    name: &str,
    world: &World,
    offline: Settings,
    args: &DemoArgs,
    throwaway: bool,
) -> Result<(), CliError> {
    // The demo never touches the district's database: it recreates its own.
    let offline = with_demo_database(offline);
    drop_demo_database(&offline).await?;
    let pool = database(&offline).await?;
    let credentials = FakeCredentials::default();
    let running = fake_powerschool::spawn(
        world.powerschool.clone(),
        credentials.clone(),
        Faults::default(),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
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
    let bars = Bars::start();
    let mut options = RunOptions::now(&settings, RunTrigger::Manual);
    options.progress = Some(bars.progress.clone());
    if let Some(today) = world_settings::today(&world.settings)? {
        options.today = today;
    }
    let outcome = sync::run_once(&pool, &settings, &client, &options).await;
    bars.finish().await;
    let outcome = outcome?;
    let access = store::access::export(&pool).await?;
    running.shutdown().await;
    pool.close().await;
    if args.json {
        print_json(&serde_json::json!({"report": outcome.report, "access": access}))?;
        return Ok(());
    }
    print_demo(name, world, &offline, &outcome, &access);
    print_explain_hint(&offline, &access, throwaway);
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
    name: &str,
    world: &World,
    offline: &Settings,
    outcome: &RunOutcome,
    access: &AccessTable,
) {
    println!("Demo: {name}");
    if !world.description.is_empty() {
        println!("  {}", world.description);
    }
    println!(
        "Fake PowerSchool on a loopback port; database {}\n",
        offline.database.display_url()
    );
    print!("{}", outcome.report.to_text());
    println!("\nAccess after the run:");
    if access.connections.len() > ROWS_SHOWN {
        print_access_summary(access);
    }
    for c in access
        .connections
        .iter()
        .take_while(|_| access.connections.len() <= ROWS_SHOWN)
    {
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
    if access.incomplete_users.len() > ROWS_SHOWN {
        println!(
            "Users flagged incomplete: {}",
            access.incomplete_users.len()
        );
    } else if !access.incomplete_users.is_empty() {
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
}

/// The `explain` command to try next, on the first connection.
fn print_explain_hint(offline: &Settings, access: &AccessTable, throwaway: bool) {
    if throwaway {
        println!(
            "\nThe throwaway database is gone with the demo. To look around after it \
             (`student-sync explain`, `status`), run the demo with DATABASE_URL set to a \
             PostgreSQL of your own."
        );
        return;
    }
    // Offer the first connection as a ready-to-paste example.
    let (dcid, email) = access
        .connections
        .first()
        .map(|c| (c.student_dcid.to_string(), c.email.clone()))
        .unwrap_or_else(|| ("DCID".into(), "EMAIL".into()));
    println!(
        "\nWhy this access? Try (while the demo database exists):\n  DATABASE_URL={} student-sync explain --student {dcid} --email {email}",
        offline.database.display_url()
    );
}

/// A large district's access table in a few lines: connections per tier
/// and per case.
fn print_access_summary(access: &AccessTable) {
    let mut tiers: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut cases: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in &access.connections {
        *tiers.entry(c.tier.as_str()).or_default() += 1;
        *cases.entry(c.case.as_str()).or_default() += 1;
    }
    let join = |m: &std::collections::BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  {} connections", access.connections.len());
    println!("  by tier: {}", join(&tiers));
    println!("  by case: {}", join(&cases));
}
