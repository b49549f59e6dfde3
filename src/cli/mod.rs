//! The command line: argument parsing and wiring of the other modules, and
//! nothing else. Each command turns its module's error into one message that
//! says what failed, for which record or setting, and what to do.
//!
//! `args` holds the commands and flags, `dispatch` sends each command to the
//! file that carries it out (`runs`, `access`, `problems`, `safe_changes`, `worlds`,
//! `demo`, `manual` for the completion scripts and man pages), `errors` the
//! one error and its exit codes; `load`, `output` and `progress` (bars on a
//! terminal) are what every command shares.

mod access;
mod args;
mod demo;
mod dispatch;
mod doctor;
mod errors;
mod load;
mod manual;
mod output;
mod plugin;
mod problems;
mod progress;
mod runs;
mod safe_changes;
mod worlds;

pub use args::{AccessCommand, Cli, Command, DemoArgs, FakeArgs, PluginCommand};
pub use dispatch::run;
pub use errors::CliError;
pub use load::{database, load_settings, Loaded};
pub use progress::on_terminal;
