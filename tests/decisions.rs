//! The decision log API on a real database (SQLite, and PostgreSQL when configured):
//! filters, cursor paging, one decision, its image, reviews as append-only history,
//! the `reviewed_decisions` view, and the CSV/JSONL export.

mod common;

use common::images::{b64, png};
use common::{TestApp, backends};
use serde_json::{Value, json};

/// Scores `n` text+image pairs, one request each; returns their decision ids.
async fn seed(t: &TestApp, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = t
            .moderate(&json!({"input": {"image": b64(&png(12, 12, i as u8 * 40)), "text": format!("meme {i}")}}))
            .await
            .expect(200);
        ids.push(body["results"][0]["decision_id"].as_i64().unwrap());
    }
    ids
}

fn ids_of(page: &Value) -> Vec<i64> {
    page["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn listing_filters_and_pages() {
    for backend in backends() {
        let t = TestApp::start(backend, &[]).await;
        let key = t.moderator_key.clone();
        let ids = seed(&t, 5).await;
        assert!(ids.windows(2).all(|w| w[0] < w[1]));

        // Newest first, pages of 2 chained by cursor, no gaps or repeats.
        let mut seen = Vec::new();
        let mut path = "/v1/decisions?limit=2".to_string();
        loop {
            let page = t.get(&path, Some(&key)).await.expect(200);
            seen.extend(ids_of(&page));
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/decisions?limit=2&cursor={c}"),
                None => break,
            }
        }
        let mut newest_first = ids.clone();
        newest_first.reverse();
        assert_eq!(seen, newest_first, "{backend:?}");

        // Verdict filter agrees with each decision's own flag.
        let flagged = t.get("/v1/decisions?verdict=flagged", Some(&key)).await.expect(200);
        let not_flagged = t.get("/v1/decisions?verdict=not_flagged", Some(&key)).await.expect(200);
        assert!(flagged["data"].as_array().unwrap().iter().all(|d| d["flagged"] == true));
        assert!(not_flagged["data"].as_array().unwrap().iter().all(|d| d["flagged"] == false));
        assert_eq!(ids_of(&flagged).len() + ids_of(&not_flagged).len(), 5);

        // Model filter.
        assert_eq!(ids_of(&t.get("/v1/decisions?model=placeholder@0.0.0", Some(&key)).await.expect(200)).len(), 5);
        assert_eq!(ids_of(&t.get("/v1/decisions?model=other@1", Some(&key)).await.expect(200)).len(), 0);

        // Time range: everything is after a minute ago and before a minute ahead.
        let now = time::OffsetDateTime::now_utc();
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339).unwrap().replace('+', "%2B")
        };
        let past = fmt(now - time::Duration::minutes(1));
        let future = fmt(now + time::Duration::minutes(1));
        assert_eq!(
            ids_of(&t.get(&format!("/v1/decisions?since={past}&until={future}"), Some(&key)).await.expect(200)).len(),
            5
        );
        assert_eq!(ids_of(&t.get(&format!("/v1/decisions?since={future}"), Some(&key)).await.expect(200)).len(), 0);
        assert_eq!(ids_of(&t.get(&format!("/v1/decisions?until={past}"), Some(&key)).await.expect(200)).len(), 0);

        // Bad filters are 400 with a reason.
        for (query, needle) in [
            ("verdict=maybe", "flagged or not_flagged"),
            ("since=yesterday", "RFC 3339"),
            ("cursor=abc", "cursor"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("colour=red", "unknown field"),
            ("reviewed=perhaps", "reviewed"),
        ] {
            let reply = t.get(&format!("/v1/decisions?{query}"), Some(&key)).await;
            reply.expect(400);
            assert!(reply.message().contains(needle), "{query}: {}", reply.message());
        }
        t.finish().await;
    }
}

#[tokio::test]
async fn reviews_are_history_and_the_latest_is_the_label() {
    for backend in backends() {
        let t = TestApp::start(backend, &[]).await;
        let key = t.moderator_key.clone();
        let ids = seed(&t, 3).await;
        let (a, b) = (ids[0], ids[1]);

        let first = t
            .post_json(&format!("/v1/decisions/{a}/reviews"), Some(&key), &json!({"label": "hateful", "note": "slur"}))
            .await
            .expect(201);
        assert_eq!(first["label"], "hateful");
        assert!(first["reviewer"].as_str().unwrap().starts_with("key:"));
        t.post_json(
            &format!("/v1/decisions/{a}/reviews"),
            Some(&key),
            &json!({"label": "not_hateful", "note": "satire"}),
        )
        .await
        .expect(201);
        t.post_json(&format!("/v1/decisions/{b}/reviews"), Some(&t.admin_key), &json!({"label": "hateful"}))
            .await
            .expect(201);

        let detail = t.get(&format!("/v1/decisions/{a}"), Some(&key)).await.expect(200);
        assert_eq!(detail["review_label"], "not_hateful", "the latest review wins");
        let history: Vec<_> =
            detail["reviews"].as_array().unwrap().iter().map(|r| r["label"].as_str().unwrap().to_string()).collect();
        assert_eq!(history, ["hateful", "not_hateful"], "earlier reviews are kept");

        // Reviewed / unreviewed filters.
        assert_eq!(ids_of(&t.get("/v1/decisions?reviewed=true", Some(&key)).await.expect(200)), vec![b, a]);
        assert_eq!(ids_of(&t.get("/v1/decisions?reviewed=false", Some(&key)).await.expect(200)), vec![ids[2]]);

        // The view `refresh` and the pages read: one row per reviewed decision, latest label.
        let rows: Vec<(i64, String)> = memeguard::with_pool!(&t.state.db, pool => {
            sqlx::query_as("SELECT decision_id, label FROM reviewed_decisions ORDER BY decision_id").fetch_all(pool).await.unwrap()
        });
        assert_eq!(rows, vec![(a, "not_hateful".to_string()), (b, "hateful".to_string())]);

        // Reviews cannot be rewritten, even by hand.
        let update = memeguard::with_pool!(&t.state.db, pool => {
            sqlx::query("UPDATE reviews SET label = 'hateful'").execute(pool).await.map(|_| ())
        });
        assert!(update.unwrap_err().to_string().contains("append-only"));
        let delete = memeguard::with_pool!(&t.state.db, pool => sqlx::query("DELETE FROM reviews").execute(pool).await.map(|_| ()));
        assert!(delete.is_err());

        // Bad reviews.
        for (path, body, status) in [
            (format!("/v1/decisions/{a}/reviews"), json!({"label": "meh"}), 400),
            (format!("/v1/decisions/{a}/reviews"), json!({"label": "hateful", "extra": 1}), 400),
            (format!("/v1/decisions/{a}/reviews"), json!({"label": "hateful", "note": "n".repeat(5000)}), 400),
            ("/v1/decisions/999999/reviews".to_string(), json!({"label": "hateful"}), 404),
            ("/v1/decisions/abc/reviews".to_string(), json!({"label": "hateful"}), 400),
        ] {
            t.post_json(&path, Some(&key), &body).await.expect(status);
        }
        t.get("/v1/decisions/999999", Some(&key)).await.expect(404);
        t.get("/v1/decisions/999999/image", Some(&key)).await.expect(404);
        t.get("/v1/decisions/x", Some(&key)).await.expect(400);
        let text_only = t.moderate(&json!({"input": "words only"})).await.expect(200);
        let id = text_only["results"][0]["decision_id"].as_i64().unwrap();
        let reply = t.get(&format!("/v1/decisions/{id}/image"), Some(&key)).await;
        reply.expect(404);
        assert!(reply.message().contains("no stored image"));
        t.finish().await;
    }
}

#[tokio::test]
async fn export_streams_csv_and_jsonl() {
    for backend in backends() {
        let t = TestApp::start(backend, &[]).await;
        let key = t.moderator_key.clone();
        t.moderate(&json!({"input": ["plain", "with, comma", "=SUM(A1)", "two\nlines \"quoted\""]})).await.expect(200);
        let ids = seed(&t, 1).await;
        t.post_json(&format!("/v1/decisions/{}/reviews", ids[0]), Some(&key), &json!({"label": "hateful"}))
            .await
            .expect(201);

        let jsonl = t.get("/v1/decisions/export?format=jsonl", Some(&key)).await;
        assert_eq!(jsonl.status, 200);
        assert_eq!(jsonl.headers["content-type"], "application/x-ndjson");
        let rows: Vec<Value> = jsonl.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0]["review_label"], "hateful");
        assert!(rows.iter().any(|r| r["text"] == "two\nlines \"quoted\""));

        let csv = t.get("/v1/decisions/export?format=csv&reviewed=false", Some(&key)).await;
        assert_eq!(csv.status, 200);
        let text = csv.text();
        assert!(text.starts_with("id,created_at,model,score"));
        assert!(text.contains("\"with, comma\""));
        assert!(text.contains("'=SUM(A1)"), "formulas are defused");
        assert!(text.contains("\"two\nlines \"\"quoted\"\"\""));
        // 4 unreviewed rows + header, one of them spanning two lines.
        assert_eq!(text.lines().count(), 1 + 4 + 1);

        t.get("/v1/decisions/export?format=xml", Some(&key)).await.expect(400);
        t.get("/v1/decisions/export", Some(&key)).await.expect(400);
        t.get("/v1/decisions/export?format=csv&limit=3", Some(&key)).await.expect(400);
        t.get("/v1/decisions/export?format=csv", Some(&t.scorer_key)).await.expect(403);
        t.finish().await;
    }
}

#[tokio::test]
async fn the_export_pages_through_large_logs() {
    // More rows than one export page (500), inserted directly to stay fast.
    let t = TestApp::start(common::Backend::Sqlite, &[]).await;
    let template = common::sample_decision("modr-test", "t", 0.25);
    memeguard::db::decisions::insert_all(&t.state.db, &vec![template; 1203]).await.unwrap();
    let jsonl = t.get("/v1/decisions/export?format=jsonl", Some(&t.moderator_key)).await;
    let ids: Vec<i64> =
        jsonl.text().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 1203);
    assert!(ids.windows(2).all(|w| w[0] == w[1] + 1), "newest first, no gaps or repeats across pages");
    t.finish().await;
}

/// Concurrent requests through the group-commit writer each get their own rows back,
/// in order, whatever group they were committed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_gives_each_request_its_own_ids() {
    for backend in backends() {
        let t = TestApp::start(backend, &[]).await;
        let mut tasks = Vec::new();
        for r in 0..40 {
            let writer = t.state.decisions.clone();
            tasks.push(tokio::spawn(async move {
                let decisions: Vec<_> = (0..1 + r % 3)
                    .map(|i| common::sample_decision(&format!("modr-{r}"), &format!("{r}/{i}"), 0.1))
                    .collect();
                (r, writer.insert(decisions).await.unwrap())
            }));
        }
        for task in tasks {
            let (r, ids) = task.await.unwrap();
            assert_eq!(ids.len(), 1 + r % 3);
            for (i, id) in ids.iter().enumerate() {
                let d = memeguard::db::decisions::get(&t.state.db, *id).await.unwrap().unwrap();
                assert_eq!(
                    (d.request_id.as_str(), d.text.as_deref()),
                    (format!("modr-{r}").as_str(), Some(format!("{r}/{i}").as_str()))
                );
            }
        }
        t.finish().await;
    }
}
