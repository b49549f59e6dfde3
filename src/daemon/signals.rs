//! Stopping. A signal (or a test) flips one watch channel; every part of the
//! daemon that waits selects on it, as in mini-redis's `Shutdown`. The active
//! daemon also stops when it loses the district lock (`Stops`).

use super::DaemonError;
use tokio::sync::{oneshot, watch};

/// The listening half: `requested()` resolves once a stop is asked for.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        Shutdown { rx }
    }

    /// Resolves when a stop is requested. A dropped sender counts as a stop:
    /// nobody is left who could ask later.
    pub async fn requested(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// A `Shutdown` flipped by the first SIGTERM or SIGINT. A second signal
/// exits at once, for the person pressing Ctrl-C twice.
pub fn on_stop_signal() -> Result<watch::Receiver<bool>, DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let signal_err = |e: std::io::Error| DaemonError::Signal(e);
    let mut term = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "received {name}: stopping");
        let _ = tx.send(true);
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(signal = name, "received a second {name}: exiting at once");
        std::process::exit(1);
    });
    Ok(rx)
}

/// Why the daemon's loop must stop.
pub enum Stop {
    Requested,
    LockLost(String),
}

impl Stop {
    /// What the loop returns for it: a requested stop is a clean exit.
    pub fn into_result(self) -> Result<(), DaemonError> {
        match self {
            Stop::Requested => {
                tracing::info!("stopped");
                Ok(())
            }
            Stop::LockLost(why) => Err(DaemonError::LockLost(why)),
        }
    }
}

/// The two things that stop the loop: a stop request, and (once active)
/// losing the district lock's connection.
pub struct Stops {
    pub shutdown: Shutdown,
    pub lost: Option<oneshot::Receiver<String>>,
}

impl Stops {
    pub async fn next(&mut self) -> Stop {
        match &mut self.lost {
            None => {
                self.shutdown.requested().await;
                Stop::Requested
            }
            Some(lost) => tokio::select! {
                _ = self.shutdown.requested() => Stop::Requested,
                why = lost => {
                    self.lost = None;
                    Stop::LockLost(why.unwrap_or_else(|_| "the lock keeper ended".to_string()))
                }
            },
        }
    }
}
