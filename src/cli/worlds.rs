//! The commands that serve the test harness outside the tests: `seed` (a
//! world's SchoolEngage side into a database) and `fake-powerschool` (a
//! world, or a generated district, served over HTTP).

use super::args::FakeArgs;
use super::load::{database, settings, Loaded};
use super::CliError;
use crate::harness::fake_powerschool::{self, FakeCredentials, Faults};
use crate::harness::seed::seed_world;
use crate::harness::world::World;
use std::path::Path;
use std::time::Duration;

pub(super) async fn seed(loaded: Loaded, world: &Path) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let world = World::load(world)?;
    let pool = database(&settings).await?;
    seed_world(&pool, &world.schoolengage).await?;
    println!(
        "Seeded {} users, {} connections, {} forms into {}",
        world.schoolengage.users.len(),
        world.schoolengage.connections.len(),
        world.schoolengage.forms.len(),
        settings.database.display_url()
    );
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

pub(super) async fn fake(args: &FakeArgs) -> Result<(), CliError> {
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
    let faults = faults(args)?;
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

/// The fault switches the flags ask for; every rate must be a fraction.
fn faults(args: &FakeArgs) -> Result<Faults, CliError> {
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
    Ok(Faults {
        page_latency: Duration::from_millis(args.latency_ms),
        error_rate: args.error_rate,
        rate_limit_rate: args.rate_limit_rate,
        retry_after_secs: args.retry_after_secs,
        token_ttl: args.token_ttl_secs.map(Duration::from_secs),
        truncate_rate: args.truncate_rate,
        seed: args.seed,
        missing_columns: args.missing_columns.clone(),
        ungranted_columns: args.ungranted_columns.clone(),
        flat_guardians: args.flat_guardians,
        guardian_email_column: args.guardian_email_column.clone(),
        page_size_cap: args.page_size_cap,
        missing_queries: args.not_installed.clone(),
        throttle_every: args.throttle_every,
        throttle_wait_secs: args.throttle_wait_secs,
        throttle_status: args.throttle_status,
        ..Faults::default()
    })
}
