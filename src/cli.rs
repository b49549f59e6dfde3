//! The command line: argument parsing and wiring of the other modules, and
//! nothing else. Each command turns its module's error into one message that
//! says what failed, for which record or setting, and what to do.

use crate::config::{self, ConfigError, Settings, Sources};
use crate::harness::fake_powerschool::{self, FakeCredentials, Faults};
use crate::harness::world::{World, WorldError};
use crate::powerschool::{PowerSchoolClient, PowerSchoolError};
use crate::rules::{self, TierMatrix};
use crate::store::{self, RunTrigger, StoreError};
use crate::sync::{self, RunOptions, SyncError};
use clap::{Args, Parser, Subcommand};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "student-sync",
    version,
    about = "Nightly PowerSchool → SchoolEngage sync of students, guardians and their access"
)]
pub struct Cli {
    /// The settings file (see config/student-sync.example.toml). Environment
    /// variables override it; without it the environment alone is used.
    #[arg(long, global = true, env = "STUDENT_SYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: auto (human on a terminal, JSON under systemd), human, json.
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch everything from PowerSchool and print what arrived: the first
    /// command a district runs to check its credentials. Writes nothing.
    Fetch {
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run one full sync now against the configured PowerSchool.
    Sync {
        /// Run once and exit (the only mode; the daemon runs on a schedule).
        #[arg(long)]
        once: bool,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Load a world's SchoolEngage side (users, connections, forms) into an empty database.
    Seed {
        /// A world file (see fixtures/worlds/ and world-format.md).
        #[arg(long)]
        world: PathBuf,
    },
    /// Start a fake PowerSchool with the bundled example world, seed a fresh
    /// demo database, sync over real HTTP and print the run report.
    Demo {
        /// The world to run (relative to the project folder).
        #[arg(
            long,
            default_value = "fixtures/worlds/00-independent-parent-read-only.json"
        )]
        world: PathBuf,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The access table.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Why does this parent see (or not see) this child?
    Explain {
        /// The student's DCID (students.dcid in PowerSchool).
        #[arg(long)]
        student: i64,
        /// The guardian's SchoolEngage login email (any case or spacing).
        #[arg(long)]
        email: String,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve a world (or a generated district) as a fake PowerSchool over HTTP.
    FakePowerschool(FakeArgs),
    /// Fetch and plan exactly as a run would, against the live database, and
    /// write nothing: counts per kind, connections tier up/down, created and
    /// orphaned, and which safety thresholds a run now would cross.
    Plan {
        /// Every change with its reason, as JSON.
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
        /// Every change with its reason, as text.
        #[arg(long)]
        details: bool,
    },
    /// Apply a held run's stored plan, exactly as stored, if the database has
    /// not changed since it was made (exit 4 if it has). Recorded with the OS user.
    Approve {
        /// The held run's id (see `student-sync status`).
        run_id: i64,
        /// Show the stored plan, every change with its reason, and whether it
        /// still applies; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Drop a held run's plan (the run becomes `discarded`). Recorded with the OS user.
    Discard {
        /// The held run's id (see `student-sync status`).
        run_id: i64,
    },
    /// Sync one student, or one guardian's students, now: fetched with
    /// PowerQuery arguments, applied in one transaction, each connection in
    /// scope explained. Waits while a nightly run holds the run lock.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["student", "email"])))]
    Spot {
        /// The student's DCID (students.dcid).
        #[arg(long)]
        student: Option<i64>,
        /// A guardian's email: spot-syncs every student linked to it.
        #[arg(long)]
        email: Option<String>,
        /// Also create SchoolEngage users for new Parent Portal accounts
        /// (left to the nightly run otherwise).
        #[arg(long)]
        create_users: bool,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The nightly service: runs on `schedule.cron` in `schedule.timezone`,
    /// resumes an interrupted run at start, waits as a standby while another
    /// instance is active, serves /healthz and /metrics on `daemon.listen`,
    /// and stops cleanly on SIGTERM/SIGINT.
    Daemon,
    /// Run a sync now, even after a failure tonight or in a blackout range,
    /// waiting for the run in progress (if any) to finish first.
    Run {
        /// Required: the run starts now (the schedule is the daemon's job).
        #[arg(long)]
        now: bool,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The last runs, the run in progress, the next scheduled run, and which
    /// process holds the district and run locks.
    Status {
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Print the whole access table as JSON (the world `expect` shape).
    Export,
}

#[derive(Debug, Args)]
pub struct FakeArgs {
    /// A world file whose `powerschool` side is served.
    #[arg(long, conflicts_with = "generate")]
    pub world: Option<PathBuf>,
    /// A synthetic district instead of a file: `students=N,seed=S`.
    #[arg(long)]
    pub generate: Option<String>,
    #[arg(long, default_value = "127.0.0.1:8085")]
    pub listen: SocketAddr,
    #[arg(long, default_value = "student-sync-demo")]
    pub client_id: String,
    /// The client secret the fake accepts (a test value, not a real secret).
    #[arg(long, default_value = "demo-secret")]
    pub client_secret: String,
    /// Delay before each PowerQuery page, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of page requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of page requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// Retry-After seconds sent with a 429.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Tokens expire after this many seconds.
    #[arg(long)]
    pub token_ttl_secs: Option<u64>,
    /// Fraction of pages cut off mid-JSON.
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    PowerSchool(#[from] PowerSchoolError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Sync(#[from] SyncError),
    #[error("{0}")]
    World(#[from] WorldError),
    #[error("tier matrix {path}: {source}")]
    TierMatrix {
        path: String,
        source: rules::TierMatrixError,
    },
    #[error(
        "cannot read sync.access_tiers_file {path}: {source}; copy config/access_tiers.toml \
         there, or remove the key to use the built-in default matrix"
    )]
    TierMatrixUnreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl CliError {
    /// 2 for a usage or configuration mistake, 3 for a run held for approval,
    /// 4 for an approval refused, 1 for anything else that failed at run time.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_)
            | CliError::Usage(_)
            | CliError::TierMatrix { .. }
            | CliError::TierMatrixUnreadable { .. } => 2,
            // A run held for approval by a safety threshold (nothing applied).
            CliError::Sync(SyncError::Held { .. }) => 3,
            // `approve` refused: the database changed, or a newer run exists.
            CliError::Sync(SyncError::StateChanged { .. } | SyncError::Superseded { .. }) => 4,
            CliError::Daemon(e) => e.exit_code(),
            _ => 1,
        }
    }
}

fn settings(cli: &Cli, offline: bool) -> Result<Settings, CliError> {
    let sources = Sources::from_process(cli.config.as_deref());
    let settings = if offline {
        Settings::load_offline(&sources)?
    } else {
        Settings::load(&sources)?
    };
    Ok(settings)
}

/// Loads and validates the tier matrix named in the settings.
pub fn tier_matrix(settings: &Settings) -> Result<TierMatrix, CliError> {
    match &settings.sync.access_tiers_file {
        None => Ok(TierMatrix::default()),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| CliError::TierMatrixUnreadable {
                    path: path.display().to_string(),
                    source,
                })?;
            TierMatrix::from_toml_str(&text).map_err(|source| CliError::TierMatrix {
                path: path.display().to_string(),
                source,
            })
        }
    }
}

pub async fn database(settings: &Settings) -> Result<PgPool, CliError> {
    Ok(store::connect(
        settings.database.connect_url().expose(),
        &settings.database.display_url(),
        settings.database.max_connections,
    )
    .await?)
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("output serialises")
    );
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Fetch { json } => fetch(&settings(&cli, false)?, *json).await,
        Command::Sync { once, json } => {
            if !once {
                return Err(CliError::Usage(
                    "`sync` runs one sync and needs --once; use `student-sync daemon` for the nightly schedule".into(),
                ));
            }
            let settings = settings(&cli, false)?;
            tier_matrix(&settings)?;
            let pool = database(&settings).await?;
            let client = PowerSchoolClient::new(&settings.powerschool)?;
            // Never beside a nightly run: wait for the same lock the daemon takes.
            let lock = store::lock::wait_for_lock(&pool, &sync::run_lock_key(&settings), || {
                tracing::warn!("another run holds the run lock; this sync starts when it is free")
            })
            .await?;
            let outcome = sync::run_once(
                &pool,
                &settings,
                &client,
                &RunOptions::now(&settings, RunTrigger::Manual),
            )
            .await;
            lock.release().await;
            let outcome = outcome?;
            if *json {
                print_json(&outcome.report);
            } else {
                print!("{}", outcome.report.to_text());
            }
            Ok(())
        }
        Command::Seed { world } => {
            let settings = settings(&cli, true)?;
            let world = World::load(world)?;
            let pool = database(&settings).await?;
            crate::harness::seed::seed_world(&pool, &world.schoolengage).await?;
            println!(
                "Seeded {} users, {} connections, {} forms into {}",
                world.schoolengage.users.len(),
                world.schoolengage.connections.len(),
                world.schoolengage.forms.len(),
                settings.database.display_url()
            );
            Ok(())
        }
        Command::Demo { world, json } => demo(&cli, world, *json).await,
        Command::Access {
            command: AccessCommand::Export,
        } => {
            let settings = settings(&cli, true)?;
            let pool = database(&settings).await?;
            print_json(&store::access::export(&pool).await?);
            Ok(())
        }
        Command::Explain {
            student,
            email,
            json,
        } => {
            let settings = settings(&cli, true)?;
            let matrix = tier_matrix(&settings)?;
            let pool = database(&settings).await?;
            let explanation =
                sync::explain::explain(&pool, &settings.sync, &matrix, *student, email).await?;
            if *json {
                print_json(&explanation);
            } else {
                print!("{}", explanation.to_text());
            }
            Ok(())
        }
        Command::FakePowerschool(args) => fake(args).await,
        Command::Plan { json, details } => plan_command(&cli, *json, *details).await,
        Command::Approve {
            run_id,
            dry_run,
            json,
        } => approve_command(&cli, *run_id, *dry_run, *json).await,
        Command::Discard { run_id } => {
            let settings = settings(&cli, true)?;
            let pool = database(&settings).await?;
            let who = sync::hold::os_user();
            sync::hold::discard(&pool, *run_id, &who).await?;
            println!(
                "Run {run_id} discarded by {who}; its plan is dropped and nothing was applied."
            );
            Ok(())
        }
        Command::Spot {
            student,
            email,
            create_users,
            json,
        } => spot_command(&cli, *student, email.as_deref(), *create_users, *json).await,
        Command::Daemon => {
            let settings = settings(&cli, false)?;
            tier_matrix(&settings)?;
            Ok(crate::daemon::run_daemon(settings).await?)
        }
        Command::Run { now, json } => {
            if !now {
                return Err(CliError::Usage(
                    "`run` needs --now (it forces a run now); the daemon runs on the schedule"
                        .into(),
                ));
            }
            let settings = settings(&cli, false)?;
            tier_matrix(&settings)?;
            let outcome = crate::daemon::run_now(settings).await?;
            if *json {
                print_json(&outcome);
            } else {
                print!("{}", outcome.to_text());
            }
            Ok(())
        }
        Command::Status { json } => {
            let settings = settings(&cli, true)?;
            let report = crate::daemon::status(&settings).await?;
            if *json {
                print_json(&report);
            } else {
                print!("{}", report.to_text());
            }
            Ok(())
        }
    }
}

async fn fetch(settings: &Settings, json: bool) -> Result<(), CliError> {
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let snapshot = client.fetch_district().await?;
    let counts = serde_json::json!({
        "guardians": snapshot.guardians.len(),
        "students": snapshot.students.len(),
        "independent_students": snapshot.independent_students.len(),
        "contacts": snapshot.contacts.len(),
    });
    if json {
        print_json(&serde_json::json!({ "counts": counts, "problems": snapshot.problems }));
        return Ok(());
    }
    println!("PowerSchool at {} answered:", settings.powerschool.url);
    println!("  schools               {:>8}", snapshot.schools.len());
    println!("  guardian links        {:>8}", snapshot.guardians.len());
    println!("  students              {:>8}", snapshot.students.len());
    println!(
        "  independent students  {:>8}",
        snapshot.independent_students.len()
    );
    println!("  contacts              {:>8}", snapshot.contacts.len());
    println!("  retried requests      {:>8}", snapshot.retries);
    if snapshot.problems.is_empty() {
        println!("No record problems.");
    } else {
        println!("Record problems ({}):", snapshot.problems.len());
        for p in &snapshot.problems {
            println!(
                "  {} record {}: field {} = {:?}: {}",
                p.query, p.record_id, p.field, p.value, p.message
            );
        }
    }
    Ok(())
}

fn parse_generate(spec: &str) -> Result<(usize, u64), CliError> {
    let mut students = None;
    let mut seed = 0u64;
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            CliError::Usage(format!("--generate {spec:?}: write students=N,seed=S"))
        })?;
        match k.trim() {
            "students" => {
                students = Some(v.trim().parse().map_err(|_| {
                    CliError::Usage(format!("--generate: students={v:?} is not a whole number"))
                })?)
            }
            "seed" => {
                seed = v.trim().parse().map_err(|_| {
                    CliError::Usage(format!("--generate: seed={v:?} is not a whole number"))
                })?
            }
            other => {
                return Err(CliError::Usage(format!(
                    "--generate: unknown key {other:?}; allowed are students, seed"
                )))
            }
        }
    }
    let students = students.ok_or_else(|| CliError::Usage("--generate needs students=N".into()))?;
    Ok((students, seed))
}

async fn fake(args: &FakeArgs) -> Result<(), CliError> {
    let side = match (&args.world, &args.generate) {
        (Some(path), _) => World::load(path)?.powerschool,
        (None, Some(spec)) => {
            let (students, seed) = parse_generate(spec)?;
            fake_powerschool::generate(students, seed)
        }
        (None, None) => {
            return Err(CliError::Usage(
                "fake-powerschool needs --world FILE or --generate students=N,seed=S".into(),
            ))
        }
    };
    for (name, rate) in [
        ("--error-rate", args.error_rate),
        ("--rate-limit-rate", args.rate_limit_rate),
        ("--truncate-rate", args.truncate_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(CliError::Usage(format!(
                "{name} {rate} must be between 0 and 1"
            )));
        }
    }
    let faults = Faults {
        page_latency: Duration::from_millis(args.latency_ms),
        error_rate: args.error_rate,
        rate_limit_rate: args.rate_limit_rate,
        retry_after_secs: args.retry_after_secs,
        token_ttl: args.token_ttl_secs.map(Duration::from_secs),
        truncate_rate: args.truncate_rate,
        seed: args.seed,
        ..Faults::default()
    };
    let credentials = FakeCredentials {
        client_id: args.client_id.clone(),
        client_secret: args.client_secret.clone(),
    };
    let students = side.students.len();
    let running = fake_powerschool::spawn(side, credentials, faults, args.listen)
        .await
        .map_err(|source| CliError::Io {
            what: format!("cannot listen on {}", args.listen),
            source,
        })?;
    println!(
        "Fake PowerSchool serving {students} students at {} (client id {}). Ctrl-C stops it.",
        running.base_url(),
        args.client_id
    );
    // A test server's made-up secret, printed so the next command is a paste.
    println!(
        "Point student-sync at it:\n  export STUDENT_SYNC_POWERSCHOOL_URL={}\n  export STUDENT_SYNC_POWERSCHOOL_CLIENT_ID={}\n  export STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET={}",
        running.base_url(),
        args.client_id,
        args.client_secret
    );
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(())
}

async fn demo(cli: &Cli, world_path: &std::path::Path, json: bool) -> Result<(), CliError> {
    let world = World::load(world_path)?;
    // The demo never touches the district's database: it recreates its own.
    let mut offline = settings(cli, true)?;
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
    let connect_url = offline.database.connect_url();
    {
        use sqlx::migrate::MigrateDatabase;
        if sqlx::Postgres::database_exists(connect_url.expose())
            .await
            .unwrap_or(false)
        {
            sqlx::Postgres::drop_database(connect_url.expose())
                .await
                .map_err(|source| StoreError::Create {
                    url: offline.database.display_url(),
                    source,
                })?;
        }
    }
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
    let mut sources_env = std::collections::HashMap::new();
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
    sources_env.insert("DATABASE_URL".to_string(), connect_url.expose().to_string());
    let mut settings = Settings::load(&config::Sources {
        file: None,
        env: sources_env,
    })?;
    crate::harness::world_settings::apply(&world.settings, &mut settings.sync)?;
    crate::harness::seed::seed_world(&pool, &world.schoolengage).await?;
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let mut options = RunOptions::now(&settings, RunTrigger::Manual);
    if let Some(today) = crate::harness::world_settings::today(&world.settings)? {
        options.today = today;
    }
    let outcome = sync::run_once(&pool, &settings, &client, &options).await?;
    let access = store::access::export(&pool).await?;
    running.shutdown().await;
    if json {
        print_json(&serde_json::json!({"report": outcome.report, "access": access}));
        return Ok(());
    }
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
        if *expect == access {
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
    Ok(())
}

// ---- plan, approve, spot (safe changes) ----

async fn plan_command(cli: &Cli, json: bool, details: bool) -> Result<(), CliError> {
    let settings = settings(cli, false)?;
    tier_matrix(&settings)?;
    let pool = database(&settings).await?;
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let today = RunOptions::now(&settings, RunTrigger::Manual).today;
    let preview = sync::preview(&pool, &settings, &client, today).await?;
    if json {
        print_json(&preview);
    } else {
        print!("{}", preview.to_text(details));
    }
    Ok(())
}

async fn approve_command(
    cli: &Cli,
    run_id: i64,
    dry_run: bool,
    json: bool,
) -> Result<(), CliError> {
    let settings = settings(cli, true)?;
    let pool = database(&settings).await?;
    if dry_run {
        let view = sync::hold::show(&pool, run_id).await?;
        if json {
            print_json(&view);
        } else {
            println!("Run {run_id} is held: {}", view.reason);
            print!("{}", view.preview.to_text(true));
            if view.still_applies {
                println!("The database is unchanged since: `student-sync approve {run_id}` would apply exactly this.");
            } else {
                println!("The database changed since: approval would be refused; discard it and start a new run.");
            }
        }
        return Ok(());
    }
    let who = sync::hold::os_user();
    let report = sync::hold::approve(&pool, &settings, run_id, &who).await?;
    if json {
        print_json(&report);
    } else {
        println!("Run {run_id} approved by {who} and applied.");
        print!("{}", report.to_text());
    }
    Ok(())
}

async fn spot_command(
    cli: &Cli,
    student: Option<i64>,
    email: Option<&str>,
    create_users: bool,
    json: bool,
) -> Result<(), CliError> {
    let scope = match (student, email) {
        (Some(d), None) => sync::spot::SpotScope::Student(d),
        (None, Some(e)) => sync::spot::SpotScope::Guardian(e.to_string()),
        _ => {
            return Err(CliError::Usage(
                "spot needs exactly one of --student DCID or --email EMAIL".into(),
            ))
        }
    };
    let settings = settings(cli, false)?;
    let matrix = tier_matrix(&settings)?;
    let pool = database(&settings).await?;
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let options = sync::spot::SpotOptions {
        scope,
        create_users,
        today: RunOptions::now(&settings, RunTrigger::Manual).today,
    };
    let outcome = sync::spot::spot(&pool, &settings, &client, &matrix, &options).await?;
    if json {
        print_json(&outcome);
    } else {
        print!("{}", outcome.to_text());
    }
    Ok(())
}
