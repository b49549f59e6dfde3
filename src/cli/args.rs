//! The command line's words: every command, flag and help text, as clap
//! parses them. What each command does lives beside this file.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

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

// Parsed once per process: the fake's many flags may make one variant big.
#[allow(clippy::large_enum_variant)]
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
    /// Check the configured PowerSchool before a first night, writing
    /// nothing: the token, each query, the district's fields, the plugin's
    /// access request and the page-size cap. Exit 0 when every check passes.
    Doctor {
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The student-sync PowerSchool plugin.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Load a world's SchoolEngage side (users, connections, forms) into an empty database.
    Seed {
        /// A world file (see fixtures/worlds/ and world-format.md).
        #[arg(long)]
        world: PathBuf,
    },
    /// Start a fake PowerSchool with the built-in example world (or a world
    /// file, or a generated district), seed a fresh demo database, sync over
    /// real HTTP with progress bars and print the run report. Works from any
    /// directory; without a database it starts a throwaway PostgreSQL.
    Demo(DemoArgs),
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
    FakePowerschool(Box<FakeArgs>),
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
    /// Remove the run history the [retention] settings no longer keep (old
    /// runs and their record problems; the audit only if a setting says so).
    /// The daemon does this after each successful run.
    Prune {
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The last runs, the run in progress (with its counts so far), the next
    /// scheduled run, which process holds the district and run locks, and
    /// the database's size and oldest run kept.
    Status {
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every problem a run recorded (the report shows the first few of
    /// each kind), with its words, kind by kind.
    Problems {
        /// The run's id (the report and `student-sync status` name it).
        run_id: i64,
        /// Only the problems of this kind (e.g. link_without_matching_contact).
        #[arg(long)]
        kind: Option<String>,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the shell completion script for bash, zsh or fish (the package
    /// installs them; e.g. `student-sync completions bash > student-sync.bash`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page student-sync(1) (roff), generated from these commands.
    Man {
        /// Write student-sync.1 and one page per command (student-sync-sync.1, …)
        /// into this folder instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A world file to run instead of the built-in example world.
    #[arg(long, conflicts_with = "students")]
    pub world: Option<PathBuf>,
    /// Run a generated district of this many students instead (a realistic
    /// night: the report is summarised, not printed row by row).
    #[arg(long)]
    pub students: Option<usize>,
    /// The generated district's seed (the same seed, the same district).
    #[arg(long, default_value_t = 1, requires = "students")]
    pub seed: u64,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    pub json: bool,
    /// Where the demo looks for a PostgreSQL when no database is configured.
    #[arg(
        long,
        hide = true,
        env = "STUDENT_SYNC_DEMO_PG_PORT",
        default_value_t = 5432
    )]
    pub pg_port: u16,
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Print the whole access table as JSON (the world `expect` shape).
    Export,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write the plugin zip for this district's `[powerschool.fields]`,
    /// checked as PowerSchool checks it at install.
    Build {
        /// Where to write the zip.
        #[arg(long, default_value = "student-sync-plugin.zip")]
        out: PathBuf,
        /// The plugin version; raise it for each new build you install.
        #[arg(long)]
        version: Option<String>,
    },
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
    /// A column taken out of the fake's schema: the schema probe answers
    /// 400 Invalid field (repeatable).
    #[arg(long = "missing-column", value_name = "TABLE.COLUMN")]
    pub missing_columns: Vec<String>,
    /// A column the plugin is not granted: the schema probe answers 403 (repeatable).
    #[arg(long = "ungranted-column", value_name = "TABLE.COLUMN")]
    pub ungranted_columns: Vec<String>,
    /// Guardian records flat instead of nested under PowerSchool's tables.
    #[arg(long)]
    pub flat_guardians: bool,
    /// Send the guardian email only under this column, e.g. pcas_contact.mail
    /// (a server whose column names differ).
    #[arg(long, value_name = "TABLE.COLUMN")]
    pub guardian_email_column: Option<String>,
    /// The server's largest page: a bigger pagesize gets this many records.
    #[arg(long, value_name = "RECORDS")]
    pub page_size_cap: Option<usize>,
    /// A query that is not installed, as if the plugin were missing or
    /// disabled (404 "Query ... not found"); repeatable.
    #[arg(long = "not-installed", value_name = "QUERY")]
    pub not_installed: Vec<String>,
    /// Every Nth PowerQuery request answers "too many requests, wait N seconds".
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub throttle_every: u32,
    /// The wait, in seconds, that throttling answer asks for.
    #[arg(long, default_value_t = 1)]
    pub throttle_wait_secs: u64,
    /// The HTTP status of that answer (default 429).
    #[arg(long, value_name = "CODE")]
    pub throttle_status: Option<u16>,
}
