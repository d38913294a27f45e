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
