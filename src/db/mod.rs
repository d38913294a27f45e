//! The decision log's storage: SQLite (one server, WAL mode) or PostgreSQL (several
//! replicas sharing one log), chosen by the database URL.
//!
//! Why a two-variant enum and not `sqlx::Any`: `Any` decodes only a lowest common
//! denominator of types (no booleans or timestamps from SQLite), which would force both
//! schemas down to integers and text. With the enum each backend keeps its native types
//! (`BOOLEAN`, `TIMESTAMPTZ`, `BYTEA` in PostgreSQL) while every query is still written
//! once: both drivers accept `$1` placeholders, and [`with_pool!`] compiles the same
//! body once per backend.

pub mod decisions;
pub mod keys;
pub mod memory;
pub mod reviews;
mod time;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use self::time::DbTime;
pub use self::writer::DecisionWriter;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Errors of the decision log.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the decision writer has stopped (the server is shutting down)")]
    WriterStopped,
}

impl DbError {
    /// Whether the database is unavailable for now (disk full, I/O error, locked, gone,
    /// out of connections) rather than the request or our code being wrong: answered 503,
    /// since the same request may well succeed later.
    pub fn is_unavailable(&self) -> bool {
        let DbError::Sqlx(e) = self else { return matches!(self, DbError::WriterStopped) };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                true
            }
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if let Ok(extended) = code.parse::<i32>() {
                    // SQLite: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN.
                    matches!(extended & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14)
                } else {
                    // PostgreSQL: insufficient resources (53…), operator intervention (57…),
                    // connection exceptions (08…).
                    ["53", "57", "08"].iter().any(|class| code.starts_with(class))
                }
            }
            _ => false,
        }
    }
}

/// Which file a path names (device and inode), to notice the file being deleted or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(path: &std::path::Path) -> std::io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(FileIdentity { device: meta.dev(), inode: meta.ino() })
    }

    /// An error unless `path` still names this file.
    fn check(self, path: &std::path::Path) -> std::io::Result<()> {
        match FileIdentity::of(path) {
            Ok(now) if now == self => Ok(()),
            Ok(_) => Err(std::io::Error::other(format!(
                "the database file {} was replaced while the server ran; restart it to use the new file",
                path.display()
            ))),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("the database file {} is gone ({e}); restore it and restart", path.display()),
            )),
        }
    }
}

/// A connection pool to the decision log.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend. The body is
/// compiled once per backend, so one SQL text and one row type serve both.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

impl Db {
    /// Opens a pool for `url` (`sqlite://file.db`, `sqlite::memory:`, `postgres://...`).
    /// A SQLite file is created if missing and put in WAL mode with full sync, so a
    /// committed decision survives a crash of the process or the machine.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            // Each connection to `sqlite::memory:` would be its own empty database.
            if url.contains(":memory:") {
                let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
                return Ok(Db::Sqlite(pool));
            }
            // Create the file once, then pin the pool to that very file: were it deleted or
            // replaced while we run, connections to the old inode would keep "committing"
            // into a file nobody will ever read, and new ones would create an empty one.
            sqlx::Connection::close(sqlx::ConnectOptions::connect(&options).await?).await?;
            let path = options.get_filename().to_path_buf();
            let identity = FileIdentity::of(&path).map_err(sqlx::Error::Io)?;
            let (on_acquire, on_connect) = (path.clone(), path);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // A replaced file makes every new connection fail its check, which the pool
                // retries until this timeout: keep it short enough to answer 503 soon.
                .acquire_timeout(Duration::from_secs(10))
                .before_acquire(move |_, _| {
                    let same = FileIdentity::of(&on_acquire).is_ok_and(|now| now == identity);
                    // `false` closes the connection; the pool then opens a new one, which fails.
                    Box::pin(async move { Ok(same) })
                })
                .after_connect(move |_, _| {
                    let checked = identity.check(&on_connect);
                    Box::pin(async move { checked.map_err(sqlx::Error::Io) })
                })
                .connect_with(options.create_if_missing(false))
                .await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new().max_connections(16).connect(url).await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(DbError::UnsupportedUrl(url.to_string()))
        }
    }

    /// Applies the embedded migrations of this backend (idempotent).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Whether the database accepts a write right now (for `/readyz`): a write
    /// transaction that is rolled back, so nothing is left behind.
    /// Like the decision writer, it spells the transaction out and closes a connection
    /// that saw an error (see [`decisions::insert_all`]).
    pub async fn check_writable(&self) -> Result<(), DbError> {
        with_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let result: Result<(), sqlx::Error> = async {
                sqlx::query("BEGIN").execute(&mut *conn).await?;
                sqlx::query("UPDATE api_keys SET name = name WHERE id = -1").execute(&mut *conn).await?;
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                Ok(())
            }
            .await;
            if result.is_err() {
                conn.close_on_drop();
            }
            result?;
        });
        Ok(())
    }

    /// Waits for queries in flight and closes every connection (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_deleted_or_replaced_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        std::fs::write(&path, b"a").unwrap();
        let identity = FileIdentity::of(&path).unwrap();
        std::fs::write(&path, b"rewritten in place").unwrap();
        assert!(identity.check(&path).is_ok(), "the same file, written to");
        // Renamed over while the old one is still open (as the pool's connections hold it).
        let _open = std::fs::File::open(&path).unwrap();
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"b").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(identity.check(&path).unwrap_err().to_string().contains("was replaced"));
        std::fs::remove_file(&path).unwrap();
        assert!(identity.check(&path).unwrap_err().to_string().contains("is gone"));
    }
}
