//! Sign-in and sign-out.

use askama::Template;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use std::net::SocketAddr;
use std::time::Instant;

use axum::Extension;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{CsrfForm, Layout, render};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::accounts;
use crate::web::error::PageError;
use crate::web::session::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, WebUser, local_redirect};
use crate::web::throttle::Throttled;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// A fresh sign-in form (with its double-submit CSRF cookie).
fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let (cookie, csrf) = session::login_csrf_cookie(state.config.web.cookie_secure);
    let page =
        LoginPage { layout: Layout::new(state, None), csrf, next: next.to_string(), username: username.into(), error };
    Ok((status, [(SET_COOKIE, cookie)], render(&page)?).into_response())
}

/// `GET /login`: the form, or straight on when already signed in.
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let next = local_redirect(query.as_ref().ok().and_then(|q| q.next.as_deref()));
    if let Some(token) = session::cookie(&headers, SESSION_COOKIE)
        && session::find(&state.db, token).await?.is_some()
    {
        return Ok(Redirect::to(&next).into_response());
    }
    login_page(&state, StatusCode::OK, &next, "", None)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: String,
}

/// `POST /login`: checks the form's token and the password, then starts a session.
/// Failed sign-ins are throttled per account and per client address (see
/// [`crate::web::throttle`]): while either is closed, the answer is 429 with `Retry-After`
/// and the password is not checked.
pub async fn submit(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(|e| AppError::BadRequest(format!("unreadable sign-in form: {}", e.body_text())))?;
    if !session::login_csrf_ok(&headers, &form.csrf) {
        return Err(PageError::Csrf);
    }
    let next = local_redirect(Some(&form.next));
    let username = form.username.trim();
    let address = connection.map(|Extension(ConnectInfo(a))| a.ip());
    if let Err(Throttled { retry_after }) = state.sign_in.attempt(username, address, Instant::now()) {
        let seconds = retry_after.as_secs();
        tracing::warn!(username = %username, address = ?address, retry_after = seconds, "sign-in throttled");
        let error = Some(format!("Too many failed sign-ins. Try again in {seconds} seconds."));
        let mut page = login_page(&state, StatusCode::TOO_MANY_REQUESTS, &next, username, error)?;
        page.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(page);
    }
    let Some(account) = accounts::authenticate(&state.db, username, &form.password)
        .await
        .map_err(|e| AppError::Internal(format!("sign-in: {e}")))?
    else {
        // Already counted as a failure by `attempt`.
        tracing::info!(username = %username, address = ?address, "sign-in refused");
        let error = Some("Wrong username or password.".to_string());
        return login_page(&state, StatusCode::UNAUTHORIZED, &next, username, error);
    };
    state.sign_in.succeed(username, address);
    let web = &state.config.web;
    let token = session::create(&state.db, &account, web.session_lifetime()).await?;
    tracing::info!(username = %account.username, "signed in");
    let session_cookie =
        session::set_cookie(SESSION_COOKIE, &token, web.session_lifetime().as_secs(), web.cookie_secure, "Lax");
    let spent = session::set_cookie(LOGIN_CSRF_COOKIE, "", 0, web.cookie_secure, "Strict");
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(SET_COOKIE, session_cookie.parse().expect("cookie text is ASCII"));
    response.headers_mut().append(SET_COOKIE, spent.parse().expect("cookie text is ASCII"));
    Ok(response)
}

/// `POST /logout`: ends the session (the form's token proves it came from our page).
pub async fn logout(
    State(state): State<AppState>,
    user: WebUser,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    CsrfForm::check(form, &user)?;
    session::end(&state.db, &user.token).await?;
    let cleared = session::set_cookie(SESSION_COOKIE, "", 0, state.config.web.cookie_secure, "Lax");
    Ok(([(SET_COOKIE, cleared)], Redirect::to("/login")).into_response())
}
