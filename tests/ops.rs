//! Operations routes through `app().oneshot(...)`: health, readiness, metrics, the
//! OpenAPI document and its page, fallbacks, the served model, and model reloads
//! (success, unchanged, refused, missing, no valid model → 503, reload under load).

mod common;

use std::time::Duration;

use axum::http::{Method, header};
use common::{Backend, TestApp, request, write_test_package};
use serde_json::{Value, json};

#[tokio::test]
async fn health_readiness_metrics_and_fallbacks() {
    let t = TestApp::start(Backend::Sqlite, &[]).await;
    assert_eq!(t.get("/healthz", None).await.expect(200)["status"], "ok");
    let ready = t.get("/readyz", None).await.expect(200);
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["model"], "placeholder@0.0.0");
    assert_eq!(ready["placeholder_model"], true);

    t.moderate(&json!({"input": ["a", "b"]})).await.expect(200);
    let metrics = t.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for needle in [
        "memeguard_http_requests_total{route=\"/v1/moderations\",method=\"POST\",status=\"200\"} 1",
        "memeguard_http_request_duration_seconds_count{route=\"/v1/moderations\"} 1",
        "memeguard_batch_size_count",
        "memeguard_inference_seconds_bucket",
        "memeguard_queue_depth 0",
        "memeguard_decisions_total",
        "memeguard_model_info{model=\"placeholder@0.0.0\",placeholder=\"true\"} 1",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }
    let decisions: u64 = text
        .lines()
        .filter(|l| l.starts_with("memeguard_decisions_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(decisions, 2);

    let reply = t.get("/no/such/route", None).await;
    reply.expect(404);
    let reply = t.send(request("DELETE", "/v1/moderations", None).body(axum::body::Body::empty()).unwrap()).await;
    reply.expect(405);
    // The landing page: the served model and the entry points for people and platforms.
    let index = t.get("/", None).await;
    assert_eq!(index.status, 200);
    let page = index.text();
    for needle in [
        "placeholder@0.0.0",
        "untrained placeholder",
        "href=\"/upload\"",
        "href=\"/review\"",
        "href=\"/docs\"",
        "/v1/moderations",
        "/static/app.css",
    ] {
        assert!(page.contains(needle), "the landing page lacks {needle}: {page}");
    }
    t.finish().await;
}

#[tokio::test]
async fn metrics_can_require_an_admin_key() {
    let t = TestApp::start(Backend::Sqlite, &["--protect-metrics"]).await;
    t.get("/metrics", None).await.expect(401);
    t.get("/metrics", Some(&t.moderator_key)).await.expect(403);
    assert_eq!(t.get("/metrics", Some(&t.admin_key)).await.status, 200);
    t.finish().await;
}

/// Every operation in the OpenAPI document is routed (not the 404 fallback, not 405),
/// and the page lists them all.
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let t = TestApp::start(Backend::Sqlite, &[]).await;
    let doc = t.get("/openapi.json", None).await.expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let page = t.get("/docs", None).await.text();
    let mut operations = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, _) in ops.as_object().unwrap() {
            operations += 1;
            let concrete = path.replace("{id}", "1");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let reply = t
                .send(request(method.as_str(), &concrete, Some(&t.admin_key)).body(axum::body::Body::empty()).unwrap())
                .await;
            assert_ne!(reply.status, 405, "{method} {path} is documented but not routed");
            if reply.status == 404 {
                assert!(!reply.message().contains("no such route"), "{method} {path} is documented but not routed");
            }
            assert!(page.contains(&format!("<code>{path}</code>")), "/docs lacks {path}");
        }
    }
    // Every route of the API is documented: the router's own table against the document.
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let routed: std::collections::BTreeSet<(String, String)> =
        memeguard::routes::table().into_iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(unrouted.is_empty(), "documented but not API routes: {unrouted:?}");
    assert_eq!(operations, routed.len());
    t.finish().await;
}

#[tokio::test]
async fn the_model_route_shows_the_manifest() {
    let t = TestApp::start(Backend::Sqlite, &[]).await;
    let model = t.get("/v1/model", Some(&t.scorer_key)).await.expect(200);
    assert_eq!(model["id"], "placeholder@0.0.0");
    assert_eq!(model["manifest"]["placeholder"], true);
    assert!(model["manifest"]["threshold"].is_number());
    t.get("/v1/model", None).await.expect(401);
    t.finish().await;
}

#[tokio::test]
async fn reload_swaps_refuses_bad_packages_and_keeps_serving() {
    let t = TestApp::start(Backend::Sqlite, &[]).await;
    let admin = t.admin_key.clone();
    let models = t.models.path().to_path_buf();

    // Nothing new: unchanged.
    let same = t.post_json("/v1/admin/reload", Some(&admin), &json!({})).await.expect(200);
    assert_eq!((same["changed"].clone(), same["model"].clone()), (json!(false), json!("placeholder@0.0.0")));

    // A trained (non-placeholder) package wins over the placeholder; every later
    // decision names it, with its threshold.
    write_test_package(&models.join("demo/1.0.0"), "demo", "1.0.0", "2025-01-01T00:00:00Z", 0.25);
    let swapped = t
        .send(request("POST", "/v1/admin/reload", Some(&admin)).body(axum::body::Body::empty()).unwrap())
        .await
        .expect(200);
    assert_eq!(swapped["model"], "demo@1.0.0");
    assert_eq!(swapped["previous"], "placeholder@0.0.0");
    assert_eq!(swapped["changed"], true);
    let body = t.moderate(&json!({"input": "x"})).await.expect(200);
    assert_eq!(body["model"], "demo@1.0.0");
    assert_eq!(body["results"][0]["threshold"], 0.25);
    assert_eq!(body["results"][0]["placeholder_model"], false);

    // A newer package with a damaged model file is refused (422); demo keeps serving.
    write_test_package(&models.join("demo/2.0.0"), "demo", "2.0.0", "2025-06-01T00:00:00Z", 0.5);
    std::fs::write(models.join("demo/2.0.0/model.onnx"), b"garbage").unwrap();
    let reply = t.post_json("/v1/admin/reload", Some(&admin), &json!({})).await;
    reply.expect(422);
    assert!(reply.message().contains("demo@2.0.0") && reply.message().contains("sha256"), "{}", reply.message());
    assert_eq!(t.moderate(&json!({"input": "x"})).await.expect(200)["model"], "demo@1.0.0");

    // Choosing a package by name@version, and an unknown one (404).
    let back =
        t.post_json("/v1/admin/reload", Some(&admin), &json!({"package": "placeholder@0.0.0"})).await.expect(200);
    assert_eq!(back["model"], "placeholder@0.0.0");
    t.post_json("/v1/admin/reload", Some(&admin), &json!({"package": "nope@9"})).await.expect(404);
    t.post_json("/v1/admin/reload", Some(&admin), &json!({"packages": "x"})).await.expect(400);

    let metrics = t.get("/metrics", None).await.text();
    assert!(metrics.contains("memeguard_model_reloads_total{outcome=\"refused\"} 2"), "{metrics}");
    t.finish().await;
}

#[tokio::test]
async fn without_a_valid_model_scoring_is_503_until_a_reload() {
    // The only package is damaged: the server starts, but does not pretend to be ready.
    let models = tempfile::tempdir().unwrap();
    write_test_package(&models.path().join("broken/1"), "broken", "1", "2025-01-01T00:00:00Z", 0.5);
    std::fs::write(models.path().join("broken/1/tokenizer.json"), b"{}").unwrap();
    let t = TestApp::start_with_models(Backend::Sqlite, models, &[]).await;

    let reply = t.moderate(&json!({"input": "x"})).await;
    reply.expect(503);
    assert!(reply.message().contains("no valid model"), "{}", reply.message());
    let ready = t.get("/readyz", None).await;
    assert_eq!(ready.status, 503);
    let ready = ready.json();
    assert_eq!(ready["ready"], false);
    assert!(ready["model_error"].as_str().unwrap().contains("broken@1"));
    assert_eq!(t.decision_count().await, 0);

    write_test_package(&t.models.path().join("fixed/1"), "fixed", "1", "2025-02-01T00:00:00Z", 0.5);
    t.post_json("/v1/admin/reload", Some(&t.admin_key), &json!({})).await.expect(200);
    t.moderate(&json!({"input": "x"})).await.expect(200);
    assert_eq!(t.get("/readyz", None).await.expect(200)["model"], "fixed@1");
    t.finish().await;
}

#[tokio::test]
async fn an_empty_models_dir_gets_the_placeholder() {
    let t = TestApp::start_with_models(Backend::Sqlite, tempfile::tempdir().unwrap(), &[]).await;
    assert!(t.models.path().join("placeholder/0.0.0/manifest.json").is_file());
    assert_eq!(t.moderate(&json!({"input": "x"})).await.expect(200)["model"], "placeholder@0.0.0");
    t.finish().await;
}

/// Packages are swapped back and forth while clients keep scoring: no request fails,
/// and every decision names one of the two models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request() {
    let t = TestApp::start(Backend::Sqlite, &["--max-wait-ms", "2"]).await;
    write_test_package(&t.models.path().join("demo/1"), "demo", "1", "2025-01-01T00:00:00Z", 0.5);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..6 {
        let (app, key, stop) = (t.app(), t.scorer_key.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            use tower::ServiceExt as _;
            let mut statuses = Vec::new();
            let mut models = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let request = request("POST", "/v1/moderations", Some(&key))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(axum::body::Body::from(json!({"input": [format!("client {c} request {i}")]}).to_string()))
                    .unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                statuses.push(response.status().as_u16());
                let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
                if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                    models.push(v["model"].as_str().unwrap_or("").to_string());
                }
                i += 1;
            }
            (statuses, models)
        }));
    }
    for round in 0..6 {
        let package = if round % 2 == 0 { "demo@1" } else { "placeholder@0.0.0" };
        let reply = t.post_json("/v1/admin/reload", Some(&t.admin_key), &json!({"package": package})).await.expect(200);
        assert_eq!(reply["changed"], true);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    let mut by_model = std::collections::BTreeMap::<String, usize>::new();
    for client in clients {
        let (statuses, models) = client.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "a request failed during reloads: {statuses:?}");
        total += statuses.len();
        for m in models {
            *by_model.entry(m).or_default() += 1;
        }
    }
    assert_eq!(t.decision_count().await as usize, total);
    assert!(by_model.keys().all(|m| m == "demo@1" || m == "placeholder@0.0.0"), "{by_model:?}");
    assert_eq!(by_model.len(), 2, "both models served during the test: {by_model:?}");
    t.finish().await;
}

#[tokio::test]
async fn a_pinned_package_directory_is_served_and_nothing_is_written() {
    let elsewhere = tempfile::tempdir().unwrap();
    let package = elsewhere.path().join("demo/3");
    write_test_package(&package, "demo", "3", "2025-01-01T00:00:00Z", 0.5);
    let models = tempfile::tempdir().unwrap();
    let t = TestApp::start_with_models(Backend::Sqlite, models, &["--model", &package.display().to_string()]).await;
    assert_eq!(t.moderate(&json!({"input": "x"})).await.expect(200)["model"], "demo@3");
    assert_eq!(std::fs::read_dir(t.models.path()).unwrap().count(), 0, "no placeholder next to a pinned package");
    // Over HTTP only names are accepted, never paths.
    let path = package.display().to_string();
    t.post_json("/v1/admin/reload", Some(&t.admin_key), &json!({"package": path})).await.expect(404);
    t.finish().await;
}
