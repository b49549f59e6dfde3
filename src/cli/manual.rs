//! `completions` and `man`: the shell completion scripts and the man pages,
//! generated from the command-line definitions in `args`, so they never
//! disagree with `--help`. The package ships their output (see README,
//! "Install the package").

use super::args::Cli;
use super::CliError;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;
use std::path::Path;

/// Sections a man page needs that the command line does not describe.
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
A failure at run time (PowerSchool, the database, a run that failed or was interrupted).
.TP
\fB2\fR
A configuration mistake: the message names the key, the bad value and what is allowed. Restarting does not help.
.TP
\fB3\fR
A run held by a safety threshold: nothing was applied; see \fBstudent\-sync approve\fR and \fBdiscard\fR.
.TP
\fB4\fR
\fBapprove\fR refused: the database changed since the plan was made, or a newer run exists.
.SH FILES
.TP
\fI/etc/student\-sync/student\-sync.toml\fR
The settings (no secrets). Every key, its default and its environment variable are in the shipped file.
.TP
\fI/etc/student\-sync/access_tiers.toml\fR
The tier matrix: what each access tier may view, create, edit and receive.
.TP
\fI/etc/student\-sync/student\-sync.env\fR
The service's environment (EnvironmentFile of the systemd unit).
.TP
\fI/etc/student\-sync/credentials/\fR
The PowerSchool client secret and the database password, handed to the service by systemd (LoadCredential).
.TP
\fI/etc/student\-sync/NAME.toml\fR, \fINAME.env\fR, \fIcredentials/NAME/\fR
The same for the district instance \fBstudent\-sync@NAME.service\fR.
.SH ENVIRONMENT
.TP
\fBSTUDENT_SYNC_CONFIG\fR
The settings file, as \fB\-\-config\fR.
.TP
\fBDATABASE_URL\fR
PostgreSQL, without its password.
.TP
\fBSTUDENT_SYNC_POWERSCHOOL_URL\fR, \fBSTUDENT_SYNC_POWERSCHOOL_CLIENT_ID\fR, \fBSTUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET\fR
The PowerSchool server and the plugin's credentials.
.TP
\fBSTUDENT_SYNC_*\fR
Every other setting; the settings file names each one beside its key.
.TP
\fBRUST_LOG\fR
Log levels, e.g. \fIinfo,student_sync::powerschool=debug\fR.
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fI/usr/share/doc/student\-sync/runbook.md\fR (the on\-call runbook), \fI/usr/share/doc/student\-sync/README.md\fR
"#;

/// Prints the completion script for `shell` to standard output.
pub fn completions(shell: Shell) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|source| CliError::Io {
            what: format!("writing the {shell} completion script to standard output"),
            source,
        })
}

/// Prints `student-sync(1)` to standard output or, with `dir`, writes it
/// and one page per command (`student-sync-sync.1`, …) into `dir`.
pub fn man(dir: Option<&Path>) -> Result<(), CliError> {
    let written = |source| CliError::Io {
        what: "writing the man page to standard output".into(),
        source,
    };
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        return main_page(&mut out).map_err(written);
    };
    let fail = |file: &Path, source| CliError::Io {
        what: format!(
            "writing the man page {} (check that the folder exists and is writable)",
            file.display()
        ),
        source,
    };
    let file = dir.join("student-sync.1");
    let mut out = std::fs::File::create(&file).map_err(|e| fail(&file, e))?;
    main_page(&mut out).map_err(|e| fail(&file, e))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    for page in pages(&cmd) {
        let file = dir.join(page.get_filename());
        let mut out = std::fs::File::create(&file).map_err(|e| fail(&file, e))?;
        page.render(&mut out).map_err(|e| fail(&file, e))?;
    }
    Ok(())
}

/// One page per command and per subcommand (`access export`): a built
/// command names its subcommands `student-sync-access-export`.
fn pages(cmd: &clap::Command) -> Vec<clap_mangen::Man> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .flat_map(|s| {
            let mut out = pages(s);
            out.push(clap_mangen::Man::new(s.clone()));
            out
        })
        .collect()
}

fn main_page(out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(Cli::command());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    out.write_all(EXTRA_SECTIONS.as_bytes())?;
    man.render_version_section(out)?;
    Ok(())
}
