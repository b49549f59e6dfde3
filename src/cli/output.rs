//! How a command prints its answer: pretty JSON for tools (`--json`), or
//! the answer's own text for people.

use super::CliError;
use serde::Serialize;

pub(super) fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `value` as JSON when `json` is asked for, otherwise its text.
pub(super) fn print_answer<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), CliError> {
    if json {
        print_json(value)
    } else {
        print!("{}", text(value));
        Ok(())
    }
}
