//! The server under hostile input and faults (issue #14), through `app().oneshot(...)` on
//! a real database: label cardinality of the metrics.

mod common;

use axum::body::Body;
use common::{Backend, TestApp, request};

#[tokio::test]
async fn made_up_methods_share_one_metrics_label() {
    let t = TestApp::start(Backend::Sqlite, &["--ocr", "false"]).await;
    for method in ["FOO", "BREW", "XYZZY-1", "PROPFIND"] {
        let reply = t.send(request(method, "/healthz", None).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, 405, "{method}");
    }
    let text = t.get("/metrics", None).await.text();
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("memeguard_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    // (This /metrics request is counted after it renders.)
    assert_eq!(methods, ["other"].into_iter().collect(), "{text}");
    assert!(
        text.contains("memeguard_http_requests_total{route=\"/healthz\",method=\"other\",status=\"405\"} 4"),
        "{text}"
    );
    t.finish().await;
}

#[tokio::test]
async fn a_body_that_never_ends_gets_408() {
    use futures_util::StreamExt as _;
    let t = TestApp::start(Backend::Sqlite, &["--ocr", "false", "--request-timeout-secs", "1"]).await;
    let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from("{\"input\": \"a")) });
    let body = Body::from_stream(first.chain(futures_util::stream::pending()));
    let started = std::time::Instant::now();
    let reply = t.post_raw("/v1/moderations", Some(&t.scorer_key), "application/json", body).await;
    let message = reply.expect(408)["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("--request-timeout-secs"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(t.decision_count().await, 0);
    t.finish().await;
}

#[tokio::test]
async fn pixel_bombs_are_refused_from_their_headers_before_decoding() {
    use common::images::{b64, png, png_header_claiming};
    use serde_json::json;
    let t = TestApp::start(
        Backend::Sqlite,
        &["--ocr", "false", "--max-request-pixels", "40000000", "--max-pixels-in-flight", "60000000"],
    )
    .await;
    // 16 copies of a small file that claims 6000×6000 (within the per-image limit): 576
    // million pixels, ~1.7 GB decoded. Refused from the headers: 413, nothing decoded.
    let bomb = b64(&png_header_claiming(6000, 6000));
    let items: Vec<_> = (0..16).map(|_| json!({"image": bomb})).collect();
    let reply = t.moderate(&json!({"input": items})).await;
    reply.expect(413);
    assert!(reply.message().contains("576000000 pixels") && reply.message().contains("--max-request-pixels"));
    assert_eq!(t.state.pixels.in_flight(), 0);

    // Within the request's limit, but other requests hold most of the global budget: 429
    // with Retry-After, again before decoding.
    let held = t.state.pixels.admit(30_000_000).unwrap();
    let one = json!({"input": [{"image": bomb}]});
    let reply = t.moderate(&one).await;
    reply.expect(429);
    assert!(reply.message().contains("--max-pixels-in-flight"), "{}", reply.message());
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    assert!(t.get("/metrics", None).await.text().contains("memeguard_pixels_in_flight 30000000\n"));
    drop(held);
    // With the budget free the same image is admitted, and only then refused by the
    // decoder (its body is not a real image).
    t.moderate(&one).await.expect(400);
    // A real image is admitted, scored, and its pixels given back.
    let real = json!({"input": [{"image": b64(&png(300, 200, 1)), "text": "x"}]});
    t.moderate(&real).await.expect(200);
    assert_eq!(t.state.pixels.in_flight(), 0);
    assert_eq!(t.decision_count().await, 1);
    t.finish().await;
}

#[tokio::test]
async fn a_lone_request_does_not_wait_for_a_batch_to_fill() {
    use serde_json::json;
    // A long max wait: a free model thread must still run a lone pair at once.
    let t = TestApp::start(Backend::Sqlite, &["--ocr", "false", "--max-wait-ms", "20000"]).await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        t.moderate(&json!({"input": format!("one at a time {i}")})).await.expect(200);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    t.finish().await;
}

/// Sets `PRAGMA max_page_count` on every connection of the pool (it is per connection):
/// `None` lifts it; `Some(0)` stops the file from growing at all.
async fn limit_pages(db: &memeguard::db::Db, pages: Option<u64>) {
    let memeguard::db::Db::Sqlite(pool) = db else { panic!("SQLite only") };
    // Hold every connection at once, so that each of them gets the pragma.
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(pool.acquire().await.unwrap());
    }
    for connection in &mut connections {
        let size: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut **connection).await.unwrap();
        let limit = pages.map_or(1 << 30, |p| size as u64 + p);
        sqlx::query(&format!("PRAGMA max_page_count = {limit}")).execute(&mut **connection).await.unwrap();
    }
}

/// The decision ids committed, as a new connection sees them (the server's own
/// connections could see rows of a transaction that never commits).
async fn stored_ids(t: &TestApp) -> std::collections::BTreeSet<i64> {
    let db = memeguard::db::Db::connect(&t.db.url).await.unwrap();
    let ids = memeguard::with_pool!(&db, pool => {
        sqlx::query_scalar::<_, i64>("SELECT id FROM decisions").fetch_all(pool).await.unwrap()
    });
    db.close().await;
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_gets_a_200_and_the_server_recovers_when_space_returns() {
    use serde_json::json;
    let t = std::sync::Arc::new(TestApp::start(Backend::Sqlite, &["--ocr", "false"]).await);
    // Fill the file's last pages so that the burst needs new ones.
    t.moderate(&json!({"input": "warm up"})).await.expect(200);
    limit_pages(&t.state.db, Some(0)).await;
    // The first write that finds the disk full: 503, and /readyz says so (its own probe
    // writes nothing new, so it would pass).
    let text = "disk full ".repeat(100);
    let lone: Vec<String> = (0..40).map(|k| format!("lone {k} {text}")).collect();
    t.moderate(&json!({"input": lone})).await.expect(503);
    let ready = t.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "{}", ready.text());

    // A concurrent burst: 16 clients × 12 requests of 3 pairs, each pair with ~1 KB text.
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (t, text) = (t.clone(), text.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..12 {
                    let input: Vec<String> = (0..3).map(|k| format!("{c}/{i}/{k} {text}")).collect();
                    let reply = t.moderate(&json!({"input": input})).await;
                    outcomes.push((reply.status.as_u16(), reply.json()));
                }
                outcomes
            })
        })
        .collect();
    let mut answered = std::collections::BTreeSet::new();
    let mut refused = 0;
    for client in clients {
        for (status, body) in client.await.unwrap() {
            match status {
                200 => answered
                    .extend(body["results"].as_array().unwrap().iter().map(|r| r["decision_id"].as_i64().unwrap())),
                503 => {
                    assert!(body["error"]["message"].as_str().unwrap().contains("retry later"), "{body}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    // Every 200 is in the log, and nothing else is (the warm-up aside).
    let mut stored = stored_ids(&t).await;
    stored.pop_first();
    assert_eq!(stored, answered, "{refused} requests refused");

    // Space returns: the same server takes writes again, without a restart.
    limit_pages(&t.state.db, None).await;
    for i in 0..5 {
        let body = t.moderate(&json!({"input": format!("after {i}")})).await.expect(200);
        let id = body["results"][0]["decision_id"].as_i64().unwrap();
        assert!(stored_ids(&t).await.contains(&id));
    }
    t.get("/readyz", None).await.expect(200);
    eprintln!("{} pairs answered, {refused} requests refused during the burst", answered.len());
    std::sync::Arc::into_inner(t).unwrap().finish().await;
}

#[tokio::test]
async fn a_deleted_database_file_makes_the_server_unready_and_answers_no_200() {
    use serde_json::json;
    let t = TestApp::start(Backend::Sqlite, &["--ocr", "false"]).await;
    t.moderate(&json!({"input": "before"})).await.expect(200);
    t.get("/readyz", None).await.expect(200);
    let path = std::path::PathBuf::from(t.db.url.strip_prefix("sqlite://").unwrap());

    // Deleted: connections to the unlinked file would "commit" into nothing.
    std::fs::remove_file(&path).unwrap();
    for i in 0..5 {
        let reply = t.moderate(&json!({"input": format!("after {i}")})).await;
        reply.expect(503);
    }
    let ready = t.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.json()["database_error"].is_string());
    assert!(!path.exists(), "no empty database was created in its place");
    t.finish().await;
}
