//! Reading moderators' reviews from the server's decision log, read-only, from one
//! consistent snapshot (a read transaction: SQLite in WAL mode lets the server keep
//! writing meanwhile). The `reviewed_decisions` view (migrations/, 0001) is the one
//! definition of "a decision and its current label" that the server's pages use too.

use std::path::{Path, PathBuf};

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::data::Meme;
use crate::data::hateful_memes::SourceLine;

/// One reviewed decision whose image was kept.
#[derive(Debug, Clone)]
pub struct ReviewedMeme {
    pub decision_id: i64,
    pub text: String,
    pub image: Vec<u8>,
    pub mime: String,
    /// The moderator's label: true = hateful.
    pub hateful: bool,
}

/// Counts of what the log held.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReviewSummary {
    pub reviewed: usize,
    /// Reviewed decisions without stored image or text (`"store": false`): unusable.
    pub without_content: usize,
}

/// Reads every reviewed decision with stored content from the SQLite database at `db`.
pub fn read_reviews(db: &Path) -> Result<(Vec<ReviewedMeme>, ReviewSummary), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let options = SqliteConnectOptions::new().filename(db).read_only(true).create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| format!("cannot open the decision log {} read-only: {e}", db.display()))?;
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        let rows = sqlx::query(
            "SELECT decision_id, text, image, image_mime, label FROM reviewed_decisions ORDER BY decision_id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| {
            format!("reading reviewed_decisions from {}: {e} (is this memeguard's database?)", db.display())
        })?;
        tx.rollback().await.map_err(|e| e.to_string())?;
        pool.close().await;
        let mut summary = ReviewSummary { reviewed: rows.len(), ..Default::default() };
        let mut out = Vec::new();
        for row in rows {
            let text: Option<String> = row.try_get("text").map_err(|e| e.to_string())?;
            let image: Option<Vec<u8>> = row.try_get("image").map_err(|e| e.to_string())?;
            let (Some(text), Some(image)) = (text, image) else {
                summary.without_content += 1;
                continue;
            };
            out.push(ReviewedMeme {
                decision_id: row.try_get("decision_id").map_err(|e| e.to_string())?,
                text,
                image,
                mime: row.try_get::<Option<String>, _>("image_mime").map_err(|e| e.to_string())?.unwrap_or_default(),
                hateful: row.try_get::<String, _>("label").map_err(|e| e.to_string())? == "hateful",
            });
        }
        Ok((out, summary))
    })
}

/// Writes the reviewed memes' images under `dir` and returns them as memes
/// (`review-<decision id>`), ready to join a training split.
pub fn as_memes(reviews: &[ReviewedMeme], dir: &Path, db: &Path) -> Result<Vec<Meme>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    reviews
        .iter()
        .map(|r| {
            let ext = match r.mime.as_str() {
                "image/jpeg" => "jpg",
                "image/webp" => "webp",
                "image/gif" => "gif",
                _ => "png",
            };
            let path: PathBuf = dir.join(format!("review-{}.{ext}", r.decision_id));
            std::fs::write(&path, &r.image).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Meme {
                id: format!("review-{}", r.decision_id),
                image: path,
                label: Some(r.hateful as u8),
                text: r.text.clone(),
                source: SourceLine { file: db.to_path_buf(), line: r.decision_id as usize },
            })
        })
        .collect()
}
