//! The users a run writes: new users made from valid Parent Portal links,
//! and the synced fields (name, linked guardian, incomplete flag) of
//! existing ones. Both go as whole columns (`UNNEST`) in batches.

use super::Tx;
use crate::rules::Name;
use crate::store::{Doing, StoreError, BATCH};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use std::collections::HashMap;

/// A user the run creates. The email is SchoolEngage's from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUserRow {
    pub email: String,
    pub first_name: Option<Name>,
    pub last_name: Option<Name>,
    pub powerschool_guardian_id: Option<i64>,
    pub incomplete: bool,
}

/// The synced fields of an existing user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpdate {
    pub id: i64,
    pub first_name: Option<Name>,
    pub last_name: Option<Name>,
    pub powerschool_guardian_id: Option<i64>,
    pub incomplete: bool,
}

/// The fields the sync owns on a user, as four bind arrays (`$2` to `$5`
/// of both statements: first name, last name, guardian id, incomplete).
struct SyncedColumns {
    first_names: Vec<Option<String>>,
    last_names: Vec<Option<String>>,
    guardian_ids: Vec<Option<i64>>,
    incomplete: Vec<bool>,
}

impl SyncedColumns {
    fn of<'r>(
        rows: impl Iterator<Item = (&'r Option<Name>, &'r Option<Name>, Option<i64>, bool)>,
    ) -> SyncedColumns {
        let mut columns = SyncedColumns {
            first_names: Vec::new(),
            last_names: Vec::new(),
            guardian_ids: Vec::new(),
            incomplete: Vec::new(),
        };
        for (first, last, guardian, incomplete) in rows {
            columns
                .first_names
                .push(first.as_deref().map(str::to_owned));
            columns.last_names.push(last.as_deref().map(str::to_owned));
            columns.guardian_ids.push(guardian);
            columns.incomplete.push(incomplete);
        }
        columns
    }

    fn bind(self, query: Query<'_, Postgres, PgArguments>) -> Query<'_, Postgres, PgArguments> {
        query
            .bind(self.first_names)
            .bind(self.last_names)
            .bind(self.guardian_ids)
            .bind(self.incomplete)
    }
}

/// Inserts users and returns their ids in the order given.
pub async fn insert_users(
    tx: &mut Tx<'_>,
    rows: &[NewUserRow],
    run_id: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH) {
        // The district's SIS vouches for the address of an account it created
        // the user from, so the user counts as verified for later matching.
        let query = sqlx::query(
            "INSERT INTO users (email, first_name, last_name, powerschool_guardian_id, incomplete,
                                email_verified, created_by_run)
             SELECT u.e, u.f, u.l, u.g, u.i, true, $6
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bool[])
                  WITH ORDINALITY AS u(e, f, l, g, i, n)
             ORDER BY u.n
             RETURNING id, email",
        )
        .bind(chunk.iter().map(|r| r.email.clone()).collect::<Vec<_>>());
        let synced = SyncedColumns::of(chunk.iter().map(|r| {
            let (f, l) = (&r.first_name, &r.last_name);
            (f, l, r.powerschool_guardian_id, r.incomplete)
        }));
        let returned = synced
            .bind(query)
            .bind(run_id)
            .fetch_all(&mut **tx)
            .await
            .doing("creating users")?;
        // RETURNING order is not guaranteed: map back by the unique email.
        let by_email: HashMap<String, i64> = returned
            .iter()
            .map(|r| (r.get::<String, _>(1), r.get::<i64, _>(0)))
            .collect();
        for r in chunk {
            let id = by_email
                .get(&r.email)
                .copied()
                .ok_or_else(|| StoreError::UserIdMissing {
                    email: r.email.clone(),
                })?;
            ids.push(id);
        }
    }
    Ok(ids)
}

pub async fn update_users(tx: &mut Tx<'_>, rows: &[UserUpdate]) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        let query = sqlx::query(
            "UPDATE users AS t SET first_name = u.f, last_name = u.l,
                    powerschool_guardian_id = u.g, incomplete = u.i, updated_at = now()
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bool[])
                  AS u(id, f, l, g, i)
             WHERE t.id = u.id",
        )
        .bind(chunk.iter().map(|r| r.id).collect::<Vec<_>>());
        let synced = SyncedColumns::of(chunk.iter().map(|r| {
            let (f, l) = (&r.first_name, &r.last_name);
            (f, l, r.powerschool_guardian_id, r.incomplete)
        }));
        synced
            .bind(query)
            .execute(&mut **tx)
            .await
            .doing("updating users")?;
    }
    Ok(())
}
