//! The `student-sync` binary: parse arguments, load the settings once, set
//! up logging once (in the settings' log format), run the command, and turn
//! any failure into one clear message and an exit code.

use clap::Parser;

/// jemalloc holds less than glibc's malloc at a run's peak: glibc keeps the
/// memory freed by the threads that parsed pages in their own arenas, where
/// the plan cannot reuse it (see `Cargo.toml`).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: two arenas, and freed pages
/// returned to the system after 100 ms instead of 10 s, so neither a run's
/// peak nor the daemon between nights keeps what a phase let go.
/// (`_RJEM_MALLOC_CONF` in the environment still overrides them.)
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[export_name = "_rjem_malloc_conf"]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &[u8; 46] = b"narenas:2,dirty_decay_ms:100,muzzy_decay_ms:0\0";

use student_sync::cli::{self, Cli};
use student_sync::config::{LogFormat, LOG_FORMAT_ENV};

fn init_tracing(format: LogFormat, default_level: &str) {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // tokio-cron-scheduler logs every job it adds at info.
        EnvFilter::new(format!(
            "{default_level},sqlx=warn,tokio_cron_scheduler=warn"
        ))
    });
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        // systemd sets JOURNAL_STREAM for a service's stdout/stderr.
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
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

/// `--log-format` first, then the loaded settings' `logging.format` (the
/// file, under `STUDENT_SYNC_LOG_FORMAT`); a command that loads no settings,
/// or whose settings are refused, reads `STUDENT_SYNC_LOG_FORMAT` alone. A
/// spelling that is not a format means auto (the settings refuse it).
fn log_format(cli: &Cli, loaded: &cli::Loaded) -> LogFormat {
    let named = match (&cli.log_format, loaded) {
        (Some(flag), _) => Some(flag.clone()),
        (None, Some(Ok(settings))) => return settings.logging.format,
        (None, _) => std::env::var(LOG_FORMAT_ENV).ok(),
    };
    named.and_then(|n| n.parse().ok()).unwrap_or_default()
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(run());
    // A daemon stopped while a run's plan was being made has rolled the run
    // back and marked it interrupted; the plan's blocking thread is still
    // deciding a district nobody will read (seconds at a million students).
    // Exit now instead of waiting for it: systemd's stop timeout is short.
    runtime.shutdown_background();
}

async fn run() {
    let cli = Cli::parse();
    let loaded = cli::load_settings(&cli);
    // Commands whose output is the answer keep the logs to warnings unless
    // RUST_LOG asks for more; the daemon and syncs log their progress.
    let default_level = match cli.command {
        cli::Command::Demo(_) | cli::Command::Access { .. } | cli::Command::Explain { .. } => {
            "warn"
        }
        // On a terminal the progress bars say how a run goes; the log
        // lines are for pipes, files and systemd.
        cli::Command::Fetch { .. }
        | cli::Command::Sync { .. }
        | cli::Command::Plan { .. }
        | cli::Command::Run { .. }
            if cli::on_terminal() =>
        {
            "warn"
        }
        _ => "info",
    };
    init_tracing(log_format(&cli, &loaded), default_level);
    if let Err(e) = cli::run(cli, loaded).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
