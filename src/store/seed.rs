//! Loading SchoolEngage's side of a test world (users, connections, forms)
//! into an empty database, in one transaction, for tests and the demo.

use super::{Doing, StoreError};
use crate::rules::{AccessTier, Origin};
use sqlx::{PgPool, Row};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct SeedUser {
    /// Normalised.
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email_verified: bool,
    pub powerschool_guardian_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SeedConnection {
    pub student_dcid: i64,
    /// Normalised; must be one of the seeded users.
    pub email: String,
    pub tier: AccessTier,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct SeedForm {
    pub student_dcid: i64,
    /// Normalised; must be one of the seeded users.
    pub created_by: String,
}

pub async fn load(
    pool: &PgPool,
    users: &[SeedUser],
    connections: &[SeedConnection],
    forms: &[SeedForm],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.doing("starting the seed")?;
    // One writer at a time, as every write of live data.
    super::district::take_writer_lock(&mut tx).await?;
    let existing: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM connections) + (SELECT count(*) FROM forms)",
    )
    .fetch_one(&mut *tx)
    .await
    .doing("checking the database is empty")?;
    if existing > 0 {
        return Err(StoreError::NotEmpty {
            what: format!("{existing} users, connections or forms"),
        });
    }
    let rows = sqlx::query(
        "INSERT INTO users (email, first_name, last_name, email_verified, powerschool_guardian_id)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bigint[])
         RETURNING id, email",
    )
    .bind(users.iter().map(|u| u.email.clone()).collect::<Vec<_>>())
    .bind(
        users
            .iter()
            .map(|u| u.first_name.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        users
            .iter()
            .map(|u| u.last_name.clone())
            .collect::<Vec<_>>(),
    )
    .bind(users.iter().map(|u| u.email_verified).collect::<Vec<_>>())
    .bind(
        users
            .iter()
            .map(|u| u.powerschool_guardian_id)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await
    .doing("seeding users")?;
    let ids: HashMap<String, i64> = rows.iter().map(|r| (r.get(1), r.get(0))).collect();
    let user_id = |email: &str, record: String| {
        ids.get(email).copied().ok_or_else(|| StoreError::BadSeed {
            record,
            problem: format!("{email} is not one of the world's schoolengage.users; add the user"),
        })
    };
    let mut c_users = Vec::new();
    for (i, c) in connections.iter().enumerate() {
        c_users.push(user_id(&c.email, format!("schoolengage.connections[{i}]"))?);
    }
    sqlx::query(
        "INSERT INTO connections (student_dcid, user_id, tier, origin, present_in_powerschool)
         SELECT s, u, t, o, o = 'powerschool'
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS x(s, u, t, o)",
    )
    .bind(
        connections
            .iter()
            .map(|c| c.student_dcid)
            .collect::<Vec<_>>(),
    )
    .bind(c_users)
    .bind(connections.iter().map(|c| c.tier).collect::<Vec<_>>())
    .bind(connections.iter().map(|c| c.origin).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .doing("seeding connections")?;
    let mut f_users = Vec::new();
    for (i, f) in forms.iter().enumerate() {
        f_users.push(user_id(&f.created_by, format!("schoolengage.forms[{i}]"))?);
    }
    sqlx::query(
        "INSERT INTO forms (student_dcid, created_by_user_id)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[])",
    )
    .bind(forms.iter().map(|f| f.student_dcid).collect::<Vec<_>>())
    .bind(f_users)
    .execute(&mut *tx)
    .await
    .doing("seeding forms")?;
    tx.commit().await.doing("committing the seed")?;
    Ok(())
}
