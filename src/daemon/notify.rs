//! sd_notify(3) by hand: one datagram per message to `$NOTIFY_SOCKET`. Only
//! when systemd (or a test) set that variable; otherwise every call is a
//! no-op, so the daemon runs the same from a terminal.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    /// The watchdog interval when not read from `WATCHDOG_USEC`.
    watchdog_every: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    path: String,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::disabled();
        };
        let path = path.to_string_lossy().into_owned();
        // Non-blocking: a notification that cannot be delivered at once
        // (a receiver that does not read, its queue full) is dropped rather
        // than stalling the daemon's threads.
        match UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            Ok(socket) => Notifier {
                target: Some(Target { socket, path }),
                watchdog_every: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a socket for systemd notifications; continuing without them");
                Notifier::disabled()
            }
        }
    }

    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog_every: None,
        }
    }

    /// Notifications to the datagram socket at `path`, with the watchdog
    /// pinged every `watchdog_every` (as systemd's `NOTIFY_SOCKET` and half
    /// of `WATCHDOG_USEC` would say): for a supervisor or a test that is
    /// not systemd.
    pub fn to_socket(path: &str, watchdog_every: Option<Duration>) -> std::io::Result<Notifier> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            target: Some(Target {
                socket,
                path: path.to_string(),
            }),
            watchdog_every,
        })
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    fn send(&self, message: &str) {
        let Some(t) = &self.target else { return };
        let result = if let Some(name) = t.path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| t.socket.send_to_addr(message.as_bytes(), &addr))
        } else {
            t.socket.send_to(message.as_bytes(), PathBuf::from(&t.path))
        };
        if let Err(e) = result {
            // systemd going away must not stop a run; say it once per message.
            tracing::debug!(error = %e, message, "systemd notification not delivered");
        }
    }

    /// Start-up is done (the lock decision is made; a standby is ready too).
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// One line for `systemctl status`.
    pub fn status(&self, text: &str) {
        // A newline would start a new assignment in the datagram.
        let text = text.replace('\n', " ");
        self.send(&format!("STATUS={text}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, when the
    /// watchdog is on and meant for this process (`WATCHDOG_PID`, if set).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        if self.watchdog_every.is_some() {
            return self.watchdog_every;
        }
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
                return None;
            }
        }
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
        if usec == 0 {
            return None;
        }
        Some(Duration::from_micros(usec / 2))
    }
}
