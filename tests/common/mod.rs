//! Shared test support: a real database per test (SQLite in a temporary directory, and
//! PostgreSQL too when `MEMEGUARD_TEST_POSTGRES_URL` is set), a models directory with the
//! placeholder package, API keys per role, images, and request helpers over `oneshot`.
#![allow(dead_code)]

pub mod images;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use memeguard::auth::Role;
use memeguard::config::ServeConfig;
use memeguard::db::keys;
use memeguard::state::AppState;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt as _;

/// The backends a database test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL as well when `MEMEGUARD_TEST_POSTGRES_URL` is set. Under
/// `CI=true` the PostgreSQL URL must be set: a CI run never skips those tests quietly.
pub fn backends() -> Vec<Backend> {
    let mut list = vec![Backend::Sqlite];
    if postgres_admin_url().is_some() {
        list.push(Backend::Postgres);
    } else if matches!(std::env::var("CI").as_deref(), Ok("true" | "1" | "yes")) {
        panic!(
            "CI=true but MEMEGUARD_TEST_POSTGRES_URL is not set: the PostgreSQL tests would be skipped \
             (run the suite with `make test`, which starts PostgreSQL)"
        );
    }
    list
}

fn postgres_admin_url() -> Option<String> {
    std::env::var("MEMEGUARD_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    /// PostgreSQL: (admin URL, database name) to drop afterwards.
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("decisions.db").display());
                TestDb { url, postgres: None, _dir: Some(dir) }
            }
            Backend::Postgres => {
                use sqlx::Executor as _;
                let admin = postgres_admin_url().expect("MEMEGUARD_TEST_POSTGRES_URL");
                let name = format!("mg_test_{}", hex::encode(rand::random::<[u8; 8]>()));
                let pool = sqlx::PgPool::connect(&admin).await.expect("connect to the test PostgreSQL");
                pool.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
                pool.close().await;
                let url = replace_database(&admin, &name);
                TestDb { url, postgres: Some((admin, name)), _dir: None }
            }
        }
    }

    /// Drops a PostgreSQL test database (SQLite's goes with its temporary directory).
    pub async fn drop_database(&self) {
        use sqlx::Executor as _;
        if let Some((admin, name)) = &self.postgres
            && let Ok(pool) = sqlx::PgPool::connect(admin).await
        {
            let _ = pool.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
            pool.close().await;
        }
    }
}

/// `postgres://u:p@h:port/db?x` with `db` replaced.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The placeholder package, written once per test process and copied per test.
fn placeholder_source() -> &'static Path {
    static DIR: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("placeholder");
        memeguard_package::write_placeholder_package(&path).expect("write the placeholder package");
        (dir, path)
    });
    path
}

/// Copies a package directory (a test's models directory must be its own).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Writes a copy of the placeholder model as package `name@version` (not a placeholder)
/// into `dir`, created `created_at` (RFC 3339).
pub fn write_test_package(dir: &Path, name: &str, version: &str, created_at: &str, threshold: f32) {
    let source = memeguard_package::ModelPackage::open(placeholder_source()).unwrap();
    let mut manifest = source.manifest.clone();
    manifest.name = name.into();
    manifest.version = version.into();
    manifest.created_at = created_at.into();
    manifest.placeholder = false;
    manifest.threshold = threshold;
    memeguard_package::write_package(dir, manifest, &source.model().unwrap(), &source.tokenizer).unwrap();
}

/// Writes package `name@version` (threshold 0.5) whose outputs the test controls:
/// `probability` is 0.3 for every pair, `image_embedding` `[N, 3]` is the picture's
/// summed R, G, B (so its direction is the picture's mean colour), `text_embedding`
/// `[N, 1]` the number of tokens (one direction for any non-empty text).
pub fn write_embedding_test_package(dir: &Path, name: &str, version: &str) {
    use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, Tensor};
    let source = memeguard_package::ModelPackage::open(placeholder_source()).unwrap();
    let size = i64::from(source.manifest.image.size);
    let length = source.manifest.text.max_length as i64;
    let mut g = GraphBuilder::new("embedding_test");
    let pixels = g.input("pixel_values", DataType::Uint8, &[Dim::from("batch"), size.into(), size.into(), 3.into()]);
    let _ids = g.input("input_ids", DataType::Int64, &[Dim::from("batch"), length.into()]);
    let mask = g.input("attention_mask", DataType::Int64, &[Dim::from("batch"), length.into()]);
    let float = [("to", Attr::Int(DataType::Float as i64))];
    let x = g.op("Cast", &[&pixels], &float);
    let spatial = g.const_i64s("spatial", &[1, 2]);
    let colour = g.op("ReduceSum", &[&x, &spatial], &[("keepdims", Attr::Int(0))]);
    let m = g.op("Cast", &[&mask], &float);
    let tokens_axis = g.const_i64s("tokens", &[1]);
    let count = g.op("ReduceSum", &[&m, &tokens_axis], &[("keepdims", Attr::Int(1))]);
    let per_item = g.op("ReduceSum", &[&m, &tokens_axis], &[("keepdims", Attr::Int(0))]);
    let zero = g.constant("zero", Tensor::scalar_f32(0.0));
    let fixed = g.constant("fixed", Tensor::scalar_f32(0.3));
    let p = g.op("Mul", &[&per_item, &zero], &[]);
    let p = g.op("Add", &[&p, &fixed], &[]);
    g.named_output(&p, "probability", DataType::Float, &[Dim::from("batch")]);
    g.named_output(&colour, "image_embedding", DataType::Float, &[Dim::from("batch"), 3.into()]);
    g.named_output(&count, "text_embedding", DataType::Float, &[Dim::from("batch"), 1.into()]);
    let mut manifest = source.manifest.clone();
    manifest.name = name.into();
    manifest.version = version.into();
    manifest.placeholder = false;
    manifest.threshold = 0.5;
    memeguard_package::write_package(dir, manifest, &g.build(), &source.tokenizer).unwrap();
}

/// A running application state over a fresh database and models directory.
pub struct TestApp {
    pub state: AppState,
    pub db: TestDb,
    pub models: TempDir,
    pub scorer_key: String,
    pub moderator_key: String,
    pub admin_key: String,
}

impl TestApp {
    /// A state with the placeholder package, on `backend`, with extra serve flags.
    pub async fn start(backend: Backend, flags: &[&str]) -> TestApp {
        let models = tempfile::tempdir().unwrap();
        copy_dir(placeholder_source(), &models.path().join("placeholder").join("0.0.0"));
        Self::start_with_models(backend, models, flags).await
    }

    /// A state over a prepared models directory.
    pub async fn start_with_models(backend: Backend, models: TempDir, flags: &[&str]) -> TestApp {
        let db = TestDb::new(backend).await;
        let mut args = vec![
            "--database-url".to_string(),
            db.url.clone(),
            "--models-dir".to_string(),
            models.path().display().to_string(),
            "--max-wait-ms".to_string(),
            "1".to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        let config = ServeConfig::from_flags(args).expect("test flags parse");
        let state = AppState::start(config).await.expect("state starts");
        let expected = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(state.db.backend(), expected);
        let key = |role: Role| {
            let db = state.db.clone();
            async move { keys::create(&db, &format!("test {role}"), role).await.unwrap().secret }
        };
        let scorer_key = key(Role::Scorer).await;
        let moderator_key = key(Role::Moderator).await;
        let admin_key = key(Role::Admin).await;
        TestApp { state, db, models, scorer_key, moderator_key, admin_key }
    }

    /// A second server state on the same database and models directory (a replica).
    pub async fn replica(&self, flags: &[&str]) -> AppState {
        let mut args = vec![
            "--database-url".to_string(),
            self.db.url.clone(),
            "--models-dir".to_string(),
            self.models.path().display().to_string(),
            "--max-wait-ms".to_string(),
            "1".to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        AppState::start(ServeConfig::from_flags(args).expect("test flags parse")).await.expect("replica starts")
    }

    pub fn app(&self) -> Router {
        memeguard::app(self.state.clone())
    }

    /// Sends a request through a fresh router (as a connection would).
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app().oneshot(request).await.expect("infallible service");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes().to_vec();
        Reply { status, headers, bytes }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.send(request("GET", path, key).body(Body::empty()).unwrap()).await
    }

    pub async fn post_json(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.send(
            request("POST", path, key)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    /// `POST path` with a raw body and content type.
    pub async fn post_raw(&self, path: &str, key: Option<&str>, content_type: &str, body: impl Into<Body>) -> Reply {
        self.send(request("POST", path, key).header(header::CONTENT_TYPE, content_type).body(body.into()).unwrap())
            .await
    }

    /// `POST /v1/moderations` as multipart/form-data with a scorer key.
    pub async fn moderate_form(&self, parts: &[(&str, Option<&str>, &[u8])]) -> Reply {
        let (content_type, body) = multipart(parts);
        self.post_raw("/v1/moderations", Some(&self.scorer_key), &content_type, body).await
    }

    /// `POST /v1/moderations` with a scorer key.
    pub async fn moderate(&self, body: &Value) -> Reply {
        self.post_json("/v1/moderations", Some(&self.scorer_key), body).await
    }

    /// Number of rows in `decisions`.
    pub async fn decision_count(&self) -> i64 {
        memeguard::with_pool!(&self.state.db, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM decisions").fetch_one(pool).await.unwrap()
        })
    }

    pub async fn finish(self) {
        self.state.shutdown().await;
        self.db.drop_database().await;
    }
}

/// A decision as the server would record it, for tests that write the log directly.
pub fn sample_decision(request_id: &str, text: &str, score: f64) -> memeguard::db::decisions::NewDecision {
    memeguard::db::decisions::NewDecision {
        created_at: memeguard::db::DbTime::now(),
        request_id: request_id.into(),
        model: "m@1".into(),
        score,
        threshold: 0.5,
        flagged: score >= 0.5,
        text: Some(text.into()),
        text_sha256: "0".repeat(64),
        text_source: memeguard::db::decisions::TextSource::Given,
        image: None,
        stored: true,
        latency_ms: 1.0,
        caller: "test".into(),
        model_score: score,
        pdq: None,
        text_norm_sha256: "0".repeat(64),
        image_embedding: None,
        text_embedding: None,
        review_match: None,
    }
}

/// A request builder with an optional bearer key.
pub fn request(method: &str, path: &str, key: Option<&str>) -> axum::http::request::Builder {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder
}

/// A multipart/form-data body from (name, filename, bytes) parts.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "memeguard-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Asserts the status and, for errors, the JSON error shape; returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        let body = self.json();
        if status >= 400 {
            assert!(body["error"]["type"].is_string() && body["error"]["message"].is_string(), "error shape: {body}");
        }
        body
    }

    /// The error message of an error reply.
    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
    }
}
