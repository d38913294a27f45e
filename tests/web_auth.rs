//! The moderators' pages through `app().oneshot(...)` on a real database: sign-in,
//! sessions, CSRF on every form, roles, redirects for the signed-out, escaping, the review
//! queue's order and the dashboard's figures.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::images::png;
use common::{Backend, Reply, TestApp, backends, multipart};
use memeguard::auth::Role;
use memeguard::db::decisions::{self, NewDecision};
use memeguard::db::reviews::{self, Label};
use memeguard::web::accounts::{self, AccountError};
use memeguard::web::queries::{self, QueueFilter};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// A browser over `oneshot`: keeps cookies, reads the CSRF token out of pages.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
    /// The client address a real connection would give (`ConnectInfo`), if any.
    address: Option<SocketAddr>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser { app, cookies: BTreeMap::new(), address: None }
    }

    /// A browser whose requests come from `ip`.
    fn at(app: &'a TestApp, ip: &str) -> Self {
        Browser { address: Some(SocketAddr::new(ip.parse().unwrap(), 40000)), ..Browser::new(app) }
    }

    async fn send(&mut self, builder: axum::http::request::Builder, body: Body) -> Reply {
        let mut builder = builder;
        if let Some(address) = self.address {
            builder = builder.extension(ConnectInfo(address));
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            builder = builder.header(header::COOKIE, jar.join("; "));
        }
        let reply = self.app.send(builder.body(body).unwrap()).await;
        for set in reply.headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        reply
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::builder().method("GET").uri(path), Body::empty()).await
    }

    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let builder = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(builder, Body::from(body.join("&"))).await
    }

    async fn post_multipart(&mut self, path: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Reply {
        let (content_type, body) = multipart(parts);
        let builder = Request::builder().method("POST").uri(path).header(header::CONTENT_TYPE, content_type);
        self.send(builder, Body::from(body)).await
    }

    /// Signs in through the form; returns the session's CSRF token (from the next page).
    async fn sign_in(&mut self, username: &str, password: &str) -> String {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let token = csrf_of(&form);
        let reply = self
            .post_form(
                "/login",
                &[("username", username), ("password", password), ("csrf", &token), ("next", "/review")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(location(&reply), "/review");
        let page = self.get("/review").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        csrf_of(&page)
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(reply: &Reply) -> String {
    let text = reply.text();
    let at = text.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field in {text}"));
    let rest = &text[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn location(reply: &Reply) -> String {
    reply.headers.get(header::LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn with_account(backend: Backend, role: Role) -> TestApp {
    let t = TestApp::start(backend, &["--ocr", "false"]).await;
    accounts::create(&t.state.db, "alice", role, PASSWORD).await.unwrap();
    t
}

/// Records a decision with a chosen score (the placeholder model's scores cannot be chosen).
async fn decision(t: &TestApp, score: f64, threshold: f64, text: &str) -> i64 {
    let d = NewDecision {
        model: "test@1".into(),
        threshold,
        flagged: score >= threshold,
        caller: "key:1".into(),
        ..common::sample_decision("modr-test", text, score)
    };
    decisions::insert_all(&t.state.db, &[d]).await.unwrap()[0]
}

async fn review_count(t: &TestApp, id: i64) -> usize {
    reviews::history(&t.state.db, id).await.unwrap().len()
}

#[tokio::test]
async fn signed_out_users_are_sent_to_the_login_page() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    let mut b = Browser::new(&t);
    for path in ["/upload", "/review", "/review/1", "/review/1/image", "/model", "/dashboard"] {
        let reply = b.get(path).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&reply), format!("/login?next={path}"), "{path}");
    }
    // The query survives the detour, encoded.
    assert_eq!(
        location(&b.get("/review?status=unreviewed&page=1").await),
        "/login?next=/review%3Fstatus%3Dunreviewed%26page%3D1"
    );
    // Posts too (without a "come back" target).
    let reply = b.post_form("/review/1", &[("action", "override")]).await;
    assert_eq!((reply.status, location(&reply)), (StatusCode::SEE_OTHER, "/login".to_string()));
    // An API key is not a browser session: a scorer key is sent to sign in too.
    let keyed = t.send(common::request("GET", "/review", Some(&t.scorer_key)).body(Body::empty()).unwrap()).await;
    assert_eq!(keyed.status, StatusCode::SEE_OTHER);
    // A forged session cookie is no session.
    b.cookies.insert("mg_session".into(), "forged".into());
    assert_eq!(b.get("/review").await.status, StatusCode::SEE_OTHER);
    t.finish().await;
}

#[tokio::test]
async fn sign_in_checks_password_and_csrf_and_sets_a_safe_cookie() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    let mut b = Browser::new(&t);

    let form = b.get("/login").await;
    let token = csrf_of(&form);
    let csrf_cookie = form.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");

    // Wrong password: 401, the form again, no session.
    let wrong = b.post_form("/login", &[("username", "alice"), ("password", "nope nope nope"), ("csrf", &token)]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("Wrong username or password"));
    assert!(!b.cookies.contains_key("mg_session"));
    // An unknown user reads the same.
    let token = csrf_of(&wrong);
    let unknown = b.post_form("/login", &[("username", "mallory"), ("password", PASSWORD), ("csrf", &token)]).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.text().contains("Wrong username or password"));

    // Right password without the form's token (or with another one): refused.
    let token = csrf_of(&unknown);
    for bad in ["", "x", &token[..token.len() - 1]] {
        let reply = b.post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf", bad)]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "token `{bad}`");
        assert!(!b.cookies.contains_key("mg_session"));
    }
    // The token without its cookie (a cross-site post): refused.
    let mut stranger = Browser::new(&t);
    let reply = stranger.post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf", &token)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Right password and token: a session cookie, HttpOnly, SameSite, not Secure by default.
    let ok = b
        .post_form(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf", &token), ("next", "//evil.example")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/", "an off-site `next` is ignored");
    let session = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("mg_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"),
        "{session}"
    );
    let page = b.get("/review").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("alice"));
    let headers = &page.headers;
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    t.finish().await;
}

#[tokio::test]
async fn secure_cookies_when_configured() {
    let t = TestApp::start(Backend::Sqlite, &["--ocr", "false", "--cookie-secure"]).await;
    accounts::create(&t.state.db, "alice", Role::Admin, PASSWORD).await.unwrap();
    let mut b = Browser::new(&t);
    let token = csrf_of(&b.get("/login").await);
    let ok = b.post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf", &token)]).await;
    let cookies: Vec<String> =
        ok.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("mg_session=") && c.ends_with("; Secure")), "{cookies:?}");
    t.finish().await;
}

#[tokio::test]
async fn every_form_post_without_the_token_fails() {
    for backend in backends() {
        let t = with_account(backend, Role::Moderator).await;
        let id = decision(&t, 0.9, 0.5, "a meme").await;
        let mut b = Browser::new(&t);
        let csrf = b.sign_in("alice", PASSWORD).await;
        let path = format!("/review/{id}");

        // Review: no token, a wrong token → 403 and nothing recorded.
        for fields in [vec![("action", "override")], vec![("action", "override"), ("csrf", "forged")]] {
            let reply = b.post_form(&path, &fields).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{backend:?}");
            assert!(reply.text().contains("reload the page"));
        }
        assert_eq!(review_count(&t, id).await, 0);

        // Upload: no token → 403 and no decision.
        let before = t.decision_count().await;
        let image = png(16, 16, 3);
        let reply = b.post_multipart("/upload", &[("image", Some("m.png"), &image), ("text", None, b"hello")]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(t.decision_count().await, before);

        // Sign-out: no token → 403 and the session still works.
        assert_eq!(b.post_form("/logout", &[]).await.status, StatusCode::FORBIDDEN);
        assert_eq!(b.get("/review").await.status, StatusCode::OK);

        // With the token each works.
        let reply = b.post_form(&path, &[("action", "override"), ("csrf", &csrf), ("note", "satire")]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let history = reviews::history(&t.state.db, id).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!((history[0].label.as_str(), history[0].reviewer.as_str()), ("not_hateful", "web:alice"));
        assert_eq!(history[0].note, "satire");
        let reply =
            b.post_multipart("/upload", &[("csrf", None, csrf.as_bytes()), ("image", Some("m.png"), &image)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(t.decision_count().await, before + 1);
        let reply = b.post_form("/logout", &[("csrf", &csrf)]).await;
        assert_eq!((reply.status, location(&reply)), (StatusCode::SEE_OTHER, "/login".to_string()));
        // The old session is gone, even if the cookie were replayed.
        assert_eq!(b.get("/review").await.status, StatusCode::SEE_OTHER);
        t.finish().await;
    }
}

#[tokio::test]
async fn a_scorer_key_cannot_review_and_scorers_get_no_account() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    let id = decision(&t, 0.2, 0.5, "x").await;
    let path = format!("/v1/decisions/{id}/reviews");
    let body = json!({"label": "hateful", "note": "n"});
    let refused = t.post_json(&path, Some(&t.scorer_key), &body).await;
    refused.expect(403);
    assert_eq!(review_count(&t, id).await, 0);
    t.post_json(&path, Some(&t.moderator_key), &body).await.expect(201);
    assert_eq!(review_count(&t, id).await, 1);

    assert!(matches!(
        accounts::create(&t.state.db, "bob", Role::Scorer, PASSWORD).await,
        Err(AccountError::ScorerAccount)
    ));
    assert!(matches!(
        accounts::create(&t.state.db, "alice", Role::Admin, PASSWORD).await,
        Err(AccountError::Exists(_))
    ));
    assert!(matches!(
        accounts::create(&t.state.db, "carol", Role::Admin, "short").await,
        Err(AccountError::BadPassword)
    ));
    // A disabled account cannot sign in, and its sessions end.
    let mut b = Browser::new(&t);
    b.sign_in("alice", PASSWORD).await;
    assert!(accounts::disable(&t.state.db, "alice").await.unwrap());
    assert_eq!(b.get("/review").await.status, StatusCode::SEE_OTHER);
    let token = csrf_of(&b.get("/login").await);
    let reply = b.post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf", &token)]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    t.finish().await;
}

#[tokio::test]
async fn only_admins_reload_models_from_the_pages() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    accounts::create(&t.state.db, "root", Role::Admin, PASSWORD).await.unwrap();
    let mut moderator = Browser::new(&t);
    let csrf = moderator.sign_in("alice", PASSWORD).await;
    assert!(!moderator.get("/model").await.text().contains("id=\"reload\""), "no button for moderators");
    let refused = moderator.post_form("/model/reload", &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text().contains("needs the admin role"));

    let mut admin = Browser::new(&t);
    let csrf = admin.sign_in("root", PASSWORD).await;
    assert!(admin.get("/model").await.text().contains("id=\"reload\""));
    assert_eq!(admin.post_form("/model/reload", &[]).await.status, StatusCode::FORBIDDEN, "no token");
    let done = admin.post_form("/model/reload", &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.text().contains("placeholder@0.0.0 is already the newest package"), "{}", done.text());
    t.finish().await;
}

#[tokio::test]
async fn the_cli_creates_accounts_that_can_sign_in() {
    let t = TestApp::start(Backend::Sqlite, &["--ocr", "false"]).await;
    let create = |name: &str, password: &str| {
        let mut child = Command::new(common::server::BINARY)
            .args(["users", "create", "--role", "admin", "--username", name, "--database-url", &t.db.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = create("root", PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("with role admin"));
    let again = create("root", PASSWORD);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let mut b = Browser::new(&t);
    b.sign_in("root", PASSWORD).await;
    let page = b.get("/model").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("UNTRAINED PLACEHOLDER"), "the model page says so loudly");
    t.finish().await;
}

#[tokio::test]
async fn user_supplied_text_is_escaped_and_errors_show_no_internals() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    let mut b = Browser::new(&t);
    let csrf = b.sign_in("alice", PASSWORD).await;
    let evil = "<script>alert(1)</script>\"'&";
    let reply = b.post_multipart("/upload", &[("csrf", None, csrf.as_bytes()), ("text", None, evil.as_bytes())]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let html = reply.text();
    assert!(!html.contains("<script>alert"), "raw markup in the page");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#39;&#38;"), "{html}");
    let id = queries::review_queue(&t.state.db, &QueueFilter::default(), 1, 0).await.unwrap()[0].id;
    for path in ["/review".to_string(), format!("/review/{id}")] {
        let html = b.get(&path).await.text();
        assert!(!html.contains("<script>alert") && html.contains("&#60;script&#62;"), "{path}");
    }
    // Not found and bad input: an HTML page with a plain message, no JSON, no internals.
    let missing = b.get("/review/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text().contains("no decision 999999") && missing.text().starts_with("<!doctype html>"));
    assert_eq!(b.get("/review/abc").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get("/review?verdict=maybe").await.status, StatusCode::BAD_REQUEST);
    // A broken picture is reported on the form.
    let reply = b
        .post_multipart("/upload", &[("csrf", None, csrf.as_bytes()), ("image", Some("x.png"), b"not an image")])
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.text().contains("class=\"error\""));
    t.finish().await;
}

#[tokio::test]
async fn queue_puts_unreviewed_and_uncertain_first_and_dashboard_counts() {
    for backend in backends() {
        let t = with_account(backend, Role::Moderator).await;
        // Distances to the threshold: 0.30, 0.05, 0.20, 0.01 (reviewed), 0.40.
        let far = decision(&t, 0.8, 0.5, "far").await;
        let close = decision(&t, 0.45, 0.5, "close").await;
        let mid = decision(&t, 0.7, 0.5, "mid").await;
        let reviewed = decision(&t, 0.51, 0.5, "reviewed").await;
        let farthest = decision(&t, 0.1, 0.5, "farthest").await;
        reviews::add(&t.state.db, reviewed, Label::NotHateful, "web:alice", "").await.unwrap();
        reviews::add(&t.state.db, far, Label::Hateful, "web:alice", "").await.unwrap();
        // `far` is reviewed too now: unreviewed ones come first, by uncertainty.
        let order: Vec<i64> = queries::review_queue(&t.state.db, &QueueFilter::default(), 10, 0)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(order, vec![close, mid, farthest, reviewed, far], "{backend:?}");
        let unreviewed = QueueFilter { reviewed: Some(false), ..QueueFilter::default() };
        assert_eq!(queries::review_queue(&t.state.db, &unreviewed, 10, 0).await.unwrap().len(), 3);
        let flagged = QueueFilter { flagged: Some(true), ..QueueFilter::default() };
        assert_eq!(queries::review_queue(&t.state.db, &flagged, 10, 0).await.unwrap().len(), 3);
        assert_eq!(queries::review_queue(&t.state.db, &QueueFilter::default(), 2, 2).await.unwrap()[0].id, farthest);

        let stats = queries::dashboard(&t.state.db, 14).await.unwrap();
        assert_eq!((stats.decisions, stats.flagged, stats.reviewed), (5, 3, 2));
        // `far` (flagged, labelled hateful) agrees; `reviewed` (flagged, labelled not) does not.
        assert_eq!(stats.agreed, 1);
        assert_eq!(stats.per_day.len(), 14);
        assert_eq!(stats.per_day.last().unwrap().decisions, 5, "today's bar");
        assert_eq!(stats.per_day.last().unwrap().flagged, 3);
        assert_eq!(stats.per_day.iter().map(|d| d.decisions).sum::<i64>(), 5);

        let mut b = Browser::new(&t);
        b.sign_in("alice", PASSWORD).await;
        let page = b.get("/dashboard").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains("60.0%") && page.text().contains("50.0%"), "flagged rate and agreement");
        let queue = b.get("/review?status=unreviewed").await.text();
        let at = |id: i64| queue.find(&format!("href=\"/review/{id}\" class=\"open-decision\"")).unwrap_or(usize::MAX);
        assert!(at(close) < at(mid) && at(mid) < at(farthest) && at(farthest) < usize::MAX);
        assert_eq!(at(reviewed), usize::MAX, "filtered out");
        t.finish().await;
    }
}

#[tokio::test]
async fn sign_in_never_redirects_off_site() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    let off_site = [
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "/\x0b/evil.example",
        "/\r\n/evil.example",
        "https://evil.example/",
        "http:/evil.example",
        "evil.example",
        "/",
    ];
    for next in off_site {
        // The form carries the sanitised target …
        let mut b = Browser::new(&t);
        let form = b.get(&format!("/login?next={}", encode(next))).await;
        assert_eq!(form.status, StatusCode::OK, "{next:?}: {}", form.text());
        assert!(form.text().contains("name=\"next\" value=\"/\""), "{next:?}: {}", form.text());
        // … and a posted one is checked again.
        let token = csrf_of(&form);
        let reply = b
            .post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf", &token), ("next", next)])
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{next:?}: {}", reply.text());
        assert_eq!(location(&reply), "/", "{next:?}");
        // Signed in, the form sends straight on: still never off-site.
        let again = b.get(&format!("/login?next={}", encode(next))).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(location(&again), "/", "{next:?}");
    }
    // A path of this site is kept.
    let mut b = Browser::new(&t);
    let token = csrf_of(&b.get("/login").await);
    let reply = b
        .post_form(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf", &token), ("next", "/dashboard?days=7")],
        )
        .await;
    assert_eq!(location(&reply), "/dashboard?days=7");
    t.finish().await;
}

/// Signs in at the form; returns the reply.
async fn try_sign_in(b: &mut Browser<'_>, username: &str, password: &str) -> Reply {
    let token = csrf_of(&b.get("/login").await);
    b.post_form("/login", &[("username", username), ("password", password), ("csrf", &token)]).await
}

fn retry_after(reply: &Reply) -> u64 {
    reply.headers.get(header::RETRY_AFTER).expect("Retry-After").to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account_and_per_address() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    accounts::create(&t.state.db, "bob", Role::Moderator, PASSWORD).await.unwrap();
    let mut attacker = Browser::at(&t, "192.0.2.1");
    // Five free failures, then a sixth that closes the account for a second.
    for i in 0..6 {
        let reply = try_sign_in(&mut attacker, "alice", &format!("guess {i}")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // Closed: even the right password is refused, unchecked, with when to come back.
    let closed = try_sign_in(&mut attacker, "alice", PASSWORD).await;
    assert_eq!(closed.status, StatusCode::TOO_MANY_REQUESTS, "{}", closed.text());
    assert!(closed.text().contains("Too many failed sign-ins"), "{}", closed.text());
    assert!(!attacker.cookies.contains_key("mg_session"));
    // The real user elsewhere is kept out of this account only briefly (the account's
    // delay never exceeds a minute) …
    let mut alice = Browser::at(&t, "198.51.100.7");
    let reply = try_sign_in(&mut alice, "alice", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&reply);
    assert!((1..=60).contains(&wait), "{wait}");
    // … other accounts are not affected …
    let mut bob = Browser::at(&t, "198.51.100.8");
    assert_eq!(try_sign_in(&mut bob, "bob", PASSWORD).await.status, StatusCode::SEE_OTHER);
    // … and after the wait the real user signs in, which opens the account again.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(try_sign_in(&mut alice, "alice", PASSWORD).await.status, StatusCode::SEE_OTHER);
    let mut attacker = Browser::at(&t, "192.0.2.1");
    assert_eq!(try_sign_in(&mut attacker, "alice", "guess again").await.status, StatusCode::UNAUTHORIZED);

    // One address guessing across many accounts is closed by its own count (20 free).
    let mut sprayer = Browser::at(&t, "203.0.113.9");
    for i in 0..21 {
        let reply = try_sign_in(&mut sprayer, &format!("user{i}"), "password1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let reply = try_sign_in(&mut sprayer, "bob", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text());
    assert!(retry_after(&reply) >= 1);
    // Bob from his own address is fine.
    let mut bob = Browser::at(&t, "198.51.100.8");
    assert_eq!(try_sign_in(&mut bob, "bob", PASSWORD).await.status, StatusCode::SEE_OTHER);
    t.finish().await;
}

#[tokio::test]
async fn the_decision_page_names_the_reviewed_decision_that_decided_it() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    let reviewed = decision(&t, 0.2, 0.5, "a meme").await;
    let mut d = common::sample_decision("modr-matched", "a meme", 1.0);
    d.model_score = 0.2;
    d.review_match = Some((reviewed, "pdq", 12.0, "hateful"));
    let id = decisions::insert_all(&t.state.db, &[d]).await.unwrap()[0];
    let mut b = Browser::new(&t);
    b.sign_in("alice", PASSWORD).await;
    let page = b.get(&format!("/review/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains(&format!(
            "matched decision <a href=\"/review/{reviewed}\">#{reviewed}</a> (reviewed as hateful;"
        )),
        "{html}"
    );
    assert!(html.contains("PDQ distance 12 of 256 bits") && html.contains("the model alone scored 0.200"), "{html}");
    assert!(html.contains("The verdict (from a reviewed decision)"), "{html}");
    let plain = b.get(&format!("/review/{reviewed}")).await.text();
    assert!(!plain.contains("review-match") && plain.contains("The model said"));
    t.finish().await;
}

#[tokio::test]
async fn an_upload_that_matches_a_reviewed_meme_names_it() {
    let t = with_account(Backend::Sqlite, Role::Moderator).await;
    let mut b = Browser::new(&t);
    let csrf = b.sign_in("alice", PASSWORD).await;
    let image = png(16, 16, 3);
    let parts: [(&str, Option<&str>, &[u8]); 3] =
        [("csrf", None, csrf.as_bytes()), ("image", Some("m.png"), &image), ("text", None, b"hello there")];
    let first = b.post_multipart("/upload", &parts).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(!first.text().contains("review-match"), "nothing reviewed yet");
    let id = decisions::list(&t.state.db, &Default::default(), 1).await.unwrap()[0].id;
    let reply = b.post_form(&format!("/review/{id}"), &[("action", "override"), ("csrf", &csrf)]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let again = b.post_multipart("/upload", &parts).await.text();
    assert!(again.contains(&format!("matched decision <a href=\"/review/{id}\">#{id}</a>")), "{again}");
    assert!(again.contains("same picture and text"), "{again}");
    t.finish().await;
}
