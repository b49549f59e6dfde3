//! Settings that keep secrets and transport safe: plain HTTP only to
//! loopback, secrets only from the environment or files and never echoed,
//! no password in a URL, TLS to a remote database.

use super::*;

#[test]
fn plain_http_only_to_loopback() {
    assert!(parse_powerschool_url("http://127.0.0.1:8080").is_ok());
    assert!(parse_powerschool_url("http://127.9.8.7:8080").is_ok());
    // A name is resolved elsewhere and may not be this machine.
    let e = parse_powerschool_url("http://localhost:8080").unwrap_err();
    assert!(e.to_string().contains("not even localhost"), "{e}");
    assert!(parse_powerschool_url("http://[::1]:8080").is_ok());
    assert!(parse_powerschool_url("https://ps.example.org").is_ok());
    let e = parse_powerschool_url("http://ps.example.org").unwrap_err();
    assert!(e.to_string().contains("powerschool.url"));
    assert!(e.to_string().contains("loopback"));
    assert_eq!(
        key_of(parse_powerschool_url("ftp://ps.example.org").unwrap_err()),
        "powerschool.url"
    );
}

#[test]
fn secrets_never_come_from_the_toml() {
    // client_secret in the file is refused outright, by name.
    let e = load_toml("[powerschool]\nclient_secret = \"x\"", &[]).unwrap_err();
    assert_eq!(key_of(e), "powerschool.client_secret");
    // A password inside the TOML's database URL is refused, and not echoed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[database]\nurl = \"postgres://u:hunter2@db/x\"").unwrap();
    let mut e = env(&minimal());
    e.remove("DATABASE_URL");
    let err = Settings::load(&Sources {
        file: Some(&path),
        env: e,
    })
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
    assert_eq!(key_of(err), "database.url");
}

#[test]
fn secret_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ps_secret"), "from-file\n").unwrap();
    std::fs::write(dir.path().join("db_pw"), "dbpw\n").unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[powerschool]\nurl = \"https://ps.example.org\"\nclient_id = \"id\"\nclient_secret_file = \"ps_secret\"\n[database]\nurl = \"postgres://postgres@127.0.0.1/x\"\npassword_file = \"db_pw\"\n",
    )
    .unwrap();
    let s = Settings::load(&Sources {
        file: Some(&path),
        env: HashMap::new(),
    })
    .unwrap();
    assert_eq!(s.powerschool.client_secret.expose(), "from-file");
    assert_eq!(s.database.password.unwrap().expose(), "dbpw");
    let missing = dir.path().join("m.toml");
    std::fs::write(&missing, "[powerschool]\nurl = \"https://ps.example.org\"\nclient_id = \"id\"\nclient_secret_file = \"nope\"\n").unwrap();
    let e = Settings::load(&Sources {
        file: Some(&missing),
        env: HashMap::new(),
    })
    .unwrap_err();
    assert!(e.to_string().contains("powerschool.client_secret"), "{e}");
}

#[test]
fn a_secret_in_the_file_is_refused_by_name_and_never_echoed() {
    for (text, key) in [
        (
            "[powerschool]\nclient_secret = \"hunter2\"\n",
            "powerschool.client_secret",
        ),
        ("[database]\npassword = \"hunter2\"\n", "database.password"),
    ] {
        let e = load_toml(text, &[]).unwrap_err().to_string();
        assert!(
            e.contains(key) && e.contains("never read from the config file"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn a_password_in_a_url_is_refused_in_the_file_and_never_shown() {
    let mut e = env(&minimal());
    e.remove("DATABASE_URL");
    for url in [
        "postgres://u@127.0.0.1/x?password=hunter2",
        "postgres://u:hunter2@127.0.0.1/x?sslmode=disable",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("[database]\nurl = \"{url}\"\n")).unwrap();
        let err = Settings::load(&Sources {
            file: Some(&path),
            env: e.clone(),
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("password_file"), "{text}");
        assert_eq!(key_of(err), "database.url");
    }
    // From the environment it is taken out of the URL and kept as a secret.
    let s = Settings::load(&Sources {
        file: None,
        env: env(&[
            ("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
            ("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "s3cret"),
            (
                "DATABASE_URL",
                "postgres://u@127.0.0.1/x?application_name=a&password=hunter2",
            ),
        ]),
    })
    .unwrap();
    assert_eq!(s.database.password.as_ref().unwrap().expose(), "hunter2");
    assert!(!s.database.display_url().contains("hunter2"));
    assert!(s.database.display_url().contains("application_name=a"));
    assert!(s.database.connect_url().expose().contains(":hunter2@"));
    assert_eq!(
        super::database::redact_url_text("postgres://u@h/x?password=hunter2"),
        "postgres://u@h/x?password=***"
    );
}

#[test]
fn a_parse_error_names_line_and_column_but_not_the_line() {
    let e = load_toml(
        "district = \"d\"\n[database]\nurl = \"postgres://u:hunter2@db/x\n",
        &[],
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ConfigError::Parse { .. }), "{text}");
    assert!(text.contains("line 3, column"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_user_and_password_in_the_powerschool_url_are_refused_for_any_scheme() {
    for url in [
        "https://me:hunter2@ps.example.org",
        "http://me:hunter2@127.0.0.1:8080",
        "https://me@ps.example.org",
    ] {
        let e = parse_powerschool_url(url).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("user name or password"), "{e}");
    }
}

#[test]
fn a_remote_database_needs_verify_full_unless_allowed() {
    let load = |url: &str, allow: &str| {
        Settings::load(&Sources {
            file: None,
            env: env(&[
                ("STUDENT_SYNC_POWERSCHOOL_URL", "https://ps.example.org"),
                ("STUDENT_SYNC_POWERSCHOOL_CLIENT_ID", "id"),
                ("STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET", "s3cret"),
                ("DATABASE_URL", url),
                ("STUDENT_SYNC_DATABASE_ALLOW_INSECURE_TLS", allow),
            ]),
        })
    };
    let e = load("postgres://u@db.example.org/x", "false").unwrap_err();
    assert!(e.to_string().contains("sslmode=verify-full"), "{e}");
    let e = load("postgres://u@db.example.org/x?sslmode=require", "false").unwrap_err();
    assert!(e.to_string().contains("sslmode is require"), "{e}");
    assert!(load("postgres://u@db.example.org/x?sslmode=verify-full", "false").is_ok());
    assert!(load("postgres://u@db.example.org/x", "true").is_ok());
    assert!(load("postgres://u@127.0.0.1/x", "false").is_ok());
    assert!(load("postgres://u@[::1]/x", "false").is_ok());
    assert!(load("postgres://u@localhost/x?host=/var/run/postgresql", "false").is_ok());
}
