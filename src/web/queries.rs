//! What the pages read beyond the decision API's queries: the review queue (its own
//! order: unreviewed first, then the most uncertain) and the dashboard's figures. Rows are
//! the decision log's own [`Decision`] (same columns, same latest-review join), and review
//! agreement is read from the `reviewed_decisions` view, the one definition of a current
//! label.

use time::{Duration, OffsetDateTime, Time};

use crate::db::decisions::{Decision, SELECT_DECISION};
use crate::db::{Db, DbError, DbTime};
use crate::with_pool;

/// Filters of the review queue; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// The model's verdict.
    pub flagged: Option<bool>,
    /// Whether a review exists.
    pub reviewed: Option<bool>,
    /// Exact `name@version`.
    pub model: Option<String>,
    /// `given`, `ocr` or `none`.
    pub text_source: Option<String>,
}

/// A page of the review queue: unreviewed decisions first, then by how close the score is
/// to the threshold (the model's least certain verdicts first), then newest first.
pub async fn review_queue(db: &Db, filter: &QueueFilter, limit: u32, offset: u32) -> Result<Vec<Decision>, DbError> {
    let sql = format!(
        "{SELECT_DECISION}
         WHERE ($1 IS NULL OR d.flagged = $1)
           AND ($2 IS NULL OR $2 = (r.id IS NOT NULL))
           AND ($3 IS NULL OR d.model = $3)
           AND ($4 IS NULL OR d.text_source = $4)
         ORDER BY (r.id IS NOT NULL), ABS(d.score - d.threshold), d.id DESC
         LIMIT $5 OFFSET $6"
    );
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, Decision>(&sql)
            .bind(filter.flagged)
            .bind(filter.reviewed)
            .bind(filter.model.as_deref())
            .bind(filter.text_source.as_deref())
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(pool)
            .await?
    }))
}

/// The models that have made decisions, most recent first (for the queue's filter).
pub async fn models_seen(db: &Db) -> Result<Vec<String>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_scalar::<_, String>("SELECT model FROM decisions GROUP BY model ORDER BY MAX(id) DESC LIMIT 50")
            .fetch_all(pool)
            .await?
    }))
}

/// Decisions of one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub decisions: i64,
    pub flagged: i64,
}

/// The dashboard's figures.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// The last `days` UTC days, oldest first, days without decisions included.
    pub per_day: Vec<DayCount>,
    pub decisions: i64,
    pub flagged: i64,
    pub reviewed: i64,
    /// Reviewed decisions whose current label equals the model's verdict.
    pub agreed: i64,
    /// Decisions whose text came from OCR.
    pub ocr_text: i64,
}

/// The dashboard for the last `days` days (counts per day) and all time (totals).
pub async fn dashboard(db: &Db, days: u32) -> Result<Dashboard, DbError> {
    let today = OffsetDateTime::now_utc().replace_time(Time::MIDNIGHT);
    let first = today - Duration::days(i64::from(days.max(1)) - 1);
    let day_of = match db {
        Db::Sqlite(_) => "substr(created_at, 1, 10)",
        Db::Postgres(_) => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    };
    let per_day_sql = format!(
        "SELECT {day_of} AS day, COUNT(*) AS decisions, COALESCE(SUM(CASE WHEN flagged THEN 1 ELSE 0 END), 0) AS flagged
         FROM decisions WHERE created_at >= $1 GROUP BY 1 ORDER BY 1"
    );
    let (rows, totals, review) = with_pool!(db, pool => {
        let rows = sqlx::query_as::<_, (String, i64, i64)>(&per_day_sql).bind(DbTime::from(first)).fetch_all(pool).await?;
        let totals = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN flagged THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN text_source = 'ocr' THEN 1 ELSE 0 END), 0)
             FROM decisions",
        )
        .fetch_one(pool)
        .await?;
        let review = sqlx::query_as::<_, (i64, i64)>(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN (label = 'hateful') = flagged THEN 1 ELSE 0 END), 0)
             FROM reviewed_decisions",
        )
        .fetch_one(pool)
        .await?;
        (rows, totals, review)
    });
    let per_day = (0..i64::from(days.max(1)))
        .map(|i| {
            let day = DbTime::from(first + Duration::days(i)).to_rfc3339()[..10].to_string();
            let found = rows.iter().find(|(d, _, _)| *d == day);
            DayCount { decisions: found.map_or(0, |r| r.1), flagged: found.map_or(0, |r| r.2), day }
        })
        .collect();
    Ok(Dashboard {
        per_day,
        decisions: totals.0,
        flagged: totals.1,
        ocr_text: totals.2,
        reviewed: review.0,
        agreed: review.1,
    })
}
