//! How a command prints its answer: pretty JSON for tools (`--json`), or
//! the answer's own text for people. An answer is often read through `head`
//! or `less`; a reader that stops early is not an error, so a closed pipe
//! ends the printing quietly instead of panicking as `print!` would.

use super::CliError;
use serde::Serialize;
use std::io::Write;

/// Writes `text` to standard output; a closed pipe is not an error.
pub(super) fn write_out(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Io {
            what: "printing the answer".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

pub(super) fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_out(&text)
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
        write_out(&text(value))
    }
}
