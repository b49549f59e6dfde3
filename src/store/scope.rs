//! `explain`'s read of the state: the keys of every record first (see
//! `rules::ScopeKeys`), then the records of the part of the district the
//! question depends on, all in one read-only snapshot. At a million
//! students `explain` read every record in full (1.6 GB) to answer for one
//! family.

use super::copy_out::{read_lines, Fields};
use super::state::{select, CurrentState, StateSnapshot, StudentRow, SELECT_STUDENTS};
use super::{Doing, StoreError};
use crate::rules::{email_key, FormFacts, GuardianLink, Scope, ScopeKeys, StudentContact};
use crate::store::state::{ConnectionRow, UserRow};
use sqlx::{PgConnection, PgPool};

/// The state of the records `choose` picks from every record's keys, read in
/// one read-only REPEATABLE READ snapshot so the keys and the records agree.
pub async fn load_scoped(
    pool: &PgPool,
    choose: impl FnOnce(ScopeKeys) -> Scope,
) -> Result<CurrentState, StoreError> {
    let mut snapshot = StateSnapshot::begin(pool).await?;
    let scope = choose(read_keys(snapshot.conn()).await?);
    let state = read_scope(snapshot.conn(), &scope).await?;
    snapshot.close().await?;
    Ok(state)
}

/// The keys of the records that join others (`ScopeKeys`; emails as
/// `email_key`s), read as COPY text.
async fn read_keys(tx: &mut PgConnection) -> Result<ScopeKeys, StoreError> {
    let mut keys = ScopeKeys::default();
    let copy = |select: &str| format!("COPY ({select}) TO STDOUT");
    let email = |f: &mut Fields<'_>| f.text().map(|e| email_key(e.as_deref()));
    let rows = copy("SELECT student_dcid, guardian_id, email FROM guardian_accounts");
    read_lines(tx, &rows, "guardian_accounts", |line| {
        let f = &mut Fields::of(line);
        keys.rows.push((f.number()?, f.number()?, email(f)?));
        f.end()
    })
    .await?;
    let users = copy("SELECT id, email, powerschool_guardian_id FROM users");
    read_lines(tx, &users, "users", |line| {
        let f = &mut Fields::of(line);
        keys.users
            .push((f.number()?, email(f)?, f.optional_number()?));
        f.end()
    })
    .await?;
    // Apart, so that a row that cannot be read is named with its table.
    for (select, table) in [
        (
            "SELECT student_dcid, user_id FROM connections",
            "connections",
        ),
        (
            "SELECT student_dcid, created_by_user_id FROM forms",
            "forms",
        ),
    ] {
        read_lines(tx, &copy(select), table, |line| {
            let f = &mut Fields::of(line);
            keys.pairs.push((f.number()?, f.number()?));
            f.end()
        })
        .await?;
    }
    Ok(keys)
}

/// The records of the scope's students and users, as `CurrentState::load`
/// reads them.
async fn read_scope(tx: &mut PgConnection, scope: &Scope) -> Result<CurrentState, StoreError> {
    let mut state = CurrentState::default();
    let students = &scope.students;
    let of_students = format!("{} WHERE dcid = ANY($1)", *SELECT_STUDENTS);
    for row in (sqlx::query_as::<_, StudentRow>(&of_students).bind(students))
        .fetch_all(&mut *tx)
        .await
        .doing("reading students")?
    {
        state.students.insert(row.student.dcid, row);
    }
    let contacts = select::<StudentContact>("", "student_contacts WHERE student_dcid = ANY($1)");
    for row in (sqlx::query_as::<_, StudentContact>(&contacts).bind(students))
        .fetch_all(&mut *tx)
        .await
        .doing("reading student contacts")?
    {
        state
            .contacts
            .insert((row.student_dcid, row.person_id), row);
    }
    let accounts = select::<GuardianLink>("", "guardian_accounts WHERE student_dcid = ANY($1)");
    for row in (sqlx::query_as::<_, GuardianLink>(&accounts).bind(students))
        .fetch_all(&mut *tx)
        .await
        .doing("reading guardian accounts")?
    {
        (state.guardian_accounts).insert((row.guardian_id, row.student_dcid), row);
    }
    let users = select::<UserRow>("", "users WHERE id = ANY($1) ORDER BY id");
    state.users = (sqlx::query_as::<_, UserRow>(&users).bind(&scope.users))
        .fetch_all(&mut *tx)
        .await
        .doing("reading users")?;
    let connections =
        select::<ConnectionRow>("", "connections WHERE student_dcid = ANY($1) ORDER BY id");
    state.connections = (sqlx::query_as::<_, ConnectionRow>(&connections).bind(students))
        .fetch_all(&mut *tx)
        .await
        .doing("reading connections")?;
    let forms = select::<FormFacts>("", "forms WHERE student_dcid = ANY($1)").replacen(
        "SELECT",
        "SELECT DISTINCT",
        1,
    );
    state.forms = (sqlx::query_as::<_, FormFacts>(&forms).bind(students))
        .fetch_all(&mut *tx)
        .await
        .doing("reading forms")?;
    Ok(state)
}
