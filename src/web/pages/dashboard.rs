//! The dashboard: decisions per day, the flagged rate, and how often reviewers agree with
//! the model.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{Layout, render};
use crate::auth::Role;
use crate::state::AppState;
use crate::web::error::PageError;
use crate::web::queries;
use crate::web::session::WebUser;

/// Days shown in the per-day chart.
const DAYS: u32 = 14;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    decisions: i64,
    flagged: i64,
    flagged_rate: String,
    reviewed: i64,
    agreement: String,
    ocr_text: i64,
    bars: Vec<DayBar>,
    chart_max: i64,
}

/// One day of the chart (SVG coordinates on a 100-high axis).
struct DayBar {
    day: String,
    decisions: i64,
    flagged: i64,
    x: String,
    total_y: String,
    total_height: String,
    flagged_y: String,
    flagged_height: String,
}

fn percent(part: i64, whole: i64) -> String {
    if whole == 0 { "—".into() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// `GET /dashboard`.
pub async fn page(State(state): State<AppState>, user: WebUser) -> Result<Response, PageError> {
    user.require(Role::Moderator)?;
    let stats = queries::dashboard(&state.db, DAYS).await?;
    let chart_max = stats.per_day.iter().map(|d| d.decisions).max().unwrap_or(0).max(1);
    let height = |n: i64| n as f64 * 100.0 / chart_max as f64;
    let bars = stats
        .per_day
        .iter()
        .enumerate()
        .map(|(i, d)| DayBar {
            day: d.day[5..].to_string(),
            decisions: d.decisions,
            flagged: d.flagged,
            x: format!("{:.1}", i as f64 * 10.0 + 1.0),
            total_y: format!("{:.1}", 100.0 - height(d.decisions)),
            total_height: format!("{:.1}", height(d.decisions)),
            flagged_y: format!("{:.1}", 100.0 - height(d.flagged)),
            flagged_height: format!("{:.1}", height(d.flagged)),
        })
        .collect();
    let page = DashboardPage {
        layout: Layout::new(&state, Some(&user)),
        decisions: stats.decisions,
        flagged: stats.flagged,
        flagged_rate: percent(stats.flagged, stats.decisions),
        reviewed: stats.reviewed,
        agreement: percent(stats.agreed, stats.reviewed),
        ocr_text: stats.ocr_text,
        bars,
        chart_max,
    };
    Ok(render(&page)?.into_response())
}
