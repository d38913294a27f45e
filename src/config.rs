//! Command-line configuration. Every flag has an environment fallback
//! (`MEMEGUARD_<FLAG>`), so a container is configured without a wrapper script.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use memeguard_package::{Device, ImageLimits, SessionOptions};

use crate::auth::Role;

/// memeguard: scores memes (image + text) as hateful or not, and records every decision.
///
/// Without a subcommand it serves (same as `memeguard serve`). First steps:
///   memeguard keys create --role admin --name me     # prints a key once
///   memeguard serve                                  # http://127.0.0.1:8080/docs
///                                  # (no ./models yet? --allow-placeholder serves an untrained one)
///   curl -H "Authorization: Bearer mg_..." -F image=@meme.png -F text="..." \
///        http://127.0.0.1:8080/v1/moderations
#[derive(Debug, Parser)]
#[command(name = "memeguard", version, args_conflicts_with_subcommands = true, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (the default).
    Serve(Box<ServeConfig>),
    /// Create, list or revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Apply the database migrations and exit (`serve` also applies them at start).
    Migrate(DatabaseArgs),
    /// Create, list or disable moderators' accounts for the web pages (/review).
    Users {
        #[command(subcommand)]
        command: crate::web::cli::UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown once; only its hash is stored).
    Create {
        /// scorer (score memes), moderator (also read and review decisions) or admin (also reload models).
        #[arg(long)]
        role: Role,
        /// A name to recognise the key by (who or what uses it).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List keys (without secrets).
    List(DatabaseArgs),
    /// Revoke a key by id; requests with it are refused from then on.
    Revoke {
        id: i64,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Where the decision log lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// sqlite://PATH (one server) or postgres://USER:PASSWORD@HOST/DB (several replicas).
    #[arg(long, env = "MEMEGUARD_DATABASE_URL", default_value = "sqlite://memeguard.db")]
    pub database_url: String,
}

/// Everything `serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "MEMEGUARD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Directory of model packages (`<name>/<version>/`). The newest non-placeholder
    /// package that loads is served; when the directory holds no package, an untrained
    /// placeholder is written here.
    #[arg(long, env = "MEMEGUARD_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Create a missing models directory and serve the untrained placeholder from it
    /// (without this flag a models directory that does not exist stops the start: a
    /// mistyped path must not serve meaningless scores).
    #[arg(long, env = "MEMEGUARD_ALLOW_PLACEHOLDER", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_placeholder: bool,
    /// Serve this package instead of the newest: `name@version`, `name` (its newest
    /// version), or the path of a package directory. No placeholder is written when set.
    #[arg(long, env = "MEMEGUARD_MODEL")]
    pub model: Option<String>,
    /// Where the model runs: cpu, cuda or cuda:N.
    #[arg(long, env = "MEMEGUARD_DEVICE", default_value = "cpu")]
    pub device: Device,
    /// ONNX Runtime sessions per model, each on its own thread.
    #[arg(long, env = "MEMEGUARD_SESSIONS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub sessions: u16,
    /// Intra-op threads per session (0: ONNX Runtime decides).
    #[arg(long, env = "MEMEGUARD_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Most pairs scored in one model run.
    #[arg(long, env = "MEMEGUARD_MAX_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_batch_size: u32,
    /// Longest a pair waits for others to fill a batch, in milliseconds.
    #[arg(long, env = "MEMEGUARD_MAX_WAIT_MS", default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Pairs admitted to the scorer (queued or running) before requests get 429.
    #[arg(long, env = "MEMEGUARD_QUEUE_CAPACITY", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,
    /// Largest request body in bytes (base64 adds a third to an image).
    #[arg(long, env = "MEMEGUARD_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest image in bytes, as encoded.
    #[arg(long, env = "MEMEGUARD_MAX_IMAGE_BYTES", default_value_t = ImageLimits::default().max_bytes)]
    pub max_image_bytes: usize,
    /// Largest image in pixels (width × height), checked before decoding.
    #[arg(long, env = "MEMEGUARD_MAX_PIXELS", default_value_t = ImageLimits::default().max_pixels)]
    pub max_pixels: u64,
    /// Most decoded pixels in one request, all its images together, checked from the
    /// images' headers before decoding (413 beyond). Decoded, a pixel takes 3 bytes.
    #[arg(long, env = "MEMEGUARD_MAX_REQUEST_PIXELS", default_value_t = 64_000_000, value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub max_request_pixels: u64,
    /// Most decoded pixels held at once by all requests being decoded or scored (429
    /// beyond): the bound on image memory, whatever the queue capacity.
    #[arg(long, env = "MEMEGUARD_MAX_PIXELS_IN_FLIGHT", default_value_t = 256_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels_in_flight: u64,
    /// Longest text in characters.
    #[arg(long, env = "MEMEGUARD_MAX_TEXT_CHARS", default_value_t = 2000)]
    pub max_text_chars: usize,
    /// Most image+text pairs in one request.
    #[arg(long, env = "MEMEGUARD_MAX_ITEMS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_items: u32,
    /// Longest a client may take to send a request's headers, in seconds; also how long an
    /// idle keep-alive connection is kept open waiting for its next request.
    #[arg(long, env = "MEMEGUARD_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: u64,
    /// Longest a request may take from its headers to its response (reading the body and
    /// scoring included), in seconds; slower ones get 408.
    #[arg(long, env = "MEMEGUARD_REQUEST_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,
    /// Most open client connections; further ones wait in the listen backlog until one
    /// closes. Lowered at start to fit the process's open-file limit.
    #[arg(long, env = "MEMEGUARD_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Require an admin API key for /metrics.
    #[arg(long, env = "MEMEGUARD_PROTECT_METRICS", value_parser = clap::builder::BoolishValueParser::new())]
    pub protect_metrics: bool,
    /// Log format: text (for people) or json (for log collectors).
    #[arg(long, env = "MEMEGUARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(flatten)]
    pub ocr: crate::ocr::OcrConfig,
    #[command(flatten)]
    pub web: crate::web::WebConfig,
    #[command(flatten)]
    pub memory: crate::memory::MemoryConfig,
}

impl ServeConfig {
    /// Parses serve flags alone (tests and tools build configs this way, so defaults
    /// live in one place: the attributes above).
    pub fn from_flags<I, T>(flags: I) -> Result<ServeConfig, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        // Later flags override earlier ones, so callers can append to a base set.
        #[derive(Parser)]
        #[command(args_override_self = true)]
        struct Only {
            #[command(flatten)]
            config: ServeConfig,
        }
        let args = std::iter::once(std::ffi::OsString::from("memeguard")).chain(flags.into_iter().map(Into::into));
        Ok(Only::try_parse_from(args)?.config)
    }

    pub fn image_limits(&self) -> ImageLimits {
        ImageLimits { max_bytes: self.max_image_bytes, max_pixels: self.max_pixels }
    }

    pub fn session_options(&self) -> SessionOptions {
        // Between batches the cores belong to decoding and preprocessing: no spinning.
        SessionOptions {
            device: self.device,
            threads: self.threads,
            intra_op_spinning: false,
            ..SessionOptions::default()
        }
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections as usize,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn batching(&self) -> BatchConfig {
        BatchConfig {
            max_batch_size: self.max_batch_size as usize,
            max_wait: Duration::from_millis(self.max_wait_ms),
            sessions: usize::from(self.sessions),
        }
    }
}

/// How the scorer forms batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_batch_size: usize,
    pub max_wait: Duration,
    /// Sessions (threads) per model.
    pub sessions: usize,
}

/// How the listener bounds its connections (see `serve`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// For a request's headers, and for an idle keep-alive connection's next request.
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}
