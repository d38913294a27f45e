//! One review service behind the API and the pages (`memeguard::review`): a note is
//! trimmed and length-checked the same way whichever way it arrives, and a stored picture
//! is served with the same headers.

mod common;

use common::images::{b64, png};
use common::{TestApp, backends};
use memeguard::db::reviews::Label;
use memeguard::review::{MAX_NOTE_CHARS, add_review};
use serde_json::json;

#[tokio::test]
async fn api_and_service_record_the_same_review() {
    for backend in backends() {
        let t = TestApp::start(backend, &[]).await;
        let key = t.moderator_key.clone();
        let body = t.moderate(&json!({"input": {"image": b64(&png(10, 10, 3)), "text": "meme"}})).await.expect(200);
        let id = body["results"][0]["decision_id"].as_i64().unwrap();

        // The API trims the note as the review page always did.
        let via_api = t
            .post_json(
                &format!("/v1/decisions/{id}/reviews"),
                Some(&key),
                &json!({"label": "hateful", "note": "  slur \n"}),
            )
            .await
            .expect(201);
        assert_eq!(via_api["note"], "slur");
        // The service the page calls: same trimming, same limit (counted after trimming).
        let direct =
            add_review(&t.state, id, Label::NotHateful, "user:alice", &format!(" {} ", "n".repeat(MAX_NOTE_CHARS)))
                .await
                .unwrap();
        assert_eq!(direct.note.chars().count(), MAX_NOTE_CHARS);
        let too_long = add_review(&t.state, id, Label::Hateful, "user:alice", &"n".repeat(MAX_NOTE_CHARS + 1)).await;
        assert!(too_long.unwrap_err().to_string().contains("longer than"));
        let missing = add_review(&t.state, 987_654, Label::Hateful, "user:alice", "").await;
        assert!(missing.unwrap_err().to_string().contains("no decision 987654"));

        let image = t.get(&format!("/v1/decisions/{id}/image"), Some(&key)).await;
        assert_eq!(image.status.as_u16(), 200);
        for (name, value) in [
            ("content-type", "image/png"),
            ("x-content-type-options", "nosniff"),
            ("content-disposition", "inline"),
            ("cache-control", "private, max-age=3600"),
        ] {
            assert_eq!(image.headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
        }
        t.finish().await;
    }
}
