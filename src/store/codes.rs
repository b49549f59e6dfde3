//! The rules' codes (and a run's trigger, phase and status) as the database
//! stores them. Tier, case, origin and
//! limits are `text` columns (and a `text[]`), each with a `CHECK`
//! constraint on the allowed codes, spelled exactly as the
//! rules' enums spell themselves (their strum derives), so the store reads
//! and writes the enums directly: no string is parsed back by hand anywhere,
//! and the rules module stays free of database types.

use super::runs::{RunPhase, RunStatus, RunTrigger};
use crate::rules::{AccessTier, ConnectionCase, Limit, Origin};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// `sqlx::Type` (as `text`), `Encode`, `Decode` and arrays of it, for each
/// code enum. A stored value the enum does not know is a decode error that
/// names the value (the `CHECK` constraints make it impossible in practice).
macro_rules! text_code {
    ($($code:ty),+) => {$(
        impl Type<Postgres> for $code {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $code {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
            fn array_compatible(ty: &PgTypeInfo) -> bool {
                <&str as PgHasArrayType>::array_compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $code {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $code {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                text.parse().map_err(|_| {
                    format!("unknown {} {text:?} in the database", stringify!($code)).into()
                })
            }
        }
    )+};
}

text_code!(
    AccessTier,
    ConnectionCase,
    Limit,
    Origin,
    RunTrigger,
    RunStatus,
    RunPhase
);

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test]
    async fn codes_round_trip_through_text_columns(pool: sqlx::PgPool) {
        let (tier, case, limits, origin): (AccessTier, Option<ConnectionCase>, Vec<Limit>, Origin) =
            sqlx::query_as("SELECT $1::text, $2::text, $3::text[], $4::text")
                .bind(AccessTier::ReadOnly)
                .bind(Some(ConnectionCase::MatchedFormCreator))
                .bind(vec![Limit::R4, Limit::R5])
                .bind(Origin::Powerschool)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(tier, AccessTier::ReadOnly);
        assert_eq!(case, Some(ConnectionCase::MatchedFormCreator));
        assert_eq!(limits, vec![Limit::R4, Limit::R5]);
        assert_eq!(origin, Origin::Powerschool);
    }

    #[sqlx::test]
    async fn the_database_refuses_an_unknown_limit(pool: sqlx::PgPool) {
        sqlx::query("INSERT INTO users (email) VALUES ('a@example.org')")
            .execute(&pool)
            .await
            .unwrap();
        let err = sqlx::query(
            "INSERT INTO connections (student_dcid, user_id, tier, limits, origin)
             SELECT 5001, id, 'full', ARRAY['R9'], 'admin' FROM users",
        )
        .execute(&pool)
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("connections_limits_known"),
            "{err}"
        );
    }

    #[sqlx::test]
    async fn an_unknown_code_is_an_error_naming_it(pool: sqlx::PgPool) {
        let err = sqlx::query_scalar::<_, AccessTier>("SELECT 'superuser'::text")
            .fetch_one(&pool)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("\"superuser\""), "{err}");
    }
}
