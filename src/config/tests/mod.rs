use super::*;

mod secrets;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn minimal() -> Vec<(&'static str, &'static str)> {
    vec![
        ("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org"),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
        ("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "s3cret"),
        ("DATABASE_URL", "postgres://postgres:pw@127.0.0.1:5432/x"),
    ]
}

fn load_toml(toml_text: &str, extra_env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("student-sync.toml");
    std::fs::write(&path, toml_text).unwrap();
    let mut e = env(&minimal());
    e.extend(env(extra_env));
    Settings::load(&Sources {
        file: Some(&path),
        env: e,
    })
}

fn key_of(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { key, .. } | ConfigError::Missing { key, .. } => key,
        other => panic!("expected an error naming a key, got {other}"),
    }
}

#[test]
fn environment_alone_is_enough() {
    let s = Settings::load(&Sources {
        file: None,
        env: env(&minimal()),
    })
    .unwrap();
    assert_eq!(s.powerschool.client_secret.expose(), "s3cret");
    assert_eq!(s.powerschool.page_size, 1000);
    assert_eq!(s.powerschool.school_concurrency, 4);
    assert_eq!(s.database.password.as_ref().unwrap().expose(), "pw");
    assert!(!s.database.url.as_str().contains("pw"));
    assert!(s.database.connect_url().expose().contains(":pw@"));
    assert_eq!(s.schedule.timezone, chrono_tz::America::Edmonton);
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "secrets must not appear in Debug output"
    );
}

#[test]
fn every_validation_error_names_its_key() {
    let cases: &[(&str, &str)] = &[
        ("[powerschool]\npage_size = 0", "powerschool.page_size"),
        (
            "[powerschool]\nschool_concurrency = 0",
            "powerschool.school_concurrency",
        ),
        (
            "[powerschool]\nmax_attempts = 0",
            "powerschool.max_attempts",
        ),
        (
            "[powerschool]\nbackoff_initial_ms = -1",
            "powerschool.backoff_initial_ms",
        ),
        (
            "[powerschool]\nbackoff_initial_ms = 100\nbackoff_max_ms = 10",
            "powerschool.backoff_max_ms",
        ),
        (
            "[powerschool]\nrequest_timeout_secs = 0",
            "powerschool.request_timeout_secs",
        ),
        (
            "[powerschool]\ntoken_refresh_margin_secs = -5",
            "powerschool.token_refresh_margin_secs",
        ),
        (
            "[database]\nmax_connections = 0",
            "database.max_connections",
        ),
        (
            "[sync]\non_powerschool_removal = \"delete\"",
            "sync.on_powerschool_removal",
        ),
        (
            "[sync]\nstudent_login_field = \"username\"",
            "sync.student_login_field",
        ),
        ("[sync]\naccess_tiers_file = \"\"", "sync.access_tiers_file"),
        ("[schedule]\ncron = \"every night\"", "schedule.cron"),
        (
            "[schedule]\ntimezone = \"Mars/Olympus\"",
            "schedule.timezone",
        ),
        (
            "[[schedule.blackout]]\nfrom = \"2026-07-01\"\nto = \"2026-13-01\"",
            "schedule.blackout[0].to",
        ),
        (
            "[[schedule.blackout]]\nfrom = \"yesterday\"\nto = \"2026-08-01\"",
            "schedule.blackout[0].from",
        ),
        (
            "[daemon]\ngrace_period_secs = 0",
            "daemon.grace_period_secs",
        ),
        ("[daemon]\nlisten = \"nowhere\"", "daemon.listen"),
        ("[logging]\nformat = \"xml\"", "logging.format"),
        ("district = \" \"", "district"),
        (
            "[safety.students_leaving]\npercent = 150.0",
            "safety.students_leaving.percent",
        ),
        (
            "[safety.connections_losing_access]\ncount = -1",
            "safety.connections_losing_access.count",
        ),
        (
            "[safety]\npercent_applies_from = -3",
            "safety.percent_applies_from",
        ),
    ];
    for (text, key) in cases {
        let err = load_toml(text, &[]).expect_err(text);
        let message = err.to_string();
        assert!(
            message.contains(key),
            "{text}: message {message:?} must name {key}"
        );
        assert_eq!(&key_of(err), key, "{text}");
    }
}

#[test]
fn env_errors_name_the_key() {
    let e = load_toml("", &[("STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE", "lots")]).unwrap_err();
    assert_eq!(key_of(e), "powerschool.page_size");
    let e = load_toml(
        "",
        &[("STUDENT_SYNC_SYNC_INCLUDE_SCHEDULING_YEAR", "maybe")],
    )
    .unwrap_err();
    assert_eq!(key_of(e), "sync.include_scheduling_year");
    let e = load_toml("", &[("DATABASE_URL", "mysql://x@y/z")]).unwrap_err();
    assert_eq!(key_of(e), "database.url");
    let e = load_toml("", &[("STUDENT_SYNC_SAFETY_USERS_CREATED_PERCENT", "lots")]).unwrap_err();
    assert_eq!(key_of(e), "safety.users_created.percent");
}

#[test]
fn safety_defaults_file_and_env() {
    let s = load_toml("", &[]).unwrap();
    assert_eq!(s.safety, SafetySettings::default());
    let s = load_toml(
        "[safety]\nenabled = false\n[safety.students_leaving]\ncount = 7\n",
        &[
            ("STUDENT_SYNC_SAFETY_STUDENTS_LEAVING_PERCENT", "2.5"),
            ("STUDENT_SYNC_SAFETY_GUARDIAN_QUERY_SHRINK_COUNT", "9"),
            ("STUDENT_SYNC_SAFETY_SCHOOL_CONTACTS_SHRINK_PERCENT", "40"),
            ("STUDENT_SYNC_SAFETY_CONNECTIONS_ORPHANED_COUNT", "3"),
        ],
    )
    .unwrap();
    assert_eq!(s.safety.school_contacts_shrink.percent, 40.0);
    assert_eq!(s.safety.connections_orphaned.count, 3);
    assert!(!s.safety.enabled);
    assert_eq!(
        s.safety.students_leaving,
        Threshold {
            count: 7,
            percent: 2.5
        }
    );
    assert_eq!(s.safety.guardian_query_shrink.count, 9);
}

#[test]
fn missing_settings_name_their_key() {
    let e = Settings::load(&Sources {
        file: None,
        env: HashMap::new(),
    })
    .unwrap_err();
    assert_eq!(key_of(e), "powerschool.url");
    let e = Settings::load(&Sources {
        file: None,
        env: env(&[("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org")]),
    })
    .unwrap_err();
    assert_eq!(key_of(e), "powerschool.client_id");
    let e = Settings::load(&Sources {
        file: None,
        env: env(&[
            ("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
        ]),
    })
    .unwrap_err();
    assert_eq!(key_of(e), "powerschool.client_secret");
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/student-sync.example.toml");
    let s = Settings::load(&Sources {
        file: Some(&path),
        env: env(&[("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "x")]),
    })
    .unwrap();
    assert_eq!(s.powerschool.page_size, 1000);
    // The example documents the safety defaults.
    assert_eq!(s.safety, SafetySettings::default());
}

#[test]
fn the_log_format_comes_from_the_same_load() {
    assert_eq!(load_toml("", &[]).unwrap().logging.format, LogFormat::Auto);
    let file = "[logging]\nformat = \"json\"\n";
    assert_eq!(
        load_toml(file, &[]).unwrap().logging.format,
        LogFormat::Json
    );
    let s = load_toml(file, &[(LOG_FORMAT_ENV, "human")]).unwrap();
    assert_eq!(s.logging.format, LogFormat::Human);
    let e = load_toml(file, &[(LOG_FORMAT_ENV, "xml")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "setting `logging.format` has the bad value \"xml\": allowed are auto, human, json"
    );
}

#[test]
fn the_tier_matrix_is_loaded_with_the_settings() {
    use crate::rules::TierMatrix;
    // None named: the spec's default matrix.
    let s = load_toml("", &[]).unwrap();
    assert_eq!(s.sync.access_tiers, TierMatrix::default());
    // The example names the shipped file, beside it.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/student-sync.example.toml");
    let s = Settings::load_for(
        &Sources {
            file: Some(&example),
            env: HashMap::new(),
        },
        Needs::Rules,
    )
    .unwrap();
    assert_eq!(s.sync.access_tiers, TierMatrix::default());
    // Missing: exit-2 material, with the fix.
    let e = load_toml("[sync]\naccess_tiers_file = \"nowhere.toml\"\n", &[]).unwrap_err();
    assert!(matches!(e, ConfigError::TierMatrixUnreadable { .. }), "{e}");
    assert!(
        e.to_string().contains("copy config/access_tiers.toml"),
        "{e}"
    );
    // Unreadable as a matrix: the file and the matrix's own complaint.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("tiers.toml");
    std::fs::write(&bad, "[full]\nview_forms = \"some\"\n").unwrap();
    let e = load_toml(
        "",
        &[("STUDENT_SYNC_SYNC_ACCESS_TIERS_FILE", bad.to_str().unwrap())],
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::TierMatrix { .. }), "{e}");
    assert!(e.to_string().contains("tiers.toml"), "{e}");
}

#[test]
fn commands_that_read_only_the_database_do_not_read_the_tier_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("student-sync.toml");
    std::fs::write(&file, "[sync]\naccess_tiers_file = \"nowhere.toml\"\n").unwrap();
    let sources = Sources {
        file: Some(&file),
        env: HashMap::new(),
    };
    // `status` and the other database-only commands still work while the
    // matrix file is being fixed; `explain` and every run refuse to start.
    let s = Settings::load_for(&sources, Needs::Database).unwrap();
    assert_eq!(s.sync.access_tiers, crate::rules::TierMatrix::default());
    let e = Settings::load_for(&sources, Needs::Rules).unwrap_err();
    assert!(matches!(e, ConfigError::TierMatrixUnreadable { .. }), "{e}");
}

#[test]
fn a_settings_mistake_is_reported_before_the_tier_matrix_file() {
    let e = load_toml(
        "[sync]\naccess_tiers_file = \"nowhere.toml\"\n[safety]\nenabled = true\npercent_applies_from = -1\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(key_of(e), "safety.percent_applies_from");
}

#[test]
fn environment_text_is_read_as_its_key_type() {
    let s = load_toml(
        "",
        &[
            ("STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE", " 250 "),
            ("STUDENT_SYNC_SAFETY_ENABLED", "Off"),
            ("STUDENT_SYNC_SYNC_INCLUDE_SCHEDULING_YEAR", "yes"),
            ("STUDENT_SYNC_SAFETY_USERS_CREATED_PERCENT", "250"),
            ("STUDENT_SYNC_DISTRICT", "1234"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "[not, an, array]"),
        ],
    )
    .unwrap();
    assert_eq!(s.powerschool.page_size, 250);
    assert!(!s.safety.enabled);
    assert!(s.sync.include_scheduling_year);
    assert_eq!(s.safety.users_created.percent, 250.0);
    assert_eq!(s.district, "1234");
    assert_eq!(s.powerschool.client_id, "[not, an, array]");
    let e = load_toml("", &[("STUDENT_SYNC_POWERSCHOOL_MAX_ATTEMPTS", "2.5")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "setting `powerschool.max_attempts` has the bad value \"2.5\": \
         STUDENT_SYNC_POWERSCHOOL_MAX_ATTEMPTS must be a whole number"
    );
}

#[test]
fn the_environment_wins_over_the_file_and_student_sync_database_url_over_database_url() {
    let s = load_toml(
        "district = \"from-file\"\n[powerschool]\npage_size = 10\nschool_concurrency = 2\n",
        &[
            ("STUDENT_SYNC_POWERSCHOOL_PAGE_SIZE", "20"),
            (
                "STUDENT_SYNC_DATABASE_URL",
                "postgres://postgres@127.0.0.1/second",
            ),
        ],
    )
    .unwrap();
    assert_eq!(s.district, "from-file");
    assert_eq!(s.powerschool.page_size, 20);
    assert_eq!(s.powerschool.school_concurrency, 2);
    assert_eq!(s.database.url.path(), "/second");
}

#[test]
fn max_requests_in_flight_defaults_to_sixty_four_and_is_checked() {
    let s = load_toml("", &[]).unwrap();
    assert_eq!(s.powerschool.max_requests_in_flight, 64);
    let s = load_toml(
        "[powerschool]\nmax_requests_in_flight = 4\n",
        &[("STUDENT_SYNC_POWERSCHOOL_MAX_REQUESTS_IN_FLIGHT", "6")],
    )
    .unwrap();
    assert_eq!(
        s.powerschool.max_requests_in_flight, 6,
        "the environment wins"
    );
    let s = load_toml("[powerschool]\nmax_requests_in_flight = 128\n", &[]).unwrap();
    assert_eq!(
        s.powerschool.max_requests_in_flight, 128,
        "the most allowed"
    );
    for bad in ["0", "129", "-1"] {
        let e = load_toml(
            &format!("[powerschool]\nmax_requests_in_flight = {bad}\n"),
            &[],
        )
        .unwrap_err();
        let message = e.to_string();
        assert_eq!(key_of(e), "powerschool.max_requests_in_flight", "{bad}");
        assert!(
            message.contains("from 1 to 128"),
            "the allowed range is named: {message}"
        );
    }
}

#[test]
fn an_older_school_concurrency_keeps_its_ceiling_unless_the_bound_is_set() {
    for (file, bound, why) in [
        (
            "school_concurrency = 1",
            6,
            "1 school x 2 queries x 3 pages",
        ),
        ("school_concurrency = 20", 64, "never above 64"),
        (
            "school_concurrency = 1\nmax_requests_in_flight = 10",
            10,
            "the bound wins",
        ),
    ] {
        let s = load_toml(&format!("[powerschool]\n{file}\n"), &[]).unwrap();
        assert_eq!(s.powerschool.max_requests_in_flight, bound, "{why}");
    }
}

#[test]
fn unknown_keys_in_the_file_are_refused() {
    for (text, key) in [
        ("colour = \"blue\"\n", "`colour`"),
        ("[powerschool]\npagesize = 5\n", "`powerschool.pagesize`"),
        (
            "[safety.users_created]\ncount = 1\nratio = 2\n",
            "`safety.users_created.ratio`",
        ),
        (
            "[database]\nmax_connections = \"5\"\n",
            "`database.max_connections`",
        ),
    ] {
        let e = load_toml(text, &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{text}: {e}");
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
    let e = load_toml("[powerschool\n", &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    // A variable nobody reads is ignored, as any other variable of the process.
    load_toml("", &[("STUDENT_SYNC_COLOUR", "blue")]).unwrap();
}

#[test]
fn the_new_time_limits_have_defaults_and_ranges() {
    let s = load_toml("", &[]).unwrap();
    assert_eq!(
        s.sync.run_deadline,
        std::time::Duration::from_secs(240 * 60)
    );
    assert_eq!(s.daemon.stall_timeout, std::time::Duration::from_secs(900));
    assert!(!s.daemon.allow_remote_listen);
    assert_eq!(s.database.transient_retries, 3);
    assert_eq!(s.database.lock_timeout, std::time::Duration::from_secs(60));
    let e = load_toml("[sync]\nrun_deadline_mins = 0\n", &[]).unwrap_err();
    assert_eq!(key_of(e), "sync.run_deadline_mins");
    let s = load_toml("", &[("STUDENT_SYNC_DAEMON_STALL_TIMEOUT_SECS", "5")]).unwrap();
    assert_eq!(s.daemon.stall_timeout, std::time::Duration::from_secs(5));
}

#[test]
fn retention_defaults_file_and_env() {
    let d = load_toml("", &[]).unwrap().retention;
    assert_eq!(d, RetentionSettings::default());
    assert_eq!(
        (d.keep_days, d.keep_runs, d.audit_keep_days),
        (90, 30, None)
    );
    let s = load_toml(
        "[retention]\nkeep_days = 30\naudit_keep_days = 3650\n",
        &[("STUDENT_SYNC_RETENTION_KEEP_RUNS", "7")],
    )
    .unwrap()
    .retention;
    assert_eq!(
        (s.keep_days, s.keep_runs, s.audit_keep_days),
        (30, 7, Some(3650))
    );
    let zero = load_toml("[retention]\nkeep_days = 0\n", &[]).unwrap_err();
    assert_eq!(key_of(zero), "retention.keep_days");
    let negative = load_toml("", &[("STUDENT_SYNC_RETENTION_AUDIT_KEEP_DAYS", "-1")]);
    assert_eq!(key_of(negative.unwrap_err()), "retention.audit_keep_days");
}

#[test]
fn the_rules_judge_independence_by_the_districts_enrolment_value() {
    let s = load_toml("", &[]).unwrap();
    assert_eq!(s.sync.independent_enrolment_type, "121");
    let s = load_toml(
        "[powerschool.fields]\nindependent_enrolment_type = \"7\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(s.powerschool.fields.independent_enrolment_type, "7");
    assert_eq!(s.sync.independent_enrolment_type, "7");
}
