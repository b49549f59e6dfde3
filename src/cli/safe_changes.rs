//! The safe-change commands: `plan` (what a run would do, writing nothing),
//! `approve` and `discard` of a held run, and `spot` syncs of one student
//! or one guardian.

use super::load::{database, settings, Loaded};
use super::output::{print_answer, print_json, write_out};
use super::progress::Bars;
use super::CliError;
use crate::powerschool::PowerSchoolClient;
use crate::store::RunTrigger;
use crate::sync::{self, RunOptions};

pub(super) async fn plan(loaded: Loaded, json: bool, details: bool) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let pool = database(&settings).await?;
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let today = RunOptions::now(&settings, RunTrigger::Manual).today;
    let bars = Bars::start();
    let preview =
        sync::preview_observed(&pool, &settings, &client, today, Some(&bars.progress)).await;
    bars.finish().await;
    let preview = preview?;
    print_answer(json, &preview, |p| p.to_text(details))?;
    Ok(())
}

pub(super) async fn approve(
    loaded: Loaded,
    run_id: i64,
    dry_run: bool,
    json: bool,
) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let pool = database(&settings).await?;
    if dry_run {
        let view = sync::hold::show(&pool, run_id).await?;
        if json {
            print_json(&view)?;
        } else {
            let verdict = if view.still_applies {
                format!("The database is unchanged since: `student-sync approve {run_id}` would apply exactly this.")
            } else {
                "The database changed since: approval would be refused; discard it and start a new run.".to_string()
            };
            write_out(&format!(
                "Run {run_id} is held: {}\n{}{verdict}\n",
                view.reason,
                view.preview.to_text(true)
            ))?;
        }
        return Ok(());
    }
    let who = sync::hold::os_user();
    let report = sync::hold::approve(&pool, &settings, run_id, &who).await?;
    if json {
        print_json(&report)?;
    } else {
        write_out(&format!(
            "Run {run_id} approved by {who} and applied.\n{}",
            report.to_text()
        ))?;
    }
    Ok(())
}

pub(super) async fn discard(loaded: Loaded, run_id: i64) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let pool = database(&settings).await?;
    let who = sync::hold::os_user();
    sync::hold::discard(&pool, run_id, &who).await?;
    println!("Run {run_id} discarded by {who}; its plan is dropped and nothing was applied.");
    Ok(())
}

pub(super) async fn spot(
    loaded: Loaded,
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
    let settings = settings(loaded)?;
    let matrix = &settings.sync.access_tiers;
    let pool = database(&settings).await?;
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let options = sync::spot::SpotOptions {
        scope,
        create_users,
        today: RunOptions::now(&settings, RunTrigger::Manual).today,
    };
    let outcome = sync::spot::spot(&pool, &settings, &client, matrix, &options).await?;
    print_answer(json, &outcome, |o| o.to_text())?;
    Ok(())
}
