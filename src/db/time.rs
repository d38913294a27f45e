//! `DbTime`: a UTC instant stored natively in each backend — `TIMESTAMPTZ` in PostgreSQL,
//! fixed-width ISO 8601 text (`2025-01-31T12:00:00.123Z`) in SQLite, where a fixed width
//! makes text order equal time order (sqlx's own `OffsetDateTime` encoding trims
//! trailing zeros of the fraction, which breaks that).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// A UTC instant with millisecond precision, as the decision log stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbTime(pub OffsetDateTime);

impl DbTime {
    /// The current time, truncated to milliseconds (what both backends keep).
    pub fn now() -> Self {
        Self::from(OffsetDateTime::now_utc())
    }

    /// Fixed-width RFC 3339 in UTC with milliseconds: the SQLite storage form and the API form.
    pub fn to_rfc3339(&self) -> String {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        self.0.format(&format).expect("a UTC time within years 0..9999 always formats")
    }

    /// Parses RFC 3339 (any offset, any fraction) as used in query strings.
    pub fn parse(text: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(text, &Rfc3339).map(Self::from)
    }
}

impl From<OffsetDateTime> for DbTime {
    fn from(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        let millis = t.millisecond();
        DbTime(t.replace_nanosecond(u32::from(millis) * 1_000_000).expect("whole milliseconds are a valid nanosecond"))
    }
}

impl serde::Serialize for DbTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl std::fmt::Display for DbTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty) || <OffsetDateTime as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.to_rfc3339(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(DbTime::parse(text)?)
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(DbTime::from(<OffsetDateTime as Decode<'r, Postgres>>::decode(value)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_text_sorts_like_time() {
        let a = DbTime::parse("2025-01-31T12:00:00.5Z").unwrap();
        let b = DbTime::parse("2025-01-31T12:00:00.123+00:00").unwrap();
        let c = DbTime::parse("2025-01-31T13:00:00+01:00").unwrap();
        assert_eq!(a.to_rfc3339(), "2025-01-31T12:00:00.500Z");
        assert_eq!(c.to_rfc3339(), "2025-01-31T12:00:00.000Z");
        let mut texts = [a, b, c].map(|t| t.to_rfc3339());
        texts.sort();
        assert_eq!(texts, [c, b, a].map(|t| t.to_rfc3339()));
    }

    #[test]
    fn truncates_to_milliseconds() {
        let t = DbTime::parse("2025-01-31T12:00:00.123456789Z").unwrap();
        assert_eq!(t.0.nanosecond(), 123_000_000);
    }
}
