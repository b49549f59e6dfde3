#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! What the Debian package ships: the completion scripts and man pages the
//! binary generates, the systemd template unit (checked by
//! `systemd-analyze verify` where systemd is installed, and kept in step with
//! the single unit), the package metadata's source files, and, when
//! `STUDENT_SYNC_TEST_PACKAGE` names a built .deb (`.ci/run` sets it after
//! `deploy/build-deb`), the package's own file list and conffiles.

use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use student_sync::cli::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_student-sync");

fn project(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "student-sync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every command name, as `student-sync COMMAND` takes it.
fn commands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn completions_cover_every_command_in_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = String::from_utf8(run(&["completions", shell]).stdout).unwrap();
        for command in commands() {
            assert!(
                script.contains(&command),
                "the {shell} script does not complete `{command}`"
            );
        }
        // Flags of one command, and a value list clap knows.
        assert!(script.contains("dry-run"), "{shell}: no --dry-run");
        assert!(script.contains("fish"), "{shell}: no shell names");
    }
    // bash loads the script and completes a command from its first letters.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("student-sync.bash");
    std::fs::write(&script, run(&["completions", "bash"]).stdout).unwrap();
    let completed = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$0" && complete -p student-sync >/dev/null &&
               COMP_WORDS=(student-sync app) COMP_CWORD=1 COMP_LINE="student-sync app" &&
               COMP_POINT=${#COMP_LINE} && _student__sync student-sync app student-sync &&
               echo "${COMPREPLY[@]}""#,
        )
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout).trim(),
        "approve",
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
    let zsh = String::from_utf8(run(&["completions", "zsh"]).stdout).unwrap();
    assert!(zsh.starts_with("#compdef student-sync"), "{zsh}");

    let wrong = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
}

#[test]
fn man_page_names_every_command_and_the_exit_codes() {
    let page = String::from_utf8(run(&["man"]).stdout).unwrap();
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "not roff: {page}");
    assert!(page.contains(".TH student-sync 1"), "{page}");
    for command in commands() {
        assert!(
            page.contains(&format!("student\\-sync\\-{}", command.replace('-', "\\-"))),
            "the page does not list `{command}`"
        );
    }
    for section in [".SH \"EXIT STATUS\"", ".SH FILES", ".SH ENVIRONMENT"] {
        assert!(page.contains(section), "no {section}");
    }
    assert!(page.contains("A run held by a safety threshold"));

    // The package's pages: one per command, and one per nested command.
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--dir", dir.path().to_str().unwrap()]);
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = commands()
        .iter()
        .map(|c| format!("student-sync-{c}.1"))
        .chain([
            "student-sync.1".into(),
            "student-sync-access-export.1".into(),
            "student-sync-plugin-build.1".into(),
        ])
        .collect();
    expected.sort();
    assert_eq!(files, expected);
    let approve = std::fs::read_to_string(dir.path().join("student-sync-approve.1")).unwrap();
    assert!(approve.contains("\\-\\-dry\\-run"), "{approve}");
    // The main page in the folder is the one printed.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("student-sync.1")).unwrap(),
        page
    );

    let missing = Command::new(BIN)
        .args(["man", "--dir", "/nonexistent/student-sync-man"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("/nonexistent/student-sync-man/student-sync.1"),
        "{err}"
    );
}

/// The directives of a unit file, in order, comments and blank lines left out.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn template_unit_is_the_single_unit_per_district() {
    let single = std::fs::read_to_string(project("deploy/student-sync.service")).unwrap();
    let template = std::fs::read_to_string(project("deploy/student-sync@.service")).unwrap();
    let template = directives(&template);
    for per_instance in [
        "ExecStart=/usr/bin/student-sync --config /etc/student-sync/%i.toml daemon",
        "EnvironmentFile=/etc/student-sync/%i.env",
        "LoadCredential=powerschool_client_secret:/etc/student-sync/credentials/%i/powerschool_client_secret",
        "LoadCredential=database_password:/etc/student-sync/credentials/%i/database_password",
        "SyslogIdentifier=student-sync@%i",
    ] {
        assert!(template.iter().any(|d| d == per_instance), "no {per_instance}");
    }
    // Everything else (start limits, stop timeout, hardening) is the same.
    let as_single: Vec<String> = template
        .iter()
        .filter(|d| !d.starts_with("Description="))
        .map(|d| {
            d.replace("/etc/student-sync/%i.", "/etc/student-sync/student-sync.")
                .replace("/credentials/%i/", "/credentials/")
                .replace("student-sync@%i", "student-sync")
        })
        .collect();
    let single: Vec<String> = directives(&single)
        .into_iter()
        .filter(|d| !d.starts_with("Description="))
        .collect();
    assert_eq!(
        as_single, single,
        "deploy/student-sync@.service and deploy/student-sync.service differ beyond the instance name"
    );
}

#[test]
fn template_unit_passes_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("SKIPPED: systemd-analyze is not installed here");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(project("deploy/student-sync@.service")).unwrap();
    // The unit names the packaged binary; verify checks that it exists.
    let unit = unit.replace(
        "ExecStart=/usr/bin/student-sync ",
        &format!("ExecStart={BIN} "),
    );
    assert!(unit.contains(BIN));
    std::fs::write(dir.path().join("student-sync@.service"), unit).unwrap();
    let instance = dir.path().join("student-sync@north.service");
    std::os::unix::fs::symlink("student-sync@.service", &instance).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&instance)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && said.contains("System has not been booted with systemd") {
        println!("SKIPPED: systemd-analyze cannot verify here: {said}");
        return;
    }
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    // Warnings about the unit itself (unknown keys, bad values) fail it too.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("student-sync@"))
        .collect();
    assert!(about_unit.is_empty(), "{said}");
}

/// The files the package must hold (paths as `dpkg-deb -c` prints them).
const PACKAGED: &[&str] = &[
    "./usr/bin/student-sync",
    "./usr/lib/systemd/system/student-sync.service",
    "./usr/lib/systemd/system/student-sync@.service",
    "./etc/student-sync/student-sync.toml",
    "./etc/student-sync/access_tiers.toml",
    "./etc/student-sync/student-sync.env",
    "./usr/share/man/man1/student-sync.1.gz",
    "./usr/share/man/man1/student-sync-approve.1.gz",
    "./usr/share/bash-completion/completions/student-sync",
    "./usr/share/zsh/vendor-completions/_student-sync",
    "./usr/share/fish/vendor_completions.d/student-sync.fish",
    "./usr/share/student-sync/prometheus/student-sync.rules.yml",
    "./usr/share/student-sync/grafana/student-sync.json",
    "./usr/share/doc/student-sync/runbook.md",
    "./usr/share/doc/student-sync/copyright",
];

const CONFFILES: &[&str] = &[
    "/etc/student-sync/student-sync.toml",
    "/etc/student-sync/access_tiers.toml",
    "/etc/student-sync/student-sync.env",
];

#[test]
fn package_metadata_names_files_that_exist() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(project("Cargo.toml")).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    for asset in assets {
        let source = asset[0].as_str().unwrap();
        // target/ holds what deploy/build-deb builds and generates.
        if source.starts_with("target/") || source.contains('*') {
            continue;
        }
        assert!(project(source).is_file(), "asset {source} does not exist");
    }
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(conf, CONFFILES);
    let build = std::fs::read_to_string(project("deploy/build-deb")).unwrap();
    for generated in [
        "man --dir target/assets/man",
        "completions bash",
        "completions zsh",
        "completions fish",
    ] {
        assert!(
            build.contains(generated),
            "deploy/build-deb does not run `{generated}`"
        );
    }
}

#[test]
fn built_package_holds_the_binary_units_settings_man_pages_and_completions() {
    let Ok(deb) = std::env::var("STUDENT_SYNC_TEST_PACKAGE") else {
        println!(
            "SKIPPED: set STUDENT_SYNC_TEST_PACKAGE to a .deb built by deploy/build-deb (.ci/run does)"
        );
        return;
    };
    let listing = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .unwrap();
    assert!(listing.status.success(), "dpkg-deb -c {deb}");
    let listing = String::from_utf8(listing.stdout).unwrap();
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for expected in PACKAGED {
        assert!(
            files.contains(expected),
            "{deb} lacks {expected}:\n{listing}"
        );
    }
    for command in commands() {
        let page = format!("./usr/share/man/man1/student-sync-{command}.1.gz");
        assert!(files.contains(&page.as_str()), "{deb} lacks {page}");
    }
    let binary = listing
        .lines()
        .find(|l| l.ends_with(" ./usr/bin/student-sync"))
        .unwrap();
    assert!(binary.starts_with("-rwxr-xr-x"), "{binary}");
    let env = listing
        .lines()
        .find(|l| l.ends_with(" ./etc/student-sync/student-sync.env"))
        .unwrap();
    assert!(env.starts_with("-rw-r-----"), "{env}");

    let conffiles = Command::new("dpkg-deb")
        .args(["-I", &deb, "conffiles"])
        .output()
        .unwrap();
    assert!(conffiles.status.success(), "dpkg-deb -I {deb} conffiles");
    let conffiles = String::from_utf8(conffiles.stdout).unwrap();
    let mut listed: Vec<&str> = conffiles.lines().map(str::trim).collect();
    listed.sort();
    let mut expected = CONFFILES.to_vec();
    expected.sort();
    assert_eq!(listed, expected);

    let field = |name: &str| {
        let out = Command::new("dpkg-deb")
            .args(["-f", &deb, name])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(field("Package"), "student-sync");
    assert_eq!(
        field("Version"),
        env!("CARGO_PKG_VERSION").to_string() + "-1"
    );
}
