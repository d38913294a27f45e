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
            let connections = if url.contains(":memory:") { 1 } else { 8 };
            let pool = SqlitePoolOptions::new().max_connections(connections).connect_with(options).await?;
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
    pub async fn check_writable(&self) -> Result<(), DbError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE api_keys SET name = name WHERE id = -1").execute(&mut *tx).await?;
            tx.rollback().await?;
        });
        Ok(())
    }

    /// Waits for queries in flight and closes every connection (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}
