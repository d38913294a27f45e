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
