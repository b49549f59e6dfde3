//! The commands that read SchoolEngage's access table: `access export` and
//! `explain` (why a parent sees, or does not see, a child).

use super::load::{database, settings, Loaded};
use super::output::{print_answer, print_json};
use super::CliError;
use crate::store;
use crate::sync;

pub(super) async fn export(loaded: Loaded) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let pool = database(&settings).await?;
    print_json(&store::access::export(&pool).await?)?;
    Ok(())
}

pub(super) async fn explain(
    loaded: Loaded,
    student: i64,
    email: &str,
    json: bool,
) -> Result<(), CliError> {
    let settings = settings(loaded)?;
    let matrix = &settings.sync.access_tiers;
    let pool = database(&settings).await?;
    let explanation = sync::explain::explain(&pool, &settings.sync, matrix, student, email).await?;
    print_answer(json, &explanation, |e| e.to_text())?;
    Ok(())
}
