#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::string_slice
)] // tests may unwrap, index and panic: a panic is the failure report
//! The alert rules (deploy/prometheus/student-sync.rules.yml) and the Grafana
//! dashboard (deploy/grafana/student-sync.json) use only metrics a running
//! daemon serves: a daemon against the fake PowerSchool and a real database
//! runs one night, then every metric name in every rule and panel must be
//! in its `/metrics`. Where promtool is installed, the rules pass their own
//! unit tests. Also: each alert the runbook promises exists and is
//! explained in docs/runbook.md, and the gauges the rules read say what
//! happened (the failed run at start, the run in progress, the success).
//! A test binary of its own: the metrics recorder is global to the process.

mod common;

use chrono::Utc;
use common::daemon_http::*;
use common::*;
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use student_sync::daemon::{Daemon, Notifier};
use student_sync::harness::fake_powerschool::{self, Faults};
use tokio::sync::watch;
use yaml_rust2::{Yaml, YamlLoader};

/// Series Prometheus makes itself for every target, not served by the daemon.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// Words of PromQL that are not metric names.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
];

/// Aggregations: like functions, but `by (…)` may stand before their `(`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names in a PromQL expression: every identifier that is not a
/// function (followed by `(`), a keyword, a label list (after by/on/…), a
/// label matcher (inside `{}`), a range (inside `[]`), a string or a number.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let (mut i, mut label_list) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if label_list => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                label_list = false;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if KEYWORDS.contains(&word.as_str()) {
                    label_list = matches!(
                        word.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                } else if next != Some(&'(') && !AGGREGATIONS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number, or a duration such as 5m or 1d.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

struct Rule {
    alert: String,
    expr: String,
}

fn rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/student-sync.rules.yml"),
    )
    .unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let groups = docs[0]["groups"].as_vec().expect("a list of groups");
    let mut out = Vec::new();
    for group in groups {
        for rule in group["rules"].as_vec().expect("a list of rules") {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(
                !matches!(rule["annotations"]["summary"], Yaml::BadValue),
                "{alert} has no summary"
            );
            out.push(Rule {
                alert: alert.to_string(),
                expr: expr.to_string(),
            });
        }
    }
    out
}

/// Every PromQL query in the dashboard: the panels' targets and the
/// district variable's query.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/student-sync.json"),
    )
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for t in targets {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["definition"].as_str() {
            // label_values(METRIC{…}, label): the metric is what matters.
            out.push(q.replace("label_values(", "(").replace(", district)", ")"));
        }
    }
    out
}

/// The series names a scrape holds (histograms as _bucket, _sum, _count).
fn served(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

#[test]
fn metric_names_skip_functions_labels_and_numbers() {
    let names = metric_names(
        r#"(time() - (a_b{job="x", y=~"$d"} > 0) > on (job, instance) 3 * sum by (job) (rate(c_sum{s="ok"}[14d])) / 2.5e3) and on(job) up == 1 unless ignoring(le) d:e offset 5m"#,
    );
    let expected: BTreeSet<String> = ["a_b", "c_sum", "up", "d:e"].map(String::from).into();
    assert_eq!(names, expected);
}

#[test]
fn every_alert_has_a_runbook_section() {
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .unwrap();
    let alerts: Vec<String> = rules().into_iter().map(|r| r.alert).collect();
    for alert in [
        "StudentSyncDaemonDown",
        "StudentSyncNoSuccessfulRun",
        "StudentSyncRunHeld",
        "StudentSyncRunFailed",
        "StudentSyncRunSlow",
    ] {
        assert!(alerts.iter().any(|a| a == alert), "no alert {alert}");
    }
    for alert in &alerts {
        assert!(
            runbook.contains(alert.as_str()),
            "docs/runbook.md does not explain {alert}"
        );
    }
}

/// The rules' own unit tests (deploy/prometheus/student-sync.rules.test.yml:
/// each alert fires on the series it is about, and not before its time),
/// where Prometheus's promtool is installed.
#[test]
fn alert_rules_pass_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let Ok(check) = std::process::Command::new("promtool")
        .args(["check", "rules", "student-sync.rules.yml"])
        .current_dir(&dir)
        .output()
    else {
        println!("SKIPPED: promtool is not installed here (Debian package prometheus)");
        return;
    };
    let said = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(check.status.success(), "{}", said(&check));
    let test = std::process::Command::new("promtool")
        .args(["test", "rules", "student-sync.rules.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", said(&test));
}

#[sqlx::test]
async fn rules_and_dashboard_use_only_served_metrics(pool: PgPool) {
    // Tonight's run failed before the daemon started: the gauge says so.
    sqlx::query(
        "INSERT INTO sync_runs (trigger, night, status, phase, error, finished_at)
         VALUES ('schedule', '2026-03-05', 'failed', 'fetching', 'PowerSchool said 500', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let fake = start_fake(
        fake_powerschool::generate(300, 11),
        Faults {
            page_latency: Duration::from_millis(40),
            ..Faults::default()
        },
    )
    .await;
    let mut settings = daemon_settings(&fake, &pool).await;
    settings.safety.enabled = false;
    let clock = GateClock::at_noon_on_a_school_day();
    let (stop, stopped) = watch::channel(false);
    let daemon = Daemon::with_clock(settings, pool.clone(), clock.clone())
        .unwrap()
        .with_notifier(Notifier::disabled());
    let running = daemon.start(stopped).await.unwrap();
    let metrics_url = format!("http://{}/metrics", running.http_addr);

    // Active: the daemon has read the run history and holds the district lock.
    let mut before = String::new();
    for _ in 0..200 {
        before = get(&metrics_url).await.1;
        if sample(&before, "student_sync_active", &[]) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        sample(&before, "student_sync_last_run_failed", &[]),
        Some(1.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "student_sync_run_started_timestamp_seconds", &[]),
        Some(0.0)
    );

    // One night: the schedule fires once; watch the run in progress.
    clock.permits.add_permits(1);
    let start = Instant::now();
    let mut started_seen = None;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not finish"
        );
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM sync_runs WHERE night = '2026-03-06' ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        match status.as_deref() {
            Some("running") if started_seen.is_none() => {
                let (_, during) = get(&metrics_url).await;
                if sample(&during, "student_sync_run_in_progress", &[]) == Some(1.0) {
                    started_seen =
                        sample(&during, "student_sync_run_started_timestamp_seconds", &[]);
                }
            }
            Some("succeeded") => break,
            Some(other @ ("failed" | "interrupted" | "held")) => panic!("the run ended {other}"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started_seen = started_seen.expect("/metrics never showed the run in progress");
    let run_started: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT started_at FROM sync_runs WHERE night = '2026-03-06'")
            .fetch_one(&pool)
            .await
            .unwrap();
    // The gauge is the daemon's own reading of the start, within the run.
    assert!((started_seen - run_started.timestamp() as f64).abs() < 60.0);

    // The loop records the run's metrics right after the row commits.
    let mut after = String::new();
    for _ in 0..100 {
        after = get(&metrics_url).await.1;
        if sample(
            &after,
            "student_sync_run_duration_seconds_count",
            &[("status", "succeeded")],
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(&after, "student_sync_last_run_failed", &[]),
        Some(0.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "student_sync_run_started_timestamp_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(sample(&after, "student_sync_held_run", &[]), Some(0.0));
    assert_eq!(sample(&after, "student_sync_active", &[]), Some(1.0));

    let served = served(&after);
    let mut used = BTreeSet::new();
    for rule in rules() {
        let names = metric_names(&rule.expr);
        assert!(!names.is_empty(), "{} reads no metric", rule.alert);
        used.extend(names);
    }
    for query in dashboard_queries() {
        let names = metric_names(&query);
        assert!(
            !names.is_empty(),
            "a dashboard query reads no metric: {query}"
        );
        used.extend(names);
    }
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !PROMETHEUS_OWN.contains(&n.as_str()) && !served.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "used but not served: {missing:?}\n{after}"
    );
    // The rules and the dashboard between them read the metrics that matter.
    for name in [
        "student_sync_last_success_timestamp_seconds",
        "student_sync_held_run",
        "student_sync_last_run_failed",
        "student_sync_runs_total",
        "student_sync_run_started_timestamp_seconds",
        "student_sync_run_duration_seconds_sum",
        "student_sync_run_duration_seconds_count",
        "student_sync_active",
        "up",
    ] {
        assert!(used.contains(name), "nothing reads {name}");
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("the daemon stops")
        .expect("cleanly");
}
