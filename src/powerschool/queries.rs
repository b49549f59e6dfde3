//! The typed queries the sync asks PowerSchool: guardians, each school's
//! students and contacts, independent students, the schools list, any
//! PowerQuery as raw columns, and the whole district at once. Each names its
//! query, pages it (`paging`), parses every record (`parse`) and turns the
//! records that do not parse into problems instead of failures.

use super::client::PowerSchoolClient;
use super::error::PowerSchoolError;
use super::page::Failure;
use super::paging::{Fetched, KeyColumns, PageRead, Pager};
use super::parse::{self, Columns};
use super::readers::{
    Raw, Typed, CONTACT_FIELDS, INDEPENDENT_FIELDS, SCHOOL_FIELDS, STUDENT_FIELDS,
};
use super::records::{
    DistrictSnapshot, GuardianLink, IndependentStudent, RecordProblem, School, Student,
    StudentContact,
};
use super::stats::{Ctx, Progress};
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::time::Instant;
use tracing::{info, warn};

pub const GUARDIANS_QUERY: &str = "com.pearson.core.guardian.student_guardian_detail";
pub const STUDENTS_QUERY: &str = "org.studentsync.sync.students.enrolled";
pub const INDEPENDENT_QUERY: &str = "org.studentsync.sync.students.independent";
pub const CONTACTS_QUERY: &str = "org.studentsync.sync.students.contacts";
/// The district's schools (`school_number`, `name`), from the plugin: no
/// `/ws/v1` call, which servers since 25.2 refuse to most plugins.
pub const SCHOOLS_QUERY: &str = "org.studentsync.sync.schools.list";

/// Only the first problems of a query are logged one by one; a district with
/// thousands of bad rows gets a count instead of a flood.
const PROBLEMS_LOGGED: usize = 20;

/// The columns that make a record distinct, per known query. A second record
/// with the same key (paging over data that moved) is dropped.
pub(super) fn key_columns(query: &str) -> KeyColumns {
    match query {
        GUARDIANS_QUERY => Some(&["guardianid", "studentsdcid"]),
        STUDENTS_QUERY | INDEPENDENT_QUERY => Some(&["dcid"]),
        CONTACTS_QUERY => Some(&["studentsdcid", "personid"]),
        SCHOOLS_QUERY => Some(&["school_number"]),
        _ => None,
    }
}

/// The raw result of one PowerQuery: every distinct record's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawQueryResult {
    pub query: String,
    pub records: Vec<Columns>,
    /// What `/count` said before paging.
    pub expected_count: u64,
    /// Records dropped because an earlier page already had their key.
    pub duplicates_dropped: u64,
    pub pages: u32,
    pub retries: u64,
}

/// The typed result of one query: the records that parsed and the problems
/// of those that did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult<T> {
    pub query: String,
    pub records: Vec<T>,
    pub problems: Vec<RecordProblem>,
    /// What `/count` said.
    pub expected_count: Option<u64>,
    pub duplicates_dropped: u64,
    pub retries: u64,
}

impl PowerSchoolClient {
    /// Every (Parent Portal account, student) link with Data Access enabled.
    pub async fn guardians(&self) -> Result<QueryResult<GuardianLink>, PowerSchoolError> {
        self.guardians_where(json!({})).await
    }

    /// The guardian query with narrowing arguments, e.g. `{"students_dcid": "5001"}`.
    pub async fn guardians_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<GuardianLink>, PowerSchoolError> {
        let progress = Progress::new(GUARDIANS_QUERY);
        self.typed(GUARDIANS_QUERY, args, &progress, self.guardian_reader())
            .await
    }

    /// One school's students with `enroll_status <= 0`.
    pub async fn students(
        &self,
        school_number: i64,
    ) -> Result<QueryResult<Student>, PowerSchoolError> {
        self.students_where(school_args(school_number)).await
    }

    /// The students query with any arguments; a `school_number` among them is
    /// the school assumed for records that lack `schoolid`.
    pub async fn students_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<Student>, PowerSchoolError> {
        let progress = Progress::new(STUDENTS_QUERY);
        self.students_with(args, &progress).await
    }

    pub async fn independent_students(
        &self,
    ) -> Result<QueryResult<IndependentStudent>, PowerSchoolError> {
        self.independent_students_where(json!({})).await
    }

    pub async fn independent_students_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<IndependentStudent>, PowerSchoolError> {
        let progress = Progress::new(INDEPENDENT_QUERY);
        self.typed(INDEPENDENT_QUERY, args, &progress, independent_reader())
            .await
    }

    /// One school's (student, contact person) rows.
    pub async fn contacts(
        &self,
        school_number: i64,
    ) -> Result<QueryResult<StudentContact>, PowerSchoolError> {
        self.contacts_where(school_args(school_number)).await
    }

    pub async fn contacts_where(
        &self,
        args: Value,
    ) -> Result<QueryResult<StudentContact>, PowerSchoolError> {
        let progress = Progress::new(CONTACTS_QUERY);
        self.typed(CONTACTS_QUERY, args, &progress, contact_reader())
            .await
    }

    /// The district's schools, by school number. A record without a
    /// readable `school_number` is a problem, not a failure.
    pub async fn schools(&self) -> Result<QueryResult<School>, PowerSchoolError> {
        self.schools_with(&Progress::new(SCHOOLS_QUERY)).await
    }

    async fn schools_with(
        &self,
        progress: &Progress,
    ) -> Result<QueryResult<School>, PowerSchoolError> {
        let mut result = self
            .typed(SCHOOLS_QUERY, json!({}), progress, school_reader())
            .await?;
        result.records.sort_by_key(|s| s.school_number);
        Ok(result)
    }

    /// Any PowerQuery by name with any arguments, paged and de-duplicated
    /// like the typed ones, as raw columns. For spot syncs that narrow a
    /// query (`{"students_dcid": "5001"}`) and for queries without a type here.
    pub async fn run_query(
        &self,
        name: &str,
        args: Value,
    ) -> Result<RawQueryResult, PowerSchoolError> {
        let progress = Progress::new(name);
        let ctx = Ctx::new(name, true, &progress);
        let guardian = (name == GUARDIANS_QUERY).then_some(&self.inner.guardian_columns);
        let raw = self
            .fetch_with(&ctx, args, &Raw::new(guardian, key_columns(name)))
            .await?;
        for failure in &raw.failures {
            warn!(
                query = name,
                page = failure.page,
                record = failure.index + 1,
                message = %failure.error.message,
                "PowerSchool record skipped"
            );
        }
        Ok(RawQueryResult {
            query: name.to_string(),
            records: raw.records,
            expected_count: raw.expected_count,
            duplicates_dropped: raw.duplicates,
            pages: raw.pages,
            retries: ctx.retries(),
        })
    }

    /// Everything the nightly sync needs: the guardians, the independent
    /// students and the schools list at once, then each school's students
    /// and contacts (`schools_records`) beside the guardians' pages. The
    /// first error ends the fetch; a half-fetched district must never look
    /// like a complete one. Results are sorted by key so two fetches of the
    /// same data are equal.
    pub async fn fetch_district(&self) -> Result<DistrictSnapshot, PowerSchoolError> {
        let started = Instant::now();
        let progress = Progress::new("district").observed_by(self.observer.clone());
        info!(url = %self.inner.transport.base, "PowerSchool fetch started");
        // On a distant server each page costs a round trip: nothing waits
        // for another query's answer unless it needs it (only the schools'
        // queries need the schools list). The client's one bound on
        // requests in flight keeps the server's load in check.
        let guardians = self.typed(
            GUARDIANS_QUERY,
            json!({}),
            &progress,
            self.guardian_reader(),
        );
        let independent = self.typed(
            INDEPENDENT_QUERY,
            json!({}),
            &progress,
            independent_reader(),
        );
        let per_school = async {
            let schools = self.schools_with(&progress).await?;
            let numbers: Vec<i64> = schools.records.iter().map(|s| s.school_number).collect();
            let snapshot = self.schools_records(numbers, &progress).await?;
            Ok::<_, PowerSchoolError>((schools, snapshot))
        };
        let (guardians, independent, (schools, mut snapshot)) =
            futures::try_join!(guardians, independent, per_school)?;
        snapshot.retries += schools.retries + guardians.retries + independent.retries;
        snapshot.problems.extend(schools.problems);
        snapshot.problems.extend(guardians.problems);
        snapshot.problems.extend(independent.problems);
        snapshot.schools = schools.records;
        snapshot.guardians = guardians.records;
        snapshot.independent_students = independent.records;

        let dropped = snapshot.sort_and_dedup();
        if dropped > 0 {
            warn!(
                dropped,
                "students came back from more than one school (moved during the fetch?); kept the lowest school number"
            );
        }

        info!(
            schools = snapshot.schools.len(),
            guardians = snapshot.guardians.len(),
            students = snapshot.students.len(),
            independent_students = snapshot.independent_students.len(),
            contacts = snapshot.contacts.len(),
            problems = snapshot.problems.len(),
            retries = snapshot.retries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PowerSchool fetch finished"
        );
        Ok(snapshot)
    }

    /// Each school's students and contacts, with as many schools under way
    /// as the client may have requests in flight (their requests wait for
    /// a place there, so the server never sees more). Each school's records join the
    /// result as soon as they arrive, so no school's list outlives its query.
    async fn schools_records(
        &self,
        numbers: Vec<i64>,
        progress: &Progress,
    ) -> Result<DistrictSnapshot, PowerSchoolError> {
        stream::iter(numbers)
            .map(|number| async move {
                let students = self.students_with(school_args(number), progress);
                let contacts = self.typed(
                    CONTACTS_QUERY,
                    school_args(number),
                    progress,
                    contact_reader(),
                );
                futures::try_join!(students, contacts)
            })
            .buffer_unordered(self.inner.schools_under_way)
            // Boxing erases the closure types; without it the future of a
            // whole run is not provably Send and cannot be spawned.
            .boxed()
            .try_fold(
                DistrictSnapshot::default(),
                |mut snapshot, (students, contacts)| async move {
                    snapshot.retries += students.retries + contacts.retries;
                    snapshot.students.extend(students.records);
                    snapshot.contacts.extend(contacts.records);
                    snapshot.problems.extend(students.problems);
                    snapshot.problems.extend(contacts.problems);
                    Ok(snapshot)
                },
            )
            .await
    }

    // ---- typed layer ----

    async fn students_with(
        &self,
        args: Value,
        progress: &Progress,
    ) -> Result<QueryResult<Student>, PowerSchoolError> {
        let school = args.get("school_number").and_then(|v| match v {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        });
        let reader = Typed::as_sent(STUDENT_FIELDS, key_columns(STUDENTS_QUERY), move |c| {
            parse::student(c, school)
        });
        self.typed(STUDENTS_QUERY, args, progress, reader).await
    }

    fn guardian_reader(&self) -> Typed<GuardianLink> {
        Typed::guardian(&self.inner.guardian_columns, key_columns(GUARDIANS_QUERY))
    }

    async fn typed<T: Send + 'static>(
        &self,
        query: &str,
        args: Value,
        progress: &Progress,
        reader: Typed<T>,
    ) -> Result<QueryResult<T>, PowerSchoolError> {
        let started = Instant::now();
        let ctx = Ctx::new(query, true, progress);
        let school = args.get("school_number").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let raw = self.fetch_with(&ctx, args, &reader).await?;
        let problems = raw
            .failures
            .into_iter()
            .map(|f| problem(query, f))
            .collect();
        let result = QueryResult {
            query: query.to_string(),
            records: raw.records,
            problems,
            expected_count: Some(raw.expected_count),
            duplicates_dropped: raw.duplicates,
            retries: ctx.retries(),
        };
        log_problems(&result.problems);
        info!(
            query,
            school = school.as_deref().unwrap_or("-"),
            records = result.records.len(),
            problems = result.problems.len(),
            duplicates = result.duplicates_dropped,
            expected = raw.expected_count,
            pages = raw.pages,
            retries = result.retries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PowerQuery fetched"
        );
        Ok(result)
    }

    /// Pages through the query of `ctx`, de-duplicated by its key columns,
    /// each page read by `reader`.
    async fn fetch_with<R: PageRead>(
        &self,
        ctx: &Ctx<'_>,
        args: Value,
        reader: &R,
    ) -> Result<Fetched<R::Item>, PowerSchoolError> {
        let inner = &*self.inner;
        let last_count = self
            .last_counts
            .as_ref()
            .and_then(|last| last.of(ctx.query, &args));
        Pager::new(
            &inner.transport,
            ctx,
            args,
            &inner.page_size,
            &inner.answer_limits,
        )
        .with_last_count(last_count)
        .fetch(reader)
        .await
    }
}

fn school_reader() -> Typed<School> {
    Typed::as_sent(SCHOOL_FIELDS, key_columns(SCHOOLS_QUERY), |c| {
        parse::school(c)
    })
}

fn independent_reader() -> Typed<IndependentStudent> {
    Typed::as_sent(INDEPENDENT_FIELDS, key_columns(INDEPENDENT_QUERY), |c| {
        parse::independent_student(c)
    })
}

fn contact_reader() -> Typed<StudentContact> {
    Typed::as_sent(CONTACT_FIELDS, key_columns(CONTACTS_QUERY), |c| {
        parse::contact(c)
    })
}

fn school_args(school_number: i64) -> Value {
    json!({ "school_number": school_number.to_string() })
}

/// A record that did not parse, as the run's problem list shows it.
fn problem(query: &str, failure: Failure) -> RecordProblem {
    RecordProblem {
        query: query.to_string(),
        record_id: failure.record_id,
        field: failure.error.field,
        value: failure.error.value,
        message: failure.error.message,
    }
}

fn log_problems(problems: &[RecordProblem]) {
    for p in problems.iter().take(PROBLEMS_LOGGED) {
        warn!(
            query = %p.query,
            record = %p.record_id,
            field = %p.field,
            value = %p.value,
            message = %p.message,
            "PowerSchool record skipped"
        );
    }
    if problems.len() > PROBLEMS_LOGGED {
        warn!(
            more = problems.len() - PROBLEMS_LOGGED,
            "more PowerSchool records skipped; see the run's problem list"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_queries_name_their_key_columns() {
        assert_eq!(key_columns(STUDENTS_QUERY), Some(&["dcid"][..]));
        assert_eq!(key_columns(INDEPENDENT_QUERY), Some(&["dcid"][..]));
        assert_eq!(
            key_columns(GUARDIANS_QUERY),
            Some(&["guardianid", "studentsdcid"][..])
        );
        assert_eq!(
            key_columns(CONTACTS_QUERY),
            Some(&["studentsdcid", "personid"][..])
        );
        assert_eq!(key_columns("org.example.other"), None);
    }

    #[test]
    fn record_ids_name_the_key_or_the_place() {
        use crate::powerschool::page::record_id;
        use crate::powerschool::parse::Record;
        let id = |query: &str, c: Option<&Columns>, page, index| {
            let keys = key_columns(query).unwrap_or(&["dcid"]);
            record_id(keys, c.map(|c| c as &dyn Record), page, index)
        };
        let mut c = Columns::new();
        c.insert("dcid".into(), "abc".into());
        assert_eq!(id(STUDENTS_QUERY, Some(&c), 3, 4), "dcid=abc");
        assert_eq!(id(STUDENTS_QUERY, None, 3, 4), "page 3, record 5");
        c.insert("guardianid".into(), "12".into());
        assert_eq!(
            id(GUARDIANS_QUERY, Some(&c), 1, 0),
            "page 1, record 1 (guardianid=12)"
        );
        c.insert("studentsdcid".into(), "5001".into());
        assert_eq!(
            id(GUARDIANS_QUERY, Some(&c), 1, 0),
            "guardianid=12, studentsdcid=5001"
        );
    }
}
