//! The run's problems: what a run could not use or wants an admin to look
//! at, appended with one COPY.
//!
//! Most of a large run's problems are the rules' findings (a link without a
//! matching contact, an email that differs, …): tens of thousands of rows a
//! night whose words are built from two ids and an email. Those are stored
//! as their kind and facts (`rules::problems::RuleProblem`: ids in numeric
//! columns, the email in `value`, the login in `login`) with `message` NULL,
//! and worded by the rules when read; the wording is the one place their
//! words are built, at plan time and when read back, so both read the same. Every
//! other problem (a record the fetch could not read, a student left out of
//! the sync set, …) carries words that cannot be rebuilt and is stored as
//! text, as are the rows of runs before this form existed.

use super::copy::{copy_in, copy_row, CopyValue};
use super::Tx;
use crate::rules::problems::RuleProblem;
use crate::rules::text;
use crate::store::runs::last_full_success_id;
use crate::store::{digest, Doing, StoreError};
use serde::{Deserialize, Serialize};
use std::hash::Hasher;

/// How long a problem's message may be, in characters (it quotes values).
pub const MESSAGE_CHARS: usize = 1000;

/// A record a run could not use or wants an admin to look at, with the
/// words an admin reads. A rule's finding made by a run holds its facts
/// (`about`) and no words until they are asked for (`worded`): a run holds
/// tens of thousands and writes only their facts. Serialized (the report, a
/// held plan), every row has its words.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ProblemRow {
    pub kind: String,
    pub query: Option<String>,
    pub record_id: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
    /// For a rule's finding, the facts `record_id` and `message` were
    /// rendered from: what is stored instead of the words. Never serialized
    /// (the report shows the words); a held plan read back has lost it and
    /// stores its words as text, which reads the same.
    #[serde(skip)]
    pub about: Option<RuleProblem>,
}

impl ProblemRow {
    /// The row as the database and the report keep it: record ids and values
    /// escaped and cut to `text::SHOWN_CHARS` characters, the message to
    /// `MESSAGE_CHARS`, no control character anywhere (a NUL from
    /// PowerSchool must never reach PostgreSQL, even inside a problem about
    /// it). Applied once to every row, at plan time and to a rendered row
    /// when read, so both read the same.
    pub fn tidy(&mut self) {
        if self.unworded() {
            // No words yet: `worded` tidies them when it renders them.
            return;
        }
        for v in [
            &mut self.record_id,
            &mut self.value,
            &mut self.query,
            &mut self.field,
        ]
        .into_iter()
        .flatten()
        {
            *v = text::shown(v);
        }
        self.message = text::shown_at_most(&self.message, MESSAGE_CHARS);
    }

    /// A rule's finding whose words are not rendered yet.
    fn unworded(&self) -> bool {
        self.about.is_some() && self.message.is_empty()
    }

    /// The row with its words: a rule's finding's are rendered from its
    /// facts (and tidied) where they were not yet; any other row is as it is.
    pub fn worded(mut self) -> ProblemRow {
        if let Some(about) = self.about.as_ref().filter(|_| self.unworded()) {
            self.record_id = Some(about.record_id());
            self.message = about.message();
            self.tidy();
        }
        self
    }

    /// This row with its words, borrowed when it has them.
    pub fn with_words(&self) -> std::borrow::Cow<'_, ProblemRow> {
        match self.unworded() {
            true => std::borrow::Cow::Owned(self.clone().worded()),
            false => std::borrow::Cow::Borrowed(self),
        }
    }
}

/// The serialized form: the words, never the facts.
#[derive(Serialize)]
#[serde(rename = "ProblemRow")]
struct Words<'a> {
    kind: &'a str,
    query: &'a Option<String>,
    record_id: &'a Option<String>,
    field: &'a Option<String>,
    value: &'a Option<String>,
    message: &'a str,
}

impl Serialize for ProblemRow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let row = self.with_words();
        Words {
            kind: &row.kind,
            query: &row.query,
            record_id: &row.record_id,
            field: &row.field,
            value: &row.value,
            message: &row.message,
        }
        .serialize(serializer)
    }
}

/// The stored columns of a rule problem besides its kind (NULL where the
/// kind has no such fact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredFacts<'a> {
    pub guardian_id: Option<i64>,
    pub student_dcid: Option<i64>,
    pub user_id: Option<i64>,
    pub value: Option<&'a str>,
    pub login: Option<&'a str>,
}

impl RuleProblem {
    /// The columns it is stored as.
    pub fn stored(&self) -> StoredFacts<'_> {
        use RuleProblem::*;
        let none = StoredFacts::default();
        match self {
            RowForStudentOutsideSyncSet {
                guardian_id,
                student_dcid,
            }
            | AccountWithoutEmail {
                guardian_id,
                student_dcid,
            } => StoredFacts {
                guardian_id: Some(*guardian_id),
                student_dcid: Some(*student_dcid),
                ..none
            },
            LinkWithoutMatchingContact {
                guardian_id,
                student_dcid,
                email,
            }
            | UnverifiedEmailMatch {
                guardian_id,
                student_dcid,
                email,
            } => StoredFacts {
                guardian_id: Some(*guardian_id),
                student_dcid: Some(*student_dcid),
                value: Some(email),
                ..none
            },
            EmailDiffers {
                user_id,
                login,
                powerschool_email,
            } => StoredFacts {
                user_id: Some(*user_id),
                value: Some(powerschool_email),
                login: Some(login),
                ..none
            },
            OrphanedFromPowerschool {
                student_dcid,
                user_id,
            }
            | FormCreatorOnly {
                student_dcid,
                user_id,
            } => StoredFacts {
                student_dcid: Some(*student_dcid),
                user_id: Some(*user_id),
                ..none
            },
        }
    }

    /// The problem a stored row of `kind` holds, or `None` when the kind is
    /// not a rule problem's or a fact it needs is missing.
    pub fn from_stored(kind: &str, s: StoredFacts<'_>) -> Option<RuleProblem> {
        use RuleProblem::*;
        let text = |v: Option<&str>| v.map(str::to_string);
        Some(match kind {
            "row_for_student_outside_sync_set" => RowForStudentOutsideSyncSet {
                guardian_id: s.guardian_id?,
                student_dcid: s.student_dcid?,
            },
            "link_without_matching_contact" => LinkWithoutMatchingContact {
                guardian_id: s.guardian_id?,
                student_dcid: s.student_dcid?,
                email: text(s.value)?,
            },
            "unverified_email_match" => UnverifiedEmailMatch {
                guardian_id: s.guardian_id?,
                student_dcid: s.student_dcid?,
                email: text(s.value)?,
            },
            "email_differs" => EmailDiffers {
                user_id: s.user_id?,
                login: text(s.login)?,
                powerschool_email: text(s.value)?,
            },
            "account_without_email" => AccountWithoutEmail {
                guardian_id: s.guardian_id?,
                student_dcid: s.student_dcid?,
            },
            "orphaned_from_powerschool" => OrphanedFromPowerschool {
                student_dcid: s.student_dcid?,
                user_id: s.user_id?,
            },
            "form_creator_only" => FormCreatorOnly {
                student_dcid: s.student_dcid?,
                user_id: s.user_id?,
            },
            _ => return None,
        })
    }

    /// Whether its facts can be stored as they are: PostgreSQL text holds
    /// no NUL. (Emails with control characters are refused before the rules
    /// see them, so this is a guard; such a problem is stored as its words,
    /// which escape the NUL.)
    fn storable(&self) -> bool {
        let s = self.stored();
        [s.value, s.login]
            .into_iter()
            .flatten()
            .all(|v| !v.contains('\0'))
    }
}

impl From<RuleProblem> for ProblemRow {
    /// The row of a rule's finding: its kind and facts, its words rendered
    /// when asked for (`worded`).
    fn from(p: RuleProblem) -> ProblemRow {
        ProblemRow {
            kind: p.kind().to_string(),
            about: Some(p),
            ..ProblemRow::default()
        }
    }
}

/// Records a run's problems: rule problems as their kind and facts with no
/// words, every other problem as its words. When they are exactly the
/// problems of the last successful full run (the same rows, in the same
/// order: a quiet night's, as a rule), none is copied: the run's row says
/// where they are stored (`sync_runs.problems_stored_by`, migration 0010),
/// and reading a run's problems follows it (`store::access::run_problems`).
/// Otherwise one `COPY` appends them. Either way the run's row keeps their
/// digest (`problems_digest`), for the next run to compare.
pub async fn insert_problems(
    tx: &mut Tx<'_>,
    rows: &[ProblemRow],
    run_id: i64,
) -> Result<(), StoreError> {
    let digest = digest_of(rows);
    // Only the last successful full run's: `prune` never removes it, nor
    // the run it points at while it does.
    let last: Option<(i64, Option<i64>)> = sqlx::query_as(concat!(
        "SELECT coalesce(problems_stored_by, id), problems_digest FROM sync_runs WHERE id = ",
        last_full_success_id!()
    ))
    .fetch_optional(&mut **tx)
    .await
    .doing("reading the last run's problems' digest")?;
    let shared = match last {
        Some((stored_under, Some(d))) if !rows.is_empty() && d == digest::stored(digest) => {
            Some(stored_under)
        }
        _ => None,
    };
    if shared.is_none() {
        copy_in(
            tx,
            "COPY run_problems (run_id, kind, query, record_id, field, value, message,
                                guardian_id, student_dcid, user_id, login) FROM STDIN",
            &[rows],
            move |out, r: &ProblemRow| {
                CopyValue::put(&run_id, out);
                out.push(b'\t');
                encode(out, r);
            },
            "recording the run's problems",
        )
        .await?;
    }
    sqlx::query("UPDATE sync_runs SET problems_digest = $2, problems_stored_by = $3 WHERE id = $1")
        .bind(run_id)
        .bind(digest::stored(digest))
        .bind(shared)
        .execute(&mut **tx)
        .await
        .doing("recording where the run's problems are")?;
    Ok(())
}

/// A problem's COPY text fields after its run id, with the newline.
fn encode(out: &mut Vec<u8>, r: &ProblemRow) {
    match r.about.as_ref().filter(|a| a.storable()) {
        Some(about) => {
            let s = about.stored();
            let none: Option<&str> = None;
            copy_row!(out; r.kind, none, none, none, s.value, none,
                s.guardian_id, s.student_dcid, s.user_id, s.login)
        }
        None => {
            let none: Option<i64> = None;
            let r = r.with_words();
            copy_row!(out; r.kind, r.query, r.record_id, r.field, r.value,
                r.message, none, none, none, none)
        }
    }
}

/// The digest of a run's problems: of their COPY text lines (without the
/// run id), in order, each with its newline, which separates them (COPY
/// text escapes any newline inside a value), through SipHash-1-3 with zero
/// keys (`digest::hasher`, as for the mirrored rows). Two different sets
/// share a digest by chance only (one in 2^64): the later run would then
/// list the earlier run's problems until its own change.
fn digest_of(rows: &[ProblemRow]) -> u64 {
    let mut hasher = digest::hasher();
    let mut line = Vec::new();
    for r in rows {
        line.clear();
        encode(&mut line, r);
        hasher.write(&line);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worded(kind: &str, message: &str) -> ProblemRow {
        ProblemRow {
            kind: kind.into(),
            message: message.into(),
            ..ProblemRow::default()
        }
    }

    #[test]
    fn the_digest_of_a_run_s_problems_follows_each_line_and_their_order() {
        let (a, b) = (worded("bad_record", "a\tb"), worded("bad_record", "c"));
        let both = digest_of(&[a.clone(), b.clone()]);
        assert_eq!(both, digest_of(&[a.clone(), b.clone()]));
        assert_ne!(both, digest_of(&[b.clone(), a.clone()]), "order counts");
        assert_ne!(both, digest_of(std::slice::from_ref(&a)));
        // The same characters, the line boundary moved: the COPY text
        // escapes the tab inside a value, so the lines differ.
        let moved = [worded("bad_record", "a"), worded("bad_record", "b\tc")];
        assert_ne!(both, digest_of(&moved));
        assert_ne!(digest_of(&[]), digest_of(&[worded("bad_record", "")]));
    }
}
