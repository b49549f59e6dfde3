//! The fake's schema probes, answered as docs/powerschool.md ("What real
//! servers were seen to answer") describes, in front of the other routes:
//!
//! - `GET /ws/schema/table/{table}/count?q={column}==x`: `400 Invalid field`
//!   for a column not in the fake's schema (the district columns the default
//!   `[powerschool.fields]` name and the guardian query's columns, minus
//!   `Faults::missing_columns`), `403` for one in `Faults::ungranted_columns`,
//!   else `200 {"count": 0}`;
//! - `GET /ws/powerqueryaccesslist/{query}`: the guardian query's fields,
//!   with `Faults::access_list_extra` (404 for any other query).

use super::data::GUARDIANS;
use super::server::Shared;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;

/// The district columns the default settings name (`[powerschool.fields]`).
const DISTRICT_COLUMNS: &[&str] = &[
    "S_AB_STU_X.ENRLYTYPE1",
    "S_AB_STU_X.ENRLYTYPE2",
    "S_AB_STU_X.ENRLYTYPE3",
    "U_STUDENTCONTACTDETAIL.ISDECISIONMAKING",
    "U_STUDENT.ORGEMAIL",
    "U_STUDENT.PERSONALEMAIL",
];

/// What the fake says the guardian query needs in a plugin's access request:
/// its tables' columns and join keys.
const GUARDIAN_ACCESS: &[&str] = &[
    "GUARDIAN.GUARDIANID",
    "GUARDIAN.ACCOUNTIDENTIFIER",
    "GUARDIAN.EMAIL",
    "GUARDIAN.FIRSTNAME",
    "GUARDIAN.LASTNAME",
    "GUARDIANSTUDENT.GUARDIANSTUDENTID",
    "GUARDIANSTUDENT.GUARDIANID",
    "GUARDIANSTUDENT.STUDENTSDCID",
    "GUARDIANSTUDENT.ACCOUNTTYPE",
    "PCAS_ACCOUNT.PCAS_ACCOUNTID",
    "PCAS_ACCOUNT.PCAS_ACCOUNTTOKEN",
    "PCAS_EMAILCONTACT.PCAS_EMAILCONTACTID",
    "PCAS_EMAILCONTACT.PCAS_ACCOUNTID",
    "PCAS_EMAILCONTACT.EMAILADDRESS",
    "STUDENTS.DCID",
];

fn listed(list: &[String], name: &str) -> bool {
    list.iter().any(|l| l.eq_ignore_ascii_case(name))
}

/// The middleware: answers the routes above, passes everything else on.
pub(super) async fn answer(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = request.method() == Method::GET;
    match segments.as_slice() {
        ["ws", "schema", "table", table, "count"] if get => {
            if let Some(refused) = s.check_bearer(request.headers()) {
                return refused;
            }
            let params = query_params(request.uri().query());
            table_count(&s, table, params.get("q").map(String::as_str))
        }
        ["ws", "powerqueryaccesslist", query] if get => {
            if let Some(refused) = s.check_bearer(request.headers()) {
                return refused;
            }
            access_list(query, &s.faults.access_list_extra)
        }
        _ => next.run(request).await,
    }
}

fn query_params(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn message(status: StatusCode, text: String) -> Response {
    (status, axum::Json(serde_json::json!({ "message": text }))).into_response()
}

fn table_count(s: &Shared, table: &str, q: Option<&str>) -> Response {
    let Some((column, _value)) = q.and_then(|q| q.split_once("==")) else {
        return message(
            StatusCode::BAD_REQUEST,
            "q must be column==value".to_string(),
        );
    };
    let name = format!("{table}.{column}").to_ascii_uppercase();
    let in_schema = DISTRICT_COLUMNS
        .iter()
        .chain(GUARDIAN_ACCESS)
        .any(|c| *c == name)
        && !listed(&s.faults.missing_columns, &name);
    if !in_schema {
        return message(StatusCode::BAD_REQUEST, format!("Invalid field {column}"));
    }
    if listed(&s.faults.ungranted_columns, &name) {
        return message(
            StatusCode::FORBIDDEN,
            format!(
                "NoAccess, field {}, resource {}",
                column.to_ascii_uppercase(),
                table.to_ascii_uppercase()
            ),
        );
    }
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "count": 0 })),
    )
        .into_response()
}

fn access_list(query: &str, extra: &[String]) -> Response {
    if query != GUARDIANS {
        return message(StatusCode::NOT_FOUND, format!("Query {query} not found"));
    }
    let fields: Vec<serde_json::Value> = GUARDIAN_ACCESS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .filter_map(|c| c.split_once('.'))
        .map(|(t, f)| serde_json::json!({"table": t, "field": f, "access": "ViewOnly"}))
        .collect();
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "name": query, "fields": fields })),
    )
        .into_response()
}
