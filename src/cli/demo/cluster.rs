//! A throwaway PostgreSQL for `demo` on a machine without one running: a
//! new cluster made with the installed `initdb` in a temporary directory,
//! started with `pg_ctl` on a free loopback port (its socket in the same
//! directory), and stopped and removed when the demo ends, also on an
//! error or Ctrl-C (`Drop`).
//!
//! PostgreSQL refuses to run as root: as root, `initdb` and `pg_ctl` run as
//! the `postgres` user (or `nobody`) through `runuser`, in a directory
//! handed to that user.

use super::super::CliError;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What to tell someone without PostgreSQL, in one line.
pub(super) const INSTALL_HINT: &str = "the demo needs PostgreSQL: none answers on 127.0.0.1 and \
     no `initdb`/`pg_ctl` were found (on PATH or in /usr/lib/postgresql/*/bin); install it \
     with `apt install postgresql` (or set DATABASE_URL to a server you have)";

/// A running throwaway cluster; dropped, it is stopped and its directory removed.
pub(super) struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
}

impl Cluster {
    /// Makes and starts a cluster, or says why it could not.
    pub(super) fn start() -> Result<Cluster, CliError> {
        let bin = find_bin().ok_or_else(|| CliError::Usage(INSTALL_HINT.to_string()))?;
        let run_as = if running_as_root() {
            Some(unprivileged_user())
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "student-sync-demo-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir)
            .map_err(|source| io("cannot create the demo's cluster directory", source))?;
        // From here on, Drop removes the directory whatever happens.
        let cluster = Cluster {
            dir,
            bin,
            port: free_port()?,
            run_as,
        };
        if let Some(user) = &cluster.run_as {
            cluster.hand_to(user)?;
        }
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_text(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.port,
            path_text(&cluster.dir)
        );
        let log = cluster.dir.join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                path_text(&data),
                "-o",
                &options,
                "-l",
                path_text(&log),
                "-w",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    /// The database URL of the cluster (trust authentication, user postgres).
    pub(super) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/student_sync", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Gives the directory to the user the cluster runs as.
    fn hand_to(&self, user: &str) -> Result<(), CliError> {
        let status = Command::new("chown")
            .arg(format!("{user}:"))
            .arg(&self.dir)
            .status()
            .map_err(|source| io("cannot run chown for the demo's cluster directory", source))?;
        if !status.success() {
            return Err(CliError::Usage(format!(
                "cannot give {} to the user {user} that PostgreSQL runs as",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Runs one of the cluster's programs (as the unprivileged user when
    /// root), its output kept for the error message.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), CliError> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| io(&format!("cannot run {}", path.display()), source))?;
        if output.status.success() {
            return Ok(());
        }
        Err(CliError::Usage(format!(
            "{program} failed for the demo's throwaway PostgreSQL in {}: {}{}",
            self.dir.display(),
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        )))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let data = self.data_dir();
            let _ = self.run(
                "pg_ctl",
                &["-D", path_text(&data), "-m", "immediate", "-w", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding `initdb` and `pg_ctl`: on PATH, else the newest
/// /usr/lib/postgresql/*/bin.
pub(super) fn find_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|d| has_both(d)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `postgres` when the system has that user, else `nobody`.
fn unprivileged_user() -> String {
    let exists = Command::new("id")
        .args(["-u", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists { "postgres" } else { "nobody" }.to_string()
}

fn free_port() -> Result<u16, CliError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| {
            io(
                "cannot find a free loopback port for the demo's PostgreSQL",
                source,
            )
        })
}

fn path_text(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn io(what: &str, source: std::io::Error) -> CliError {
    CliError::Io {
        what: what.to_string(),
        source,
    }
}
