//! The real `memeguard` binary as a child process, and a small HTTP client for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_memeguard");

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `memeguard keys create` and returns the printed secret.
pub fn create_key(database_url: &str, role: &str) -> String {
    let out = Command::new(BINARY)
        .args([
            "keys",
            "create",
            "--role",
            role,
            "--name",
            &format!("process test {role}"),
            "--database-url",
            database_url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "keys create failed: {}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("mg_"), "unexpected key output `{secret}`");
    secret
}

/// A server process on its own port; killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `memeguard serve` and waits until `/readyz` says ready.
    pub async fn start(database_url: &str, models: &Path, log_dir: &Path, extra: &[&str]) -> ServerProcess {
        Self::start_with_open_file_limit(database_url, models, log_dir, extra, None).await
    }

    /// Like [`ServerProcess::start`], with the soft limit on open files lowered to
    /// `open_files` (through the shell's `ulimit -n`).
    pub async fn start_with_open_file_limit(
        database_url: &str,
        models: &Path,
        log_dir: &Path,
        extra: &[&str],
        open_files: Option<u32>,
    ) -> ServerProcess {
        let port = free_port();
        let log = log_dir.join(format!("server-{port}.log"));
        let mut command = match open_files {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -S -n {n} && exec \"$0\" \"$@\""), BINARY]);
                c
            }
            None => Command::new(BINARY),
        };
        command
            .arg("serve")
            .args(["--bind", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            .args(["--models-dir", &models.display().to_string()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().unwrap();
        let server = ServerProcess { child, port, log };
        server.wait_ready().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&self) {
        let client = HttpClient::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = client.get(&self.url("/readyz"), None).await {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not become ready:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "the server did not exit:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1 client.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    pub fn new() -> Self {
        HttpClient { client: Client::builder(TokioExecutor::new()).build_http() }
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut builder = hyper::Request::builder().method(method).uri(url);
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        let body = match body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Full::new(Bytes::from(serde_json::to_vec(v).unwrap()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self.client.request(builder.body(body).unwrap()).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    pub async fn get(&self, url: &str, key: Option<&str>) -> Result<(u16, Value), String> {
        self.send("GET", url, key, None).await
    }

    pub async fn post(&self, url: &str, key: Option<&str>, body: &Value) -> Result<(u16, Value), String> {
        self.send("POST", url, key, Some(body)).await
    }
}
