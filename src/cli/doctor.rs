//! `doctor`: the preflight a district runs before its first night. Against
//! the configured PowerSchool, writing nothing and needing no database: the
//! token, each query (installed, its count, its first record's columns), the
//! district's fields (`[powerschool.fields]`), the guardian query's access
//! list against the plugin's access request, and the server's page-size cap.
//! One line per check, `ok` or `FAILED` with the fix.

use super::output::print_answer;
use super::CliError;
use crate::config::{GuardianColumns, Settings};
use crate::powerschool::columns::{record_keys, resolve_guardian_columns};
use crate::powerschool::parse;
use crate::powerschool::plugin::{Plugin, SCHOOLS_QUERY};
use crate::powerschool::probe::{access_list_fields, ProbeAnswer};
use crate::powerschool::{
    PowerSchoolClient, CONTACTS_QUERY, GUARDIANS_QUERY, INDEPENDENT_QUERY, STUDENTS_QUERY,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

fn failed(check: impl Into<String>, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        check: check.into(),
        ok: false,
        detail: detail.into(),
        fix,
    }
}

#[derive(Debug, Serialize)]
struct Report {
    powerschool: String,
    passed: bool,
    checks: Vec<Check>,
}

/// The columns a query's records cannot do without (docs/powerschool.md).
fn required_columns(query: &str) -> &'static [&'static str] {
    match query {
        SCHOOLS_QUERY => &["school_number"],
        STUDENTS_QUERY => &["dcid", "enroll_status"],
        INDEPENDENT_QUERY => &["dcid"],
        CONTACTS_QUERY => &["studentsdcid", "personid"],
        _ => &[],
    }
}

pub(super) async fn doctor(settings: &Settings, json: bool) -> Result<(), CliError> {
    let client = PowerSchoolClient::new(&settings.powerschool)?;
    let plugin = Plugin::for_fields(&settings.powerschool.fields);
    let mut checks = Vec::new();
    match client.probe_token().await {
        Ok(lifetime) => checks.push(ok(
            "token",
            format!(
                "issued; it lasts {} s ({})",
                lifetime.as_secs(),
                readable(lifetime.as_secs())
            ),
        )),
        Err(e) => checks.push(failed("token", e.to_string(), None)),
    }
    if checks.iter().all(|c| c.ok) {
        queries(
            &client,
            &plugin,
            &settings.powerschool.guardian_columns,
            &mut checks,
        )
        .await;
        fields(&client, settings, &mut checks).await;
        checks.push(access_list(&client, &plugin).await);
        checks.push(page_cap(&client, settings.powerschool.page_size).await);
    }
    let report = Report {
        powerschool: settings.powerschool.url.to_string(),
        passed: checks.iter().all(|c| c.ok),
        checks,
    };
    print_answer(json, &report, text)?;
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        return Err(CliError::ChecksFailed {
            failed,
            total: report.checks.len(),
        });
    }
    Ok(())
}

fn readable(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{:.1} days", s as f64 / 86_400.0),
        s if s >= 3600 => format!("{:.1} hours", s as f64 / 3600.0),
        s => format!("{:.1} minutes", s as f64 / 60.0),
    }
}

fn text(report: &Report) -> String {
    let mut out = format!(
        "student-sync doctor: PowerSchool at {}\n",
        report.powerschool
    );
    for c in &report.checks {
        let mark = if c.ok { "ok    " } else { "FAILED" };
        out.push_str(&format!("{mark}  {}: {}\n", c.check, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("        fix: {fix}\n"));
        }
    }
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    out.push_str(&match failed {
        0 => format!("All {} checks passed.\n", report.checks.len()),
        n => format!("{n} of {} checks FAILED.\n", report.checks.len()),
    });
    out
}

/// Each query: installed (its first page), its `/count`, and the columns of
/// its first record. The per-school queries are asked for the first school.
async fn queries(
    client: &PowerSchoolClient,
    plugin: &Plugin,
    columns_setting: &GuardianColumns,
    checks: &mut Vec<Check>,
) {
    let schools = query(client, plugin, SCHOOLS_QUERY, json!({}), checks).await;
    let school = schools
        .and_then(|r| r.get("school_number").cloned())
        .and_then(|v| match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "-1".to_string());
    let guardian = query(client, plugin, GUARDIANS_QUERY, json!({}), checks).await;
    checks.push(match &guardian {
        Some(record) => ok(
            format!("query {GUARDIANS_QUERY}: first record"),
            format!("keys {}", record_keys(record).join(", ")),
        ),
        None => ok(
            format!("query {GUARDIANS_QUERY}: first record"),
            "no record to read (or the query failed above)",
        ),
    });
    if let Some(record) = &guardian {
        checks.extend(guardian_columns(columns_setting, record));
    }
    query(client, plugin, INDEPENDENT_QUERY, json!({}), checks).await;
    let per_school = json!({ "school_number": school });
    query(client, plugin, STUDENTS_QUERY, per_school.clone(), checks).await;
    query(client, plugin, CONTACTS_QUERY, per_school, checks).await;
}

/// The guardian query's column candidates against the first record's keys.
///
/// Each field is read as the nightly run reads it (`[powerschool.guardian_columns]`):
/// which candidate matched; a required field that matches none fails, naming
/// the keys that arrived and the setting to change.
fn guardian_columns(columns: &GuardianColumns, record: &Value) -> Vec<Check> {
    let keys = record_keys(record).join(", ");
    resolve_guardian_columns(columns, record)
        .into_iter()
        .map(|r| {
            let check = format!("guardian field {}", r.field);
            match (&r.matched, r.required) {
                (Some(column), _) => ok(check, format!("read from {column}")),
                (None, false) => ok(
                    check,
                    format!(
                        "none of the candidates of {} arrived; read as empty",
                        r.setting
                    ),
                ),
                (None, true) => failed(
                    check,
                    format!(
                        "none of the candidates of {} arrived; the record has: {keys}",
                        r.setting
                    ),
                    Some(format!(
                        "add the column that holds it (as table.column from the keys above) to {}",
                        r.setting
                    )),
                ),
            }
        })
        .collect()
}

/// One query's installed, count and columns checks; its first record.
async fn query(
    client: &PowerSchoolClient,
    plugin: &Plugin,
    name: &str,
    args: Value,
    checks: &mut Vec<Check>,
) -> Option<Value> {
    let check = format!("query {name}");
    let first = match client.probe_first_page(name, &args, 1).await {
        Ok(page) => {
            checks.push(ok(&check, "installed and readable"));
            page.records.into_iter().next()
        }
        Err(e) => {
            checks.push(failed(&check, e.to_string(), None));
            return None;
        }
    };
    checks.push(match client.probe_count(name, &args).await {
        Ok(n) => ok(
            format!("{check}: /count"),
            format!("{n} records for {args}"),
        ),
        Err(e) => failed(format!("{check}: /count"), e.to_string(), None),
    });
    if let Some(q) = plugin.queries.iter().find(|q| q.name == name) {
        let expected: Vec<&str> = q.columns.iter().map(|c| c.name.as_str()).collect();
        checks.push(columns(
            &check,
            first.as_ref(),
            &expected,
            required_columns(name),
        ));
    }
    first
}

fn columns(check: &str, first: Option<&Value>, expected: &[&str], required: &[&str]) -> Check {
    let check = format!("{check}: columns");
    let Some(record) = first else {
        return ok(check, "no record to check");
    };
    let keys: BTreeSet<String> = record_keys(record).into_iter().collect();
    // As the client reads it: keys in lower case, NULL ("" or absent) dropped.
    let columns = parse::record_columns(record).unwrap_or_default();
    let filled = |c: &&str| columns.contains_key(*c);
    let missing: Vec<&str> = required.iter().copied().filter(|c| !filled(c)).collect();
    if !missing.is_empty() {
        return failed(
            check,
            format!(
                "the first record lacks {}; it has {}",
                missing.join(", "),
                keys.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            Some(
                "install the plugin built by this version (`student-sync plugin build`) over the \
                 old one"
                    .into(),
            ),
        );
    }
    let absent: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|c| !columns.contains_key(*c))
        .collect();
    match absent.is_empty() {
        true => ok(check, format!("all of {}", expected.join(", "))),
        false => ok(
            check,
            format!(
                "the required ones; empty in the first record: {}",
                absent.join(", ")
            ),
        ),
    }
}

/// Each `[powerschool.fields]` column, probed without reading a row.
async fn fields(client: &PowerSchoolClient, settings: &Settings, checks: &mut Vec<Check>) {
    for (key, column) in settings.powerschool.fields.named() {
        let check = format!("field {column} ({key})");
        let answer = client.probe_column(&column.table, &column.column).await;
        checks.push(match answer {
            Ok(ProbeAnswer::Answered(_)) => ok(check, "exists and the plugin may read it"),
            Ok(ProbeAnswer::Refused {
                status: 400,
                detail,
            }) => failed(
                check,
                format!("the column does not exist on this server ({detail})"),
                Some(format!(
                    "set {key} to your district's name for this column, then build the plugin \
                     (`student-sync plugin build`), install it and approve its access request"
                )),
            ),
            Ok(ProbeAnswer::Refused {
                status: 403,
                detail,
            }) => failed(
                check,
                format!("the column exists but the plugin is not granted it ({detail})"),
                Some(
                    "build the plugin from these settings (`student-sync plugin build`), install \
                     it over the old one, approve its access request and enable it"
                        .into(),
                ),
            ),
            Ok(ProbeAnswer::Refused { status: 404, .. }) => ok(
                check,
                "not checked: the server answered 404 to the table probe (the query checks \
                 above still stand)",
            ),
            Ok(ProbeAnswer::Refused { detail, .. }) => failed(check, detail, None),
            Err(e) => failed(check, e.to_string(), None),
        });
    }
}

/// The guardian query's access list (where the server offers it) against
/// the plugin's access request.
async fn access_list(client: &PowerSchoolClient, plugin: &Plugin) -> Check {
    let check = format!("access list of {GUARDIANS_QUERY}");
    let answer = match client.probe_access_list(GUARDIANS_QUERY).await {
        Ok(ProbeAnswer::Answered(answer)) => answer,
        Ok(ProbeAnswer::Refused { status: 404, .. }) => {
            return ok(
                check,
                "skipped: this server does not offer /ws/powerqueryaccesslist (HTTP 404)",
            )
        }
        Ok(ProbeAnswer::Refused { detail, .. }) => return failed(check, detail, None),
        Err(e) => return failed(check, e.to_string(), None),
    };
    let requested: BTreeSet<(String, String)> = plugin
        .access_request()
        .into_iter()
        .map(|c| (c.table, c.column))
        .collect();
    let needed = access_list_fields(&answer);
    let missing: Vec<String> = needed
        .iter()
        .filter(|f| !requested.contains(*f))
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    if missing.is_empty() {
        return ok(
            check,
            format!(
                "the plugin's access request grants all {} fields it needs",
                needed.len()
            ),
        );
    }
    failed(
        check,
        format!("the plugin's access request lacks {}", missing.join(", ")),
        Some(
            "the guardian query may answer 403 without them: report this list to whoever \
             maintains student-sync, so the plugin requests them"
                .into(),
        ),
    )
}

/// The server's page-size cap: the guardian query's first page asked with
/// more records than `powerschool.page_size`.
async fn page_cap(client: &PowerSchoolClient, page_size: u32) -> Check {
    let check = "page-size cap";
    let asked = page_size
        .saturating_mul(10)
        .clamp(10_000, 100_000)
        .max(page_size.saturating_add(1));
    let args = json!({});
    let count = match client.probe_count(GUARDIANS_QUERY, &args).await {
        Ok(n) => n,
        Err(e) => return failed(check, e.to_string(), None),
    };
    let got = match client.probe_first_page(GUARDIANS_QUERY, &args, asked).await {
        Ok(page) => page.records.len() as u64,
        Err(e) => return failed(check, e.to_string(), None),
    };
    let wanted = count.min(u64::from(asked));
    if got >= wanted {
        return ok(
            check,
            format!("none seen: asked {asked} records of {GUARDIANS_QUERY}, got {got} of {count}"),
        );
    }
    let note = if got < u64::from(page_size) {
        format!(
            "; powerschool.page_size ({page_size}) is above it: set it to {got} to match the server"
        )
    } else {
        format!("; powerschool.page_size ({page_size}) is within it")
    };
    ok(
        check,
        format!("the server serves at most {got} records a page (asked {asked}){note}"),
    )
}
