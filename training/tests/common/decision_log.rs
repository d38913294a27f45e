//! A decision log like the running server's: a SQLite file in WAL mode with the server's
//! schema (the SQL files of migrations/sqlite/ applied in order, without depending on the
//! server crate), decisions with stored image and text, and moderators' reviews.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use memeguard_package::package::sha256_hex;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// An open decision log (the "server" keeps it open while `refresh` reads it).
pub struct DecisionLog {
    pub path: PathBuf,
    runtime: tokio::runtime::Runtime,
    pool: SqlitePool,
}

/// One scored pair as the server stores it.
pub struct Decision<'a> {
    pub model: &'a str,
    pub score: f32,
    pub threshold: f32,
    pub text: &'a str,
    /// PNG bytes.
    pub image: &'a [u8],
    /// False: the caller sent `"store": false`, only hashes and scores are kept.
    pub stored: bool,
}

/// The server's migrations, in the order the server applies them.
pub fn migrations() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no migrations in {}", dir.display());
    files
        .iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(p).unwrap()))
        .collect()
}

impl DecisionLog {
    /// Creates `path` with the server's schema and settings (WAL, foreign keys).
    pub fn create(path: &Path) -> Self {
        Self::open_with(path, &migrations().into_iter().map(|(_, sql)| sql).collect::<Vec<_>>())
    }

    /// Creates `path` with some other schema (a database that is not memeguard's).
    pub fn create_with_schema(path: &Path, sql: &str) -> Self {
        Self::open_with(path, &[sql.to_string()])
    }

    fn open_with(path: &Path, scripts: &[String]) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let pool = runtime.block_on(async {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
            for sql in scripts {
                sqlx::raw_sql(sql).execute(&pool).await.unwrap_or_else(|e| panic!("applying the schema: {e}"));
            }
            pool
        });
        DecisionLog { path: path.to_path_buf(), runtime, pool }
    }

    /// Inserts a decision as the server would write it; returns its id.
    pub fn decide(&self, d: &Decision) -> i64 {
        let stamp = "2026-11-29T10:00:00.000Z";
        let image_sha = sha256_hex(d.image);
        let (w, h) = image::load_from_memory(d.image).map(|i| (i.width() as i64, i.height() as i64)).unwrap();
        self.runtime.block_on(async {
            sqlx::query(
                "INSERT INTO decisions (created_at, request_id, model, score, threshold, flagged, text, text_sha256, text_source, \
                 image_sha256, image_mime, width, height, image, stored, latency_ms, caller) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'given', ?, 'image/png', ?, ?, ?, ?, 12.5, 'key:1')",
            )
            .bind(stamp)
            .bind(format!("modr-{image_sha}"))
            .bind(d.model)
            .bind(d.score as f64)
            .bind(d.threshold as f64)
            .bind(d.score >= d.threshold)
            .bind(d.stored.then_some(d.text))
            .bind(sha256_hex(d.text.as_bytes()))
            .bind(&image_sha)
            .bind(w)
            .bind(h)
            .bind(d.stored.then_some(d.image))
            .bind(d.stored)
            .execute(&self.pool)
            .await
            .unwrap()
            .last_insert_rowid()
        })
    }

    /// Appends a moderator's review (`hateful` or `not_hateful`).
    pub fn review(&self, decision_id: i64, hateful: bool, note: &str) {
        self.runtime.block_on(async {
            sqlx::query(
                "INSERT INTO reviews (decision_id, label, reviewer, note, created_at) VALUES (?, ?, 'web:mod', ?, ?)",
            )
            .bind(decision_id)
            .bind(if hateful { "hateful" } else { "not_hateful" })
            .bind(note)
            .bind("2026-11-29T11:00:00.000Z")
            .execute(&self.pool)
            .await
            .unwrap();
        });
    }

    /// Closes the pool (the WAL is checkpointed into the main file).
    pub fn close(self) {
        self.runtime.block_on(self.pool.close());
    }
}

/// A file's bytes and modification time.
pub type FileState = (Vec<u8>, std::time::SystemTime);

/// The bytes and modification time of the database file and of its write-ahead log:
/// what must stay the same while `refresh` reads. A missing and an empty WAL are the
/// same (no content; SQLite creates an empty one when a reader opens a WAL database).
pub fn fingerprint(db: &Path) -> Vec<(String, Option<FileState>)> {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            let state = std::fs::metadata(&p)
                .ok()
                .filter(|m| m.len() > 0)
                .map(|m| (std::fs::read(&p).unwrap(), m.modified().unwrap()));
            (p.display().to_string(), state)
        })
        .collect()
}
