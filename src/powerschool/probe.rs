//! The preflight's requests (`student-sync doctor`): single read-only calls
//! that tell what a district's server offers before a run depends on it. They
//! go through the client's one request path (token, 401 renewal, retries);
//! where a status is the answer itself (400, 403, 404 on a schema probe) it is
//! handed back as a `ProbeAnswer` instead of an error.

use super::client::PowerSchoolClient;
use super::error::PowerSchoolError;
use super::parse;
use super::request::Body;
use super::stats::{Ctx, Progress};
use serde_json::Value;
use std::time::Duration;

/// What a schema probe was answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeAnswer {
    /// 200 and its JSON.
    Answered(Value),
    /// A refusal that is the answer: its status and the start of its body.
    Refused { status: u16, detail: String },
}

/// The first page of a query, as asked with a given page size.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstPage {
    pub records: Vec<Value>,
}

impl PowerSchoolClient {
    /// Gets a token now; its lifetime as the server gave it.
    pub async fn probe_token(&self) -> Result<Duration, PowerSchoolError> {
        let progress = Progress::new("token");
        let ctx = Ctx::new("doctor", false, &progress);
        let transport = &self.inner.transport;
        let token = transport
            .tokens
            .current(None, &ctx, &transport.counters)
            .await?;
        Ok(token.lifetime)
    }

    /// `POST /ws/schema/query/{query}/count` with `args`.
    pub async fn probe_count(&self, query: &str, args: &Value) -> Result<u64, PowerSchoolError> {
        let progress = Progress::new(query);
        let ctx = Ctx::new(query, true, &progress);
        let transport = &self.inner.transport;
        let url = transport.url(&["ws", "schema", "query", query, "count"]);
        let body = transport.call(&ctx, None, &url, Body::Json(args)).await?;
        parse::count_of(&body).map_err(|detail| PowerSchoolError::BadResponse {
            query: query.to_string(),
            page: None,
            detail,
        })
    }

    /// Page 1 of `query` with `args`, asked `page_size` records at a time.
    pub async fn probe_first_page(
        &self,
        query: &str,
        args: &Value,
        page_size: u32,
    ) -> Result<FirstPage, PowerSchoolError> {
        let progress = Progress::new(query);
        let ctx = Ctx::new(query, true, &progress);
        let transport = &self.inner.transport;
        let mut url = transport.url(&["ws", "schema", "query", query]);
        url.query_pairs_mut()
            .append_pair("page", "1")
            .append_pair("pagesize", &page_size.to_string());
        let body = transport
            .call(&ctx, Some(1), &url, Body::Json(args))
            .await?;
        let records =
            parse::into_page_records(body).map_err(|detail| PowerSchoolError::BadResponse {
                query: query.to_string(),
                page: Some(1),
                detail,
            })?;
        Ok(FirstPage { records })
    }

    /// `GET /ws/schema/table/{table}/count?q={column}==x`: 400 Invalid field
    /// when the column does not exist, 403 when the plugin is not granted
    /// it, 200 when it can be read. No row is read.
    pub async fn probe_column(
        &self,
        table: &str,
        column: &str,
    ) -> Result<ProbeAnswer, PowerSchoolError> {
        let transport = &self.inner.transport;
        let mut url = transport.url(&["ws", "schema", "table", table, "count"]);
        url.query_pairs_mut()
            .append_pair("q", &format!("{column}==x"));
        self.probe_get(&format!("/ws/schema/table/{table}/count"), url)
            .await
    }

    /// `GET /ws/powerqueryaccesslist/{query}`: the fields the query needs in
    /// the plugin's access request (not every server offers it).
    pub async fn probe_access_list(&self, query: &str) -> Result<ProbeAnswer, PowerSchoolError> {
        let transport = &self.inner.transport;
        let url = transport.url(&["ws", "powerqueryaccesslist", query]);
        self.probe_get(&format!("/ws/powerqueryaccesslist/{query}"), url)
            .await
    }

    async fn probe_get(&self, name: &str, url: url::Url) -> Result<ProbeAnswer, PowerSchoolError> {
        let progress = Progress::new(name);
        let ctx = Ctx::new(name, false, &progress);
        match self.inner.transport.call(&ctx, None, &url, Body::Get).await {
            Ok(value) => Ok(ProbeAnswer::Answered(value)),
            Err(PowerSchoolError::Rejected { status, detail, .. }) => {
                Ok(ProbeAnswer::Refused { status, detail })
            }
            Err(other) => Err(other),
        }
    }
}

/// The `TABLE.FIELD` pairs in an access-list answer, whatever its shape:
/// objects with `table` and `field` (or `column`) members, or
/// `"TABLE.FIELD"` strings, anywhere in the JSON. Upper case.
pub fn access_list_fields(answer: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    collect_fields(answer, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect_fields(value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            let member = |names: &[&str]| {
                object.iter().find_map(|(k, v)| {
                    names
                        .iter()
                        .any(|n| k.eq_ignore_ascii_case(n))
                        .then(|| v.as_str())
                        .flatten()
                })
            };
            if let (Some(t), Some(f)) = (member(&["table"]), member(&["field", "column"])) {
                out.push((t.to_ascii_uppercase(), f.to_ascii_uppercase()));
                return;
            }
            object.values().for_each(|v| collect_fields(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_fields(v, out)),
        Value::String(text) => {
            if let Some((t, f)) = text.split_once('.') {
                if crate::config::is_identifier(t) && crate::config::is_identifier(f) {
                    out.push((t.to_ascii_uppercase(), f.to_ascii_uppercase()));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_lists_are_read_in_any_shape() {
        let answer = json!({"name": "q", "fields": [
            {"table": "guardian", "field": "GuardianID", "access": "ViewOnly"},
            {"Table": "PCAS_ACCOUNT", "Column": "PCAS_ACCOUNTID"}],
            "more": ["STUDENTS.DCID", "not a field", "guardian.guardianid"]});
        assert_eq!(
            access_list_fields(&answer),
            vec![
                ("GUARDIAN".to_string(), "GUARDIANID".to_string()),
                ("PCAS_ACCOUNT".to_string(), "PCAS_ACCOUNTID".to_string()),
                ("STUDENTS".to_string(), "DCID".to_string()),
            ]
        );
    }
}
