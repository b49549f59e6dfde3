//! `run`: from the parsed command line to the function that carries the
//! command out.

use super::args::{AccessCommand, Cli, Command, PluginCommand};
use super::load::{settings, Loaded};
use super::{access, demo, doctor, manual, plugin, problems, runs, safe_changes, worlds, CliError};

pub async fn run(cli: Cli, loaded: Loaded) -> Result<(), CliError> {
    match &cli.command {
        Command::Fetch { json } => runs::fetch(&settings(loaded)?, *json).await,
        Command::Sync { once, json } => runs::sync_once(loaded, *once, *json).await,
        Command::Doctor { json } => doctor::doctor(&settings(loaded)?, *json).await,
        Command::Plugin {
            command: PluginCommand::Build { out, version },
        } => plugin::build(&settings(loaded)?, out, version.as_deref()),
        Command::Seed { world } => worlds::seed(loaded, world).await,
        Command::Demo(args) => demo::demo(loaded, args).await,
        Command::Access {
            command: AccessCommand::Export,
        } => access::export(loaded).await,
        Command::Explain {
            student,
            email,
            json,
        } => access::explain(loaded, *student, email, *json).await,
        Command::FakePowerschool(args) => worlds::fake(args).await,
        Command::Plan { json, details } => safe_changes::plan(loaded, *json, *details).await,
        Command::Approve {
            run_id,
            dry_run,
            json,
        } => safe_changes::approve(loaded, *run_id, *dry_run, *json).await,
        Command::Discard { run_id } => safe_changes::discard(loaded, *run_id).await,
        Command::Spot {
            student,
            email,
            create_users,
            json,
        } => safe_changes::spot(loaded, *student, email.as_deref(), *create_users, *json).await,
        Command::Daemon => runs::daemon(loaded).await,
        Command::Run { now, json } => runs::run_now(loaded, *now, *json).await,
        Command::Status { json } => runs::status(loaded, *json).await,
        Command::Prune { json } => runs::prune(loaded, *json).await,
        Command::Problems { run_id, kind, json } => {
            problems::list(loaded, *run_id, kind.as_deref(), *json).await
        }
        Command::Completions { shell } => manual::completions(*shell),
        Command::Man { dir } => manual::man(dir.as_deref()),
    }
}
