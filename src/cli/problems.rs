//! `problems RUN`: every problem a run recorded, with its words. The run
//! report lists the first few of each kind and points here for the rest.

use super::load::{database, settings, Loaded};
use super::output::{print_json, write_out};
use super::CliError;
use crate::store;
use crate::sync::report::ProblemList;

pub(super) async fn list(
    loaded: Loaded,
    run_id: i64,
    kind: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let pool = database(&settings).await?;
    // A run that does not exist (or was pruned) says so, rather than
    // listing nothing.
    store::runs::get_run(&pool, run_id).await?;
    let problems = store::access::run_problems_of_kind(&pool, run_id, kind).await?;
    let list = ProblemList {
        run_id,
        kind: kind.map(str::to_string),
        problems,
    };
    match json {
        true => print_json(&list),
        false => write_out(&list.to_text()),
    }
}
