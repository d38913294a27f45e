//! The moderators' side: browser pages to check a meme, work through the review queue,
//! correct verdicts, and see the model and how it is doing; with their own sign-in
//! (accounts with argon2 password hashes, session cookies, a CSRF token on every form).
//!
//! Pages are server-rendered (askama templates in `templates/`, a little CSS and JS in
//! `static/`, embedded in the binary) and work without JavaScript. They call the same
//! layers as the REST API: [`crate::moderation::moderate`] to score, `db::decisions` and
//! `db::reviews` to read and review. A signed-in moderator is a [`crate::auth::Caller`]
//! with id `web:<username>`, so role checks and the decision log are the same as for keys.

pub mod accounts;
mod assets;
pub mod cli;
mod error;
mod pages;
pub mod queries;
pub mod session;
pub mod throttle;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use clap::Args;

use crate::state::AppState;

/// Settings of the moderators' pages (flattened into `serve`'s flags).
#[derive(Debug, Clone, Args)]
pub struct WebConfig {
    /// Mark session cookies `Secure` (sent over HTTPS only). Turn on whenever the pages are
    /// served over HTTPS (directly or behind a TLS-terminating proxy).
    #[arg(long, env = "MEMEGUARD_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "MEMEGUARD_SESSION_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=24 * 30))]
    pub session_hours: u64,
}

impl WebConfig {
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_hours * 3600)
    }
}

/// The pages, their assets, and sign-in/out.
pub fn router() -> Router<AppState> {
    Router::new().merge(pages::router()).merge(assets::router()).layer(middleware::map_response(security_headers))
}

/// Headers every page gets: a content security policy that allows only our own scripts,
/// styles and images (plus `blob:` previews of a picture being uploaded), no framing, and
/// no caching of pages that show moderated content.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}
