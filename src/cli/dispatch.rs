//! `run`: from the parsed command line to the function that carries the
//! command out.

use super::args::{AccessCommand, Cli, Command};
use super::load::settings;
use super::{access, demo, runs, safe_changes, worlds, CliError};

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Fetch { json } => runs::fetch(&settings(&cli, false)?, *json).await,
        Command::Sync { once, json } => runs::sync_once(&cli, *once, *json).await,
        Command::Seed { world } => worlds::seed(&cli, world).await,
        Command::Demo { world, json } => demo::demo(&cli, world, *json).await,
        Command::Access {
            command: AccessCommand::Export,
        } => access::export(&cli).await,
        Command::Explain {
            student,
            email,
            json,
        } => access::explain(&cli, *student, email, *json).await,
        Command::FakePowerschool(args) => worlds::fake(args).await,
        Command::Plan { json, details } => safe_changes::plan(&cli, *json, *details).await,
        Command::Approve {
            run_id,
            dry_run,
            json,
        } => safe_changes::approve(&cli, *run_id, *dry_run, *json).await,
        Command::Discard { run_id } => safe_changes::discard(&cli, *run_id).await,
        Command::Spot {
            student,
            email,
            create_users,
            json,
        } => safe_changes::spot(&cli, *student, email.as_deref(), *create_users, *json).await,
        Command::Daemon => runs::daemon(&cli).await,
        Command::Run { now, json } => runs::run_now(&cli, *now, *json).await,
        Command::Status { json } => runs::status(&cli, *json).await,
    }
}
