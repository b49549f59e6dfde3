//! How a command prints its answer: pretty JSON for tools (`--json`), or
//! the answer's own text for people.

use serde::Serialize;

pub(super) fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("output serialises")
    );
}

/// `value` as JSON when `json` is asked for, otherwise its text.
pub(super) fn print_answer<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        print_json(value);
    } else {
        print!("{}", text(value));
    }
}
