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
