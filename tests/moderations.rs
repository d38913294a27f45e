//! `POST /v1/moderations` through `app().oneshot(...)`: every input form, the recorded
//! decisions, auth, and every kind of bad input (a clear 4xx and nothing written).

mod common;

use axum::http::header;
use common::images::{b64, data_url, jpeg, png, png_bomb_header, truncated_png};
use common::{Backend, TestApp, backends};
use serde_json::{Value, json};

fn parts(text: &str, image: &[u8]) -> Value {
    json!([{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": data_url(image, "image/png")}}])
}

#[tokio::test]
async fn every_input_form_is_scored_and_recorded() {
    for backend in backends() {
        let t = TestApp::start(backend, &[]).await;
        let image = png(40, 30, 7);

        // OpenAI text form: one text.
        let body = t.moderate(&json!({"input": "just a caption"})).await.expect(200);
        assert!(body["id"].as_str().unwrap().starts_with("modr-"));
        assert_eq!(body["model"], "placeholder@0.0.0");
        let r = &body["results"][0];
        let score = r["category_scores"]["hate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(r["flagged"], json!(score >= r["threshold"].as_f64().unwrap()));
        assert_eq!(r["categories"]["hate"], r["flagged"]);
        assert_eq!(r["category_applied_input_types"]["hate"], json!(["text"]), "text only: no image applied");
        assert_eq!(r["text_source"], "given");
        assert_eq!(r["placeholder_model"], true);

        // Several strings, one result each.
        let body = t.moderate(&json!({"input": ["a", "b", "c"]})).await.expect(200);
        assert_eq!(body["results"].as_array().unwrap().len(), 3);

        // OpenAI multi-modal content parts: one pair.
        let body = t
            .moderate(&json!({"input": parts("look at this", &image), "model": "omni-moderation-latest"}))
            .await
            .expect(200);
        let r = &body["results"][0];
        assert_eq!(r["category_applied_input_types"]["hate"], json!(["text", "image"]));
        let pair_id = r["decision_id"].as_i64().unwrap();

        // Batch of content-part lists and batch of {image, text} pairs.
        let body = t.moderate(&json!({"input": [parts("one", &image), parts("two", &png(8, 8, 1))]})).await.expect(200);
        assert_eq!(body["results"].as_array().unwrap().len(), 2);
        let body = t
            .moderate(&json!({"input": [{"image": b64(&image), "text": "x"}, {"image": data_url(&jpeg(20, 20), "image/jpeg")}]}))
            .await
            .expect(200);
        let results = body["results"].as_array().unwrap();
        assert_eq!(results[1]["text_source"], "none");
        assert_eq!(results[1]["category_applied_input_types"]["hate"], json!(["image"]));

        // The same pair scores the same (one preprocessing, deterministic model).
        let again = t.moderate(&json!({"input": parts("look at this", &image)})).await.expect(200);
        let first = t.get(&format!("/v1/decisions/{pair_id}"), Some(&t.moderator_key)).await.expect(200);
        assert_eq!(
            again["results"][0]["category_scores"]["hate"].as_f64().unwrap() as f32,
            first["score"].as_f64().unwrap() as f32
        );

        // The decision row holds everything.
        assert_eq!(first["text"], "look at this");
        assert_eq!(first["text_source"], "given");
        assert_eq!((first["width"].as_i64(), first["height"].as_i64()), (Some(40), Some(30)));
        assert_eq!(first["image_mime"], "image/png");
        assert_eq!(first["model"], "placeholder@0.0.0");
        assert!(first["caller"].as_str().unwrap().starts_with("key:"));
        assert_eq!(first["has_image"], true);
        let stored = t.get(&format!("/v1/decisions/{pair_id}/image"), Some(&t.moderator_key)).await;
        assert_eq!(stored.status, 200);
        assert_eq!(stored.bytes, image, "the image is stored as received");
        assert_eq!(stored.headers[header::CONTENT_TYPE], "image/png");

        assert_eq!(t.decision_count().await, 1 + 3 + 1 + 2 + 2 + 1);
        t.finish().await;
    }
}

#[tokio::test]
async fn multipart_upload_and_store_false() {
    let t = TestApp::start(Backend::Sqlite, &[]).await;
    let image = png(16, 16, 3);
    let reply = t.moderate_form(&[("image", Some("meme.png"), &image), ("text", None, b"caption")]).await;
    let body = reply.expect(200);
    assert_eq!(body["results"][0]["category_applied_input_types"]["hate"], json!(["text", "image"]));

    // "store": false keeps hashes and scores only.
    let body =
        t.moderate(&json!({"input": [{"image": b64(&image), "text": "secret"}], "store": false})).await.expect(200);
    let id = body["results"][0]["decision_id"].as_i64().unwrap();
    let d = t.get(&format!("/v1/decisions/{id}"), Some(&t.moderator_key)).await.expect(200);
    assert_eq!(d["text"], Value::Null);
    assert_eq!(d["stored"], false);
    assert_eq!(d["has_image"], false);
    assert_eq!(d["image_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(d["text_sha256"].as_str().unwrap().len(), 64);
    assert!(d["score"].is_number());
    t.get(&format!("/v1/decisions/{id}/image"), Some(&t.moderator_key)).await.expect(404);

    // Multipart with store=false too.
    let reply = t.moderate_form(&[("image", Some("m.png"), &image), ("store", None, b"false")]).await;
    let id = reply.expect(200)["results"][0]["decision_id"].as_i64().unwrap();
    let d = t.get(&format!("/v1/decisions/{id}"), Some(&t.moderator_key)).await.expect(200);
    assert_eq!((d["stored"].clone(), d["has_image"].clone()), (json!(false), json!(false)));
    t.finish().await;
}

/// Each bad input gets the expected 4xx with a message naming the problem, and
/// nothing is written.
#[tokio::test]
async fn bad_inputs_are_refused_clearly_and_write_nothing() {
    let t = TestApp::start(Backend::Sqlite, &["--max-body-bytes", "2000000"]).await;
    let json_case = |input: Value| json!({ "input": input });
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("not an image", json_case(json!({"image": b64(b"hello, I am text, not a picture")})), 415, "not a PNG, JPEG"),
        ("truncated PNG", json_case(json!({"image": b64(&truncated_png())})), 400, "could not be decoded"),
        ("30000x30000 PNG bomb", json_case(json!({"image": b64(&png_bomb_header())})), 413, "30000×30000"),
        ("invalid base64", json_case(json!({"image": "!!!notbase64!!!"})), 400, "invalid base64"),
        ("invalid base64 in a data URL", json_case(parts_with_url("data:image/png;base64,%%%")), 400, "invalid base64"),
        (
            "remote URL",
            json_case(parts_with_url("https://example.com/meme.png")),
            400,
            "remote image URLs are not fetched",
        ),
        ("empty input string", json_case(json!("")), 400, "empty"),
        ("empty input list", json_case(json!([])), 400, "empty"),
        ("empty pair", json_case(json!({})), 400, "empty"),
        ("unknown top-level field", json!({"input": "x", "temperature": 1}), 400, "unknown field `temperature`"),
        ("unknown pair field", json_case(json!({"text": "x", "caption": "y"})), 400, "unknown field `caption`"),
        ("100 kB text", json_case(json!("a".repeat(100_000))), 400, "the limit is 2000"),
        ("missing input", json!({"model": "x"}), 400, "missing field `input`"),
        ("input of the wrong type", json_case(json!(12)), 400, "must be a string"),
        ("mixed list", json_case(json!(["a", {"text": "b"}])), 400, "not a mix"),
        (
            "two images in one pair",
            json_case(json!([
            {"type": "image_url", "image_url": {"url": data_url(&png(4, 4, 0), "image/png")}},
            {"type": "image_url", "image_url": {"url": data_url(&png(4, 4, 0), "image/png")}}])),
            400,
            "more than one image",
        ),
        ("too many pairs", json_case(json!(vec!["x"; 65])), 400, "the limit is 64"),
    ];
    for (name, body, status, needle) in cases {
        let reply = t.moderate(&body).await;
        reply.expect(status);
        assert!(reply.message().contains(needle), "{name}: `{}` should mention `{needle}`", reply.message());
    }

    // A body over the limit (413), a body that is not JSON, a wrong content type.
    let big = json!({"input": {"image": b64(&vec![0u8; 1_600_000])}});
    let reply = t.moderate(&big).await;
    reply.expect(413);
    let reply = t.post_raw("/v1/moderations", Some(&t.scorer_key), "application/json", "{not json").await;
    reply.expect(400);
    let reply = t.post_raw("/v1/moderations", Some(&t.scorer_key), "text/plain", "hi").await;
    reply.expect(415);

    // Multipart: not an image, unknown field, empty form.
    for (form, status, needle) in [
        (vec![("image", Some("x.png"), &b"GIF? no"[..])], 415, "not a PNG"),
        (vec![("picture", Some("x.png"), &b"..."[..])], 400, "unknown form field `picture`"),
        (vec![("text", None, &b""[..])], 400, "empty"),
    ] {
        let reply = t.moderate_form(&form).await;
        reply.expect(status);
        assert!(reply.message().contains(needle), "`{}` should mention `{needle}`", reply.message());
    }

    assert_eq!(t.decision_count().await, 0, "no bad input may write a decision");
    t.finish().await;
}

fn parts_with_url(url: &str) -> Value {
    json!([{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": url}}])
}

#[tokio::test]
async fn keys_and_roles_are_enforced() {
    for backend in backends() {
        let t = TestApp::start(backend, &[]).await;
        let body = json!({"input": "x"});
        let reply = t.post_json("/v1/moderations", None, &body).await;
        reply.expect(401);
        assert!(reply.message().contains("Bearer"));
        t.post_json("/v1/moderations", Some("mg_not_a_real_key"), &body).await.expect(401);
        // Scorers score but cannot read decisions or reload; moderators read and review.
        t.moderate(&body).await.expect(200);
        t.get("/v1/decisions", Some(&t.scorer_key)).await.expect(403);
        t.get("/v1/decisions", Some(&t.moderator_key)).await.expect(200);
        t.post_json("/v1/admin/reload", Some(&t.moderator_key), &json!({})).await.expect(403);
        t.post_json("/v1/decisions/1/reviews", Some(&t.scorer_key), &json!({"label": "hateful"})).await.expect(403);

        // A revoked key stops working.
        let created = memeguard::db::keys::create(&t.state.db, "temp", memeguard::auth::Role::Scorer).await.unwrap();
        t.post_json("/v1/moderations", Some(&created.secret), &body).await.expect(200);
        assert!(memeguard::db::keys::revoke(&t.state.db, created.key.id).await.unwrap());
        t.post_json("/v1/moderations", Some(&created.secret), &body).await.expect(401);
        t.finish().await;
    }
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    // One slot, held by work already admitted (a model thread runs a lone request at once,
    // so a request cannot be relied on to still hold it).
    let t = TestApp::start(Backend::Sqlite, &["--queue-capacity", "1"]).await;
    let held = t.state.scorer.admit(1).unwrap();
    assert_eq!(t.state.scorer.queue_depth(), 1);
    let reply = t.moderate(&json!({"input": "second"})).await;
    reply.expect(429);
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    assert_eq!(t.decision_count().await, 0);
    drop(held);
    t.moderate(&json!({"input": "third"})).await.expect(200);
    assert_eq!(t.decision_count().await, 1);
    assert!(t.get("/metrics", None).await.text().contains("memeguard_queue_rejections_total 1\n"));
    t.finish().await;
}
