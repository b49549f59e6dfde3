//! Turning a world's SchoolEngage side into seed rows: emails normalised the
//! way the rules compare them, every bad value named with its record.

use crate::harness::world::SchoolEngageSide;
use crate::rules::{normalise_email, AccessTier, Origin};
use crate::store::seed::{self, SeedConnection, SeedForm, SeedUser};
use crate::store::StoreError;
use sqlx::PgPool;
use std::str::FromStr;
use strum::VariantNames;

fn email(value: &str, record: String) -> Result<String, StoreError> {
    normalise_email(value).ok_or_else(|| StoreError::BadSeed {
        record,
        problem: format!("{value:?} is not a well-formed email"),
    })
}

/// One of the rules' codes, or the error naming the record and the codes allowed.
fn code<T: FromStr>(
    record: &str,
    what: &str,
    value: &str,
    allowed: &[&str],
) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::BadSeed {
        record: record.to_string(),
        problem: format!("{what} {value:?} is not one of {}", allowed.join(", ")),
    })
}

pub async fn seed_world(pool: &PgPool, side: &SchoolEngageSide) -> Result<(), StoreError> {
    let mut users = Vec::new();
    for (i, u) in side.users.iter().enumerate() {
        users.push(SeedUser {
            email: email(&u.email, format!("schoolengage.users[{i}]"))?,
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            email_verified: u.email_verified,
            powerschool_guardian_id: u.powerschool_guardian_id,
        });
    }
    let mut connections = Vec::new();
    for (i, c) in side.connections.iter().enumerate() {
        let record = format!("schoolengage.connections[{i}]");
        let tier = code(
            &record,
            "tier",
            &c.tier,
            &AccessTier::ALL.map(AccessTier::as_str),
        )?;
        let origin = code(&record, "origin", &c.origin, Origin::VARIANTS)?;
        connections.push(SeedConnection {
            student_dcid: c.student_dcid,
            email: email(&c.email, record)?,
            tier,
            origin,
        });
    }
    let mut forms = Vec::new();
    for (i, f) in side.forms.iter().enumerate() {
        forms.push(SeedForm {
            student_dcid: f.student_dcid,
            created_by: email(&f.created_by, format!("schoolengage.forms[{i}]"))?,
        });
    }
    seed::load(pool, &users, &connections, &forms).await
}
