//! The commands about full runs: `fetch` (what PowerSchool answers),
//! `sync --once`, the `daemon`, `run --now`, `status` and `prune`.

use super::load::{database, settings, Loaded};
use super::output::{print_answer, print_json, write_out};
use super::progress::Bars;
use super::CliError;
use crate::config::Settings;
use crate::powerschool::PowerSchoolClient;
use crate::store::runs::RunPhase;
use crate::store::{self, RunTrigger};
use crate::sync::{self, RunOptions};

pub(super) async fn fetch(settings: &Settings, json: bool) -> Result<(), CliError> {
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let bars = Bars::start();
    bars.progress.set_phase(RunPhase::Fetching);
    let snapshot = client
        .observed_by(bars.progress.clone())
        .fetch_district()
        .await;
    bars.finish().await;
    let mut snapshot = snapshot?;
    crate::sync::screen::screen(&mut snapshot);
    let counts = serde_json::json!({
        "guardians": snapshot.guardians.len(),
        "students": snapshot.students.len(),
        "independent_students": snapshot.independent_students.len(),
        "contacts": snapshot.contacts.len(),
    });
    if json {
        print_json(&serde_json::json!({ "counts": counts, "problems": snapshot.problems }))?;
        return Ok(());
    }
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "PowerSchool at {} answered:",
        settings.powerschool.url
    );
    for (what, n) in [
        ("schools", snapshot.schools.len()),
        ("guardian links", snapshot.guardians.len()),
        ("students", snapshot.students.len()),
        ("independent students", snapshot.independent_students.len()),
        ("contacts", snapshot.contacts.len()),
        ("retried requests", snapshot.retries as usize),
    ] {
        let _ = writeln!(text, "  {what:<21} {n:>8}");
    }
    if snapshot.problems.is_empty() {
        let _ = writeln!(text, "No record problems.");
    } else {
        let _ = writeln!(text, "Record problems ({}):", snapshot.problems.len());
        for p in &snapshot.problems {
            let _ = writeln!(
                text,
                "  {} record {}: field {} = {:?}: {}",
                p.query, p.record_id, p.field, p.value, p.message
            );
        }
    }
    write_out(&text)
}

pub(super) async fn sync_once(loaded: Loaded, once: bool, json: bool) -> Result<(), CliError> {
    if !once {
        return Err(CliError::Usage(
            "`sync` runs one sync and needs --once; use `student-sync daemon` for the nightly schedule".into(),
        ));
    }
    let settings = settings(loaded)?;
    let pool = database(&settings).await?;
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    // Never beside a nightly run: wait for the same lock the daemon takes.
    let lock = store::lock::wait_for_lock(&pool, &sync::run_lock_key(&settings), || {
        tracing::warn!("another run holds the run lock; this sync starts when it is free")
    })
    .await?;
    let bars = Bars::start();
    let mut options = RunOptions {
        progress: Some(bars.progress.clone()),
        ..RunOptions::now(&settings, RunTrigger::Manual)
    };
    options.run_lock_backend = Some(lock.backend_pid());
    // Ctrl-C or SIGTERM cancels the run as the daemon's stop does: its
    // transaction rolls back and its row says `interrupted` (a second
    // signal exits at once).
    options.cancel = Some(crate::daemon::on_stop_signal()?);
    let outcome = sync::run_once(&pool, &settings, &client, &options).await;
    bars.finish().await;
    lock.release().await;
    let outcome = match outcome {
        // Said as `run --now` says it: which run, and what happens next.
        Err(sync::SyncError::Cancelled(_)) => {
            return Err(crate::daemon::interrupted(&pool).await.into())
        }
        outcome => outcome?,
    };
    print_answer(json, &outcome.report, |r| r.to_text())?;
    Ok(())
}

pub(super) async fn daemon(loaded: Loaded) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    Ok(crate::daemon::run_daemon(settings).await?)
}

pub(super) async fn run_now(loaded: Loaded, now: bool, json: bool) -> Result<(), CliError> {
    if !now {
        return Err(CliError::Usage(
            "`run` needs --now (it forces a run now); the daemon runs on the schedule".into(),
        ));
    }
    let settings = settings(loaded)?;
    let bars = Bars::start();
    let outcome = crate::daemon::run_now_observed(settings, Some(bars.progress.clone())).await;
    bars.finish().await;
    let outcome = outcome?;
    print_answer(json, &outcome, |o| o.to_text())?;
    Ok(())
}

pub(super) async fn status(loaded: Loaded, json: bool) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let report = crate::daemon::status(&settings).await?;
    print_answer(json, &report, |r| r.to_text())?;
    Ok(())
}

/// `prune`: what the daemon does after each successful run, now. Waits for
/// the run lock, so it never prunes beside a run.
pub(super) async fn prune(loaded: Loaded, json: bool) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let pool = database(&settings).await?;
    let lock = store::lock::wait_for_lock(&pool, &sync::run_lock_key(&settings), || {
        tracing::warn!("a run holds the run lock; pruning starts when it is free")
    })
    .await?;
    let pruned = store::prune::prune(&pool, &settings.retention).await;
    lock.release().await;
    let pruned = pruned?;
    let r = &settings.retention;
    tracing::info!(
        runs = pruned.runs,
        problems = pruned.problems,
        audit_rows = pruned.audit_rows,
        "{}",
        pruned.to_text()
    );
    print_answer(json, &pruned, |p| {
        let audit = match r.audit_keep_days {
            Some(days) => format!("access audit kept {days} days"),
            None => "access audit kept forever".to_string(),
        };
        format!(
            "{}.\nRetention: runs older than {} days beyond the newest {}; {audit}.\n",
            capitalised(&p.to_text()),
            r.keep_days,
            r.keep_runs
        )
    })?;
    Ok(())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
