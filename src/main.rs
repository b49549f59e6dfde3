//! The `student-sync` binary: parse arguments, set up logging once, run the
//! command, and turn any failure into one clear message and an exit code.

use clap::Parser;
use student_sync::cli::{self, Cli};

fn init_tracing(format: Option<&str>, default_level: &str) {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // tokio-cron-scheduler logs every job it adds at info.
        EnvFilter::new(format!(
            "{default_level},sqlx=warn,tokio_cron_scheduler=warn"
        ))
    });
    let json = match format {
        Some("json") => true,
        Some("human") => false,
        // systemd sets JOURNAL_STREAM for a service's stdout/stderr.
        _ => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    // Colours only for a person at a terminal, not in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let format = cli
        .log_format
        .clone()
        .or_else(|| std::env::var("STUDENT_SYNC_LOG_FORMAT").ok())
        .or_else(|| {
            cli.config
                .as_deref()
                .and_then(student_sync::config::log_format_in_file)
        });
    // Commands whose output is the answer keep the logs to warnings unless
    // RUST_LOG asks for more; the daemon and syncs log their progress.
    let default_level = match cli.command {
        cli::Command::Demo { .. } | cli::Command::Access { .. } | cli::Command::Explain { .. } => {
            "warn"
        }
        _ => "info",
    };
    init_tracing(format.as_deref(), default_level);
    if let Err(e) = cli::run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
