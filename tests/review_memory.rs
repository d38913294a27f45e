//! Review memory through the real server: a moderator's override changes the verdict
//! on the next request for the same meme (exact), the same picture re-encoded and resized
//! with the same text (pdq), and a meme whose nearest reviewed neighbour is the reviewed
//! one (embedding); each result names the reviewed decision; unrelated memes are not
//! matched; a retracted review stops matching. On SQLite, and PostgreSQL when configured.

mod common;

use common::images::data_url;
use common::{Backend, TestApp, backends, write_embedding_test_package};
use image::{ImageEncoder, Rgb, RgbImage};
use memeguard::memory::{MemoryConfig, MemoryMode, ReviewMemory};
use serde_json::{Value, json};

/// A textured picture (PDQ quality well above 50): smooth waves whose phase `seed` moves.
fn picture(seed: f32) -> RgbImage {
    RgbImage::from_fn(240, 200, |x, y| {
        let (x, y) = (x as f32, y as f32);
        let a = 128.0 + 90.0 * ((x / 11.0 + seed).sin() * (y / 17.0 - seed).cos());
        let b = 128.0 + 80.0 * ((x + y) / 23.0 + 2.0 * seed).sin();
        Rgb([a as u8, b as u8, ((a + b) / 2.0) as u8])
    })
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// The picture resized to 80 % and saved as JPEG quality 70.
fn reencoded(img: &RgbImage) -> Vec<u8> {
    let (w, h) = (img.width() * 4 / 5, img.height() * 4 / 5);
    let small = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 70)
        .write_image(small.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn pair(image: &[u8], mime: &str, text: &str) -> Value {
    json!({ "input": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": data_url(image, mime)}}] })
}

/// Scores one pair and returns its result.
async fn moderate(t: &TestApp, body: &Value) -> Value {
    let reply = t.moderate(body).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.bytes));
    reply.json()["results"][0].clone()
}

/// A moderator overrides decision `id` with `label`; returns the review's id.
async fn review(t: &TestApp, id: i64, label: &str) -> i64 {
    let reply =
        t.post_json(&format!("/v1/decisions/{id}/reviews"), Some(&t.moderator_key), &json!({ "label": label })).await;
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.bytes));
    reply.json()["id"].as_i64().unwrap()
}

fn opposite(result: &Value) -> (&'static str, bool) {
    if result["flagged"].as_bool().unwrap() { ("not_hateful", false) } else { ("hateful", true) }
}

#[tokio::test]
async fn an_override_decides_the_same_and_near_identical_memes_until_retracted() {
    for backend in backends() {
        let t = TestApp::start(backend, &["--ocr", "false"]).await;
        let original = picture(0.0);
        let bytes = png(&original);
        let text = "Look at THIS, friends!";

        let first = moderate(&t, &pair(&bytes, "image/png", text)).await;
        assert_eq!(first["review_match"], Value::Null, "{backend:?}: nothing reviewed yet");
        assert_eq!(first["model_score"], first["category_scores"]["hate"]);
        let reviewed = first["decision_id"].as_i64().unwrap();
        let (label, flagged) = opposite(&first);
        let review_id = review(&t, reviewed, label).await;
        let final_score = if flagged { 1.0 } else { 0.0 };

        // (a) The same bytes, the same text up to case, punctuation and spaces: exact.
        let exact = moderate(&t, &pair(&bytes, "image/png", "look at this friends")).await;
        assert_eq!(exact["flagged"], flagged, "{backend:?}: the override decides");
        assert_eq!(exact["category_scores"]["hate"], final_score);
        // (The text differs for the tokenizer, so the model's score differs a little.)
        assert!(exact["model_score"].is_number(), "the model's own score is kept beside the final one");
        let m = &exact["review_match"];
        assert_eq!((m["decision_id"].as_i64(), m["kind"].as_str()), (Some(reviewed), Some("exact")), "{m}");
        assert_eq!((m["label"].as_str(), m["distance"].as_i64()), (Some(label), Some(0)));
        assert!(m["reviewed_at"].is_string());

        // The log records which decision applied; the decision page names it with a link.
        let logged = t.get(&format!("/v1/decisions/{}", exact["decision_id"]), Some(&t.moderator_key)).await.json();
        assert_eq!(logged["match_decision_id"].as_i64(), Some(reviewed));
        assert_eq!((logged["match_kind"].as_str(), logged["match_label"].as_str()), (Some("exact"), Some(label)));
        let logged_model_score = logged["model_score"].as_f64().unwrap();
        assert!((logged_model_score - exact["model_score"].as_f64().unwrap()).abs() < 1e-6);
        assert_eq!(logged["score"], final_score);
        assert_eq!(logged["flagged"], flagged);

        // (b) Re-encoded as JPEG quality 70 at 80 % size, same text: pdq.
        let near = moderate(&t, &pair(&reencoded(&original), "image/jpeg", text)).await;
        let m = &near["review_match"];
        assert_eq!((m["decision_id"].as_i64(), m["kind"].as_str()), (Some(reviewed), Some("pdq")), "{m}");
        let distance = m["distance"].as_i64().unwrap();
        assert!((1..=31).contains(&distance), "{backend:?}: PDQ distance {distance}");
        eprintln!("{backend:?}: PDQ distance after JPEG quality 70 at 80 %: {distance} bits");
        assert_eq!(near["flagged"], flagged);

        // Unrelated: another picture with the same text, the same picture with other text.
        let other = moderate(&t, &pair(&png(&picture(1.7)), "image/png", text)).await;
        assert_eq!(other["review_match"], Value::Null, "{backend:?}: another picture");
        let other_text = moderate(&t, &pair(&reencoded(&original), "image/jpeg", "something else")).await;
        assert_eq!(other_text["review_match"], Value::Null, "{backend:?}: other text");

        // The memory is rebuilt from the database the same way at start.
        let rebuilt = ReviewMemory::new(t.state.config.memory.clone());
        assert_eq!(rebuilt.load(&t.state.db).await.unwrap(), 1);

        // Retraction: admins only; the history keeps the review; the memory forgets it.
        let path = format!("/v1/reviews/{review_id}/retraction");
        let refused = t.post_json(&path, Some(&t.moderator_key), &json!({})).await;
        assert_eq!(refused.status, 403);
        let retracted = t.post_json(&path, Some(&t.admin_key), &json!({})).await;
        assert_eq!(retracted.status, 200, "{}", String::from_utf8_lossy(&retracted.bytes));
        assert_eq!(retracted.json(), json!({ "review_id": review_id, "decision_id": reviewed }));
        let unknown = t.post_json("/v1/reviews/999999/retraction", Some(&t.admin_key), &json!({})).await;
        assert_eq!(unknown.status, 404);
        let after = moderate(&t, &pair(&bytes, "image/png", text)).await;
        assert_eq!(after["review_match"], Value::Null, "{backend:?}: a retracted review stops matching");
        assert_eq!(after["category_scores"]["hate"], first["category_scores"]["hate"]);
        let history = t.get(&format!("/v1/decisions/{reviewed}"), Some(&t.moderator_key)).await.json();
        assert_eq!(history["reviews"].as_array().unwrap().len(), 1, "the history keeps it");
        assert_eq!(rebuilt.load(&t.state.db).await.unwrap(), 0, "nor is it loaded at start");

        // A new review after the retraction counts again.
        review(&t, reviewed, label).await;
        let again = moderate(&t, &pair(&bytes, "image/png", text)).await;
        assert_eq!(again["review_match"]["kind"], "exact");
        t.finish().await;
    }
}

#[tokio::test]
async fn the_nearest_reviewed_neighbour_adjusts_the_score() {
    for backend in backends() {
        let models = tempfile::tempdir().unwrap();
        write_embedding_test_package(&models.path().join("embed").join("1.0.0"), "embed", "1.0.0");
        let t = TestApp::start_with_models(backend, models, &["--ocr", "false"]).await;
        let flat = |rgb: [u8; 3]| png(&RgbImage::from_pixel(64, 64, Rgb(rgb)));

        let first = moderate(&t, &pair(&flat([200, 30, 30]), "image/png", "red thing")).await;
        assert_eq!(first["model_score"].as_f64().map(|s| (s * 100.0).round()), Some(30.0));
        assert_eq!(first["flagged"], false);
        let reviewed = first["decision_id"].as_i64().unwrap();
        review(&t, reviewed, "hateful").await;

        // Another red (not the same bytes; flat pictures are never PDQ-matched), another
        // text: the joint embedding is near the reviewed one.
        let near = moderate(&t, &pair(&flat([190, 40, 35]), "image/png", "a different caption")).await;
        let m = &near["review_match"];
        assert_eq!((m["decision_id"].as_i64(), m["kind"].as_str()), (Some(reviewed), Some("embedding")), "{m}");
        let similarity = m["similarity"].as_f64().unwrap();
        assert!(similarity > 0.99 && similarity <= 1.0 + 1e-6, "{similarity}");
        assert!(m.get("distance").is_none());
        let score = near["category_scores"]["hate"].as_f64().unwrap();
        let want = similarity + (1.0 - similarity) * 0.3;
        assert!((score - want).abs() < 1e-3, "{backend:?}: s·vote + (1−s)·model = {want}, got {score}");
        assert_eq!(near["flagged"], true, "flagged follows the final score");

        // A blue picture is far from it.
        let far = moderate(&t, &pair(&flat([30, 30, 200]), "image/png", "a different caption")).await;
        assert_eq!(far["review_match"], Value::Null, "{backend:?}");
        assert_eq!(far["flagged"], false);
        t.finish().await;
    }
}

#[tokio::test]
async fn review_memory_off_leaves_the_model_alone() {
    let t = TestApp::start(Backend::Sqlite, &["--ocr", "false", "--review-memory", "off"]).await;
    let bytes = png(&picture(0.3));
    let first = moderate(&t, &pair(&bytes, "image/png", "x")).await;
    let (label, _) = opposite(&first);
    review(&t, first["decision_id"].as_i64().unwrap(), label).await;
    let again = moderate(&t, &pair(&bytes, "image/png", "x")).await;
    assert_eq!(again["review_match"], Value::Null);
    assert_eq!(again["flagged"], first["flagged"]);
    assert_eq!(t.state.memory.config().mode, MemoryMode::Off);
    let _: &MemoryConfig = t.state.memory.config();
    t.finish().await;
}

/// Two servers on one PostgreSQL database: a review taken by one decides the next verdict
/// on the other within a second (its poll), and so does a retraction.
#[tokio::test]
async fn a_review_on_one_replica_takes_effect_on_the_other() {
    if !backends().contains(&Backend::Postgres) {
        eprintln!("skipped: needs MEMEGUARD_TEST_POSTGRES_URL (scripts/setup-postgres.sh)");
        return;
    }
    let t = TestApp::start(Backend::Postgres, &["--ocr", "false", "--review-memory-poll-ms", "100"]).await;
    let other = t.replica(&["--ocr", "false", "--review-memory-poll-ms", "100"]).await;
    let bytes = png(&picture(0.9));
    let first = moderate(&t, &pair(&bytes, "image/png", "replicated")).await;
    let (label, flagged) = opposite(&first);
    let review_id = review(&t, first["decision_id"].as_i64().unwrap(), label).await;

    // Scored on the other replica (its own router over its own state).
    let on_other = |body: Value| {
        let state = other.clone();
        let key = t.scorer_key.clone();
        async move {
            let t2 = common::request("POST", "/v1/moderations", Some(&key))
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            use http_body_util::BodyExt as _;
            use tower::ServiceExt as _;
            let response = memeguard::app(state).oneshot(t2).await.unwrap();
            assert_eq!(response.status(), 200);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()["results"][0].clone()
        }
    };
    let waited = std::time::Instant::now();
    let mut matched = Value::Null;
    while waited.elapsed() < std::time::Duration::from_secs(1) {
        matched = on_other(pair(&bytes, "image/png", "replicated")).await;
        if !matched["review_match"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(matched["review_match"]["kind"], "exact", "the other replica took the review in within a second");
    assert_eq!(matched["flagged"], flagged);

    let retracted = t.post_json(&format!("/v1/reviews/{review_id}/retraction"), Some(&t.admin_key), &json!({})).await;
    assert_eq!(retracted.status, 200);
    let waited = std::time::Instant::now();
    while waited.elapsed() < std::time::Duration::from_secs(1) {
        matched = on_other(pair(&bytes, "image/png", "replicated")).await;
        if matched["review_match"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(matched["review_match"], Value::Null, "and the retraction");
    other.shutdown().await;
    t.finish().await;
}
