//! Browser sessions and CSRF protection.
//!
//! Signing in stores a session (the sha256 of a random token, the account, a random CSRF
//! token, an expiry) and gives the browser the token in an `HttpOnly`, `SameSite=Lax`
//! cookie (`Secure` with `--cookie-secure`). Every form carries the session's CSRF token
//! in a hidden `csrf` field and every POST checks it, so another site cannot post forms
//! on a moderator's behalf. The sign-in form itself, before any session, uses a
//! double-submit token: a random value both in a short-lived cookie and in the form.

use axum::extract::FromRequestParts;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use memeguard_package::package::sha256_hex;
use rand::RngCore as _;
use time::Duration;

use super::accounts::Account;
use super::error::PageError;
use crate::auth::{Caller, Role};
use crate::db::{Db, DbError, DbTime};
use crate::state::AppState;
use crate::with_pool;

/// The session cookie.
pub const SESSION_COOKIE: &str = "mg_session";
/// The sign-in form's double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "mg_login_csrf";
/// Lifetime of the sign-in form's token, in seconds.
const LOGIN_CSRF_SECONDS: u64 = 3600;

/// 32 random bytes, base64url: session tokens and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_token(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age: 0` deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool, same_site: &str) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite={same_site}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The sign-in form's double-submit cookie and the token to put in the form.
pub fn login_csrf_cookie(secure: bool) -> (String, String) {
    let token = random_token();
    (set_cookie(LOGIN_CSRF_COOKIE, &token, LOGIN_CSRF_SECONDS, secure, "Strict"), token)
}

/// Whether the sign-in form's token matches its cookie.
pub fn login_csrf_ok(headers: &HeaderMap, form_token: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|c| !c.is_empty() && same_secret(c, form_token))
}

/// A new session for `account`; returns the cookie token (the only copy).
pub async fn create(db: &Db, account: &Account, lifetime: std::time::Duration) -> Result<String, DbError> {
    let token = random_token();
    let now = DbTime::now();
    let expires = DbTime::from(now.0 + Duration::try_from(lifetime).unwrap_or(Duration::hours(12)));
    with_pool!(db, pool => {
        // Sign-in is rare: a good moment to forget expired sessions.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1").bind(now).execute(pool).await?;
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, account_id, csrf_token, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(&token))
        .bind(account.id)
        .bind(random_token())
        .bind(now)
        .bind(expires)
        .execute(pool)
        .await?;
    });
    Ok(token)
}

/// Ends the session with this cookie token (if it exists).
pub async fn end(db: &Db, token: &str) -> Result<(), DbError> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1").bind(hash_token(token)).execute(pool).await?;
    });
    Ok(())
}

/// A signed-in moderator, from the session cookie. As an extractor it sends anyone else
/// to the sign-in page (GET: back here afterwards).
#[derive(Debug, Clone)]
pub struct WebUser {
    pub caller: Caller,
    pub username: String,
    pub role: Role,
    /// The token every form of this session must send back.
    pub csrf: String,
    /// The cookie token (to end the session at sign-out).
    pub token: String,
}

impl WebUser {
    /// Rejects a form whose `csrf` field is not this session's token.
    pub fn check_csrf(&self, form_token: Option<&str>) -> Result<(), PageError> {
        match form_token {
            Some(t) if same_secret(t, &self.csrf) => Ok(()),
            _ => Err(PageError::Csrf),
        }
    }

    /// Succeeds if the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), PageError> {
        self.caller.require(role).map_err(PageError::from)
    }
}

/// The signed-in user of a session token, if the session is live and the account active.
pub async fn find(db: &Db, token: &str) -> Result<Option<WebUser>, DbError> {
    let row = with_pool!(db, pool => {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT a.username, a.role, s.csrf_token FROM web_sessions s JOIN accounts a ON a.id = s.account_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL",
        )
        .bind(hash_token(token))
        .bind(DbTime::now())
        .fetch_optional(pool)
        .await?
    });
    Ok(row.and_then(|(username, role, csrf)| {
        let role = role.parse::<Role>().ok()?;
        Some(WebUser {
            caller: Caller { id: format!("web:{username}"), name: username.clone(), role },
            username,
            role,
            csrf,
            token: token.to_string(),
        })
    }))
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) if !token.is_empty() => find(&state.db, token).await?,
            _ => None,
        };
        user.ok_or_else(|| {
            // After signing in, come back to the page asked for (never for a form post).
            let next = (parts.method == Method::GET)
                .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_string()))
                .flatten();
            PageError::LoginRequired { next }
        })
    }
}

/// `next` if it is a path on this site, else the home page `/`. A local path starts with
/// exactly one `/` followed by something other than `/` or `\` (browsers read `//host`
/// and `/\host` as other sites), and has no control characters anywhere: browsers drop
/// tabs and newlines from URLs (`/\t/host` becomes `//host`), and a `Location` header
/// cannot carry the others. Non-ASCII characters are percent-encoded for the header.
pub fn local_redirect(next: Option<&str>) -> String {
    match next {
        Some(n) if is_local_path(n) => {
            n.chars().map(|c| if c.is_ascii() { c.to_string() } else { percent_encode(c) }).collect()
        }
        _ => "/".to_string(),
    }
}

fn is_local_path(next: &str) -> bool {
    let mut chars = next.chars();
    chars.next() == Some('/')
        && chars.next().is_some_and(|c| c != '/' && c != '\\')
        && !next.chars().any(char::is_control)
}

fn percent_encode(c: char) -> String {
    c.encode_utf8(&mut [0; 4]).bytes().map(|b| format!("%{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; mg_session=tok; b=2"));
        headers.append(COOKIE, HeaderValue::from_static("mg_login_csrf=xyz"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "mg"), None);
        assert!(login_csrf_ok(&headers, "xyz") && !login_csrf_ok(&headers, "xy") && !login_csrf_ok(&headers, ""));
    }

    #[test]
    fn set_cookie_has_the_safety_attributes() {
        let c = set_cookie(SESSION_COOKIE, "t", 60, true, "Lax");
        assert_eq!(c, "mg_session=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure");
        assert!(!set_cookie(SESSION_COOKIE, "t", 60, false, "Lax").contains("Secure"));
    }

    #[test]
    fn redirects_stay_on_this_site() {
        assert_eq!(local_redirect(Some("/review/3?x=1")), "/review/3?x=1");
        assert_eq!(local_redirect(Some("/")), "/");
        assert_eq!(local_redirect(Some("/dashboard")), "/dashboard");
        assert_eq!(local_redirect(Some("/review?q=é")), "/review?q=%C3%A9");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\x0b/evil.example",
            "/review\x7f",
            "https://evil.example",
            "review",
            "",
            "/a\r\nSet-Cookie: x",
        ] {
            assert_eq!(local_redirect(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_redirect(None), "/");
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab") && !same_secret("", "a"));
    }
}
