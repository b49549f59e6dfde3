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

/// `value` as pretty JSON, written as it is serialised (the access table of
/// a million students is some 190 MB of it, never held as one string).
pub(super) fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(CliError::Io {
            what: "printing the answer".into(),
            source: e,
        }),
    };
    match serde_json::to_writer_pretty(&mut out, value) {
        Err(e) if e.io_error_kind().is_some() => return io(e.into()),
        Err(e) => return Err(e.into()),
        Ok(()) => {}
    }
    match out.write_all(b"\n").and_then(|()| out.flush()) {
        Err(e) => io(e),
        Ok(()) => Ok(()),
    }
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
