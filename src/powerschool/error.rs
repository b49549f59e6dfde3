//! The one error type the PowerSchool client returns. Each message is written
//! for whoever is on call: what failed, on which query and page, and what to
//! do next. No message ever carries the client secret or a token.

/// Describes the request within a query: a page, or the count/one-off call.
fn request(page: &Option<u32>) -> String {
    match page {
        Some(p) => format!("page {p}"),
        None => "(count or single request)".to_string(),
    }
}

fn status(status: &Option<u16>) -> String {
    match status {
        Some(s) => format!("HTTP {s}"),
        None => "no HTTP answer".to_string(),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PowerSchoolError {
    /// The HTTP client could not be built (TLS roots, bad settings).
    #[error("cannot prepare the HTTPS client for PowerSchool at {url}: {message}")]
    Setup { url: String, message: String },

    #[error(
        "PowerSchool at {url} refused the plugin credentials (HTTP {status} from /oauth/access_token): \
         check the student-sync plugin's client id and secret (powerschool.client_id and \
         STUDENT_SYNC_POWERSCHOOL_CLIENT_SECRET or powerschool.client_secret_file) and that the plugin \
         is enabled in System > System Settings > Plugin Management"
    )]
    BadCredentials { url: String, status: u16 },

    /// The token endpoint answered something other than a token or a 401.
    #[error(
        "PowerSchool at {url} did not issue an access token: {detail}; check powerschool.url points \
         at the district's PowerSchool server and that the student-sync plugin is enabled"
    )]
    TokenFailed { url: String, detail: String },

    #[error(
        "PowerQuery {query} is not installed on this PowerSchool server (HTTP 404): install or enable \
         the student-sync plugin (System > System Settings > Plugin Management), which provides it"
    )]
    QueryNotInstalled { query: String },

    #[error(
        "PowerSchool denied PowerQuery {query} (HTTP 403): the student-sync plugin's access request \
         does not grant a column this query reads; install the current plugin version and re-enable it \
         so the new access request is approved"
    )]
    AccessDenied { query: String },

    /// A token that was just issued was refused too.
    #[error(
        "PowerSchool refused a freshly issued token for {query} {} (HTTP 401 twice): the plugin may \
         have been disabled or its access revoked during the run; check it in Plugin Management",
        request(.page)
    )]
    Unauthorized { query: String, page: Option<u32> },

    #[error(
        "gave up on {query} {} after {attempts} attempts; last answer: {}, last error: {last_error}. \
         PowerSchool is down, overloaded or cutting answers off: check that powerschool.url is right and the server answers, then run the sync again",
        request(.page), status(.last_status)
    )]
    GaveUp {
        query: String,
        page: Option<u32>,
        attempts: u32,
        last_status: Option<u16>,
        last_error: String,
    },

    /// A status that retrying cannot fix (400, 405, …).
    #[error(
        "PowerSchool answered {query} {} with HTTP {status}: {detail}; check the query's arguments \
         and the plugin version",
        request(.page)
    )]
    Rejected {
        query: String,
        page: Option<u32>,
        status: u16,
        detail: String,
    },

    /// A 401 whose body names a permission the plugin lacks: a new token
    /// would be refused the same way.
    #[error(
        "PowerSchool refused {query} {} (HTTP 401): \"{message}\". The plugin's token is valid but \
         lacks this permission; install the current student-sync plugin and re-enable it in \
         System > System Settings > Plugin Management so its access request is approved",
        request(.page)
    )]
    PermissionMissing {
        query: String,
        page: Option<u32>,
        message: String,
    },

    /// The guardian records carry none of a required field's candidates.
    #[error(
        "the guardian records of {query} have no column for {missing}. The records carry: {keys}. \
         Add the column that holds the field to that setting (`table.column` for nested records, \
         e.g. \"pcas_emailcontact.emailaddress\"; in the environment a comma-separated list) and \
         run again; nothing was written"
    )]
    GuardianColumnsUnmatched {
        query: String,
        missing: String,
        keys: String,
    },

    /// An answer larger than `powerschool.max_page_bytes`; reading stopped there.
    #[error(
        "PowerSchool's answer to {query} {} is larger than powerschool.max_page_bytes ({limit} bytes), \
         so it was not read and the run stopped before writing anything. If the district's pages are \
         really this big, raise powerschool.max_page_bytes (STUDENT_SYNC_POWERSCHOOL_MAX_PAGE_BYTES) \
         or lower powerschool.page_size; otherwise check what answers at powerschool.url",
        request(.page)
    )]
    AnswerTooLarge {
        query: String,
        page: Option<u32>,
        limit: usize,
    },

    /// `/count` above `powerschool.max_count`: no page is asked.
    #[error(
        "PowerSchool's /count for {query} with {args} says {count} records, above \
         powerschool.max_count ({max}); no page was asked and nothing was written. A count this \
         large is a server fault; if the district really has this many, raise powerschool.max_count \
         (STUDENT_SYNC_POWERSCHOOL_MAX_COUNT)"
    )]
    CountTooLarge {
        query: String,
        args: String,
        count: u64,
        max: u64,
    },

    /// `/count` far above what the last successful run received.
    #[error(
        "PowerSchool's /count for {query} with {args} says {count} records, more than \
         powerschool.count_growth_factor ({factor}) times the {last} the last successful run \
         received; no page was asked and nothing was written. Check PowerSchool (a server fault \
         or a changed query); if the district really grew this much, run once with \
         STUDENT_SYNC_POWERSCHOOL_COUNT_GROWTH_FACTOR=0"
    )]
    CountFarAboveLastRun {
        query: String,
        args: String,
        count: u64,
        last: u64,
        factor: f64,
    },

    /// Pages past the count kept bringing new records beyond `max_count`.
    #[error(
        "PowerSchool kept sending new records of {query} with {args} past its /count: {received} \
         so far, above powerschool.max_count ({max}); paging stopped and nothing was written. \
         Check PowerSchool's health and the plugin; if the district really has this many, raise \
         powerschool.max_count (STUDENT_SYNC_POWERSCHOOL_MAX_COUNT)"
    )]
    TooManyRecords {
        query: String,
        args: String,
        received: u64,
        max: u64,
    },

    /// A page came back empty although `/count` promised more records.
    #[error(
        "PowerSchool's page {page} of {query} with {args} came back empty after {received} of the \
         {expected} records its /count promised; paging stopped and nothing was written. The server \
         answered only part of the query: check PowerSchool's health and the plugin, then run again"
    )]
    EmptyPageBeforeEnd {
        query: String,
        args: String,
        page: u32,
        received: u64,
        expected: u64,
    },

    /// Fewer distinct records than `/count` said, beyond the tolerance.
    #[error(
        "PowerSchool sent {received} distinct records of {query} with {args} but its /count said \
         {expected} (tolerated: {tolerated} fewer, powerschool.count_tolerance_percent and \
         powerschool.count_tolerance_records); a partial answer is never used, nothing was written. \
         Run again; if it keeps happening, check PowerSchool's health and the plugin"
    )]
    FewerThanCounted {
        query: String,
        args: String,
        received: u64,
        expected: u64,
        tolerated: u64,
    },

    /// A 200 whose JSON is complete but not shaped as the spec says.
    #[error(
        "PowerSchool's answer to {query} {} is not in the expected shape: {detail}; the server or \
         plugin version may not match what student-sync expects",
        request(.page)
    )]
    BadResponse {
        query: String,
        page: Option<u32>,
        detail: String,
    },
}

impl PowerSchoolError {
    /// The query (or endpoint) the error is about, when there is one.
    pub fn query(&self) -> Option<&str> {
        match self {
            PowerSchoolError::QueryNotInstalled { query }
            | PowerSchoolError::AccessDenied { query }
            | PowerSchoolError::Unauthorized { query, .. }
            | PowerSchoolError::GaveUp { query, .. }
            | PowerSchoolError::Rejected { query, .. }
            | PowerSchoolError::BadResponse { query, .. }
            | PowerSchoolError::AnswerTooLarge { query, .. }
            | PowerSchoolError::CountTooLarge { query, .. }
            | PowerSchoolError::CountFarAboveLastRun { query, .. }
            | PowerSchoolError::TooManyRecords { query, .. }
            | PowerSchoolError::EmptyPageBeforeEnd { query, .. }
            | PowerSchoolError::FewerThanCounted { query, .. }
            | PowerSchoolError::PermissionMissing { query, .. }
            | PowerSchoolError::GuardianColumnsUnmatched { query, .. } => Some(query),
            _ => None,
        }
    }
}
