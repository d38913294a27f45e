//! The real binary against slow and idle clients (issue #14): half-sent requests and idle
//! connections are closed after `--header-read-timeout-secs`, connections beyond the cap
//! (or beyond what the open-file limit allows) wait instead of starving the server, and
//! `/healthz` keeps answering throughout. Loopback only; every loop is bounded.

mod common;

use std::time::{Duration, Instant};

use common::server::{HttpClient, ServerProcess};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Setup {
    dir: TempDir,
    database_url: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("decisions.db").display());
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        Setup { dir, database_url }
    }

    async fn server(&self, flags: &[&str], open_files: Option<u32>) -> ServerProcess {
        let mut all = vec!["--ocr", "false"];
        all.extend_from_slice(flags);
        let models = self.dir.path().join("models");
        ServerProcess::start_with_open_file_limit(&self.database_url, &models, self.dir.path(), &all, open_files).await
    }
}

/// Opens `n` connections to the server, sending `prefix` on each (empty: nothing).
async fn hold(server: &ServerProcess, n: usize, prefix: &[u8]) -> Vec<TcpStream> {
    let address = format!("127.0.0.1:{}", server.port);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&address))
            .await
            .unwrap_or_else(|_| panic!("connection {i} timed out"))
            .unwrap();
        if !prefix.is_empty() {
            stream.write_all(prefix).await.unwrap();
        }
        held.push(stream);
    }
    held
}

/// Seconds `/healthz` takes on a fresh connection (panics after `limit`).
async fn healthz_seconds(server: &ServerProcess, limit: Duration) -> f64 {
    let started = Instant::now();
    let reply = tokio::time::timeout(limit, HttpClient::new().get(&server.url("/healthz"), None))
        .await
        .unwrap_or_else(|_| panic!("/healthz did not answer within {limit:?}:\n{}", server.log_text()));
    assert_eq!(reply.unwrap().0, 200);
    started.elapsed().as_secs_f64()
}

/// Whether the server closes `stream` within `limit` (reads until end of stream).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_neither_starve_healthz_nor_stay_open() {
    let setup = Setup::new();
    let server = setup.server(&["--header-read-timeout-secs", "2"], None).await;
    let mut held = hold(&server, 1000, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await;
    let seconds = healthz_seconds(&server, Duration::from_secs(5)).await;
    eprintln!("/healthz with 1000 half-sent requests open: {seconds:.3} s");
    // Every half-sent request is dropped once its headers are overdue.
    for (i, stream) in held.iter_mut().enumerate() {
        assert!(closed_within(stream, Duration::from_secs(20)).await, "connection {i} is still open");
    }
    // An idle keep-alive connection is closed too.
    let mut idle = hold(&server, 1, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.remove(0);
    let mut answer = vec![0u8; 512];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    assert!(closed_within(&mut idle, Duration::from_secs(10)).await, "the idle keep-alive connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_or_the_open_file_limit_wait_their_turn() {
    let setup = Setup::new();
    // The cap: 300 silent connections hold 100 slots; /healthz waits in the backlog until
    // the header timeout frees slots.
    let server = setup.server(&["--header-read-timeout-secs", "1", "--max-connections", "100"], None).await;
    let held = hold(&server, 300, b"").await;
    let seconds = healthz_seconds(&server, Duration::from_secs(15)).await;
    eprintln!("/healthz behind 300 silent connections, cap 100: {seconds:.3} s");
    drop(held);
    drop(server);

    // The open-file limit: 256 descriptors, 300 silent connections. The cap is lowered to
    // fit, so accepting never fails for lack of descriptors.
    let server = setup.server(&["--header-read-timeout-secs", "1"], Some(256)).await;
    let held = hold(&server, 300, b"").await;
    let seconds = healthz_seconds(&server, Duration::from_secs(15)).await;
    eprintln!("/healthz behind 300 silent connections, 256 open files: {seconds:.3} s");
    assert!(server.log_text().contains("--max-connections lowered"), "{}", server.log_text());
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_client_address_and_shutdown_drains() {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    let app = axum::Router::new().route(
        "/who",
        axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let limits = memeguard::config::ServeConfig::from_flags(["--max-connections", "4"]).unwrap().connection_limits();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(memeguard::serve::serve(listener, app, limits, async {
        let _ = stopped.await;
    }));

    let mut stream = TcpStream::connect(address).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream.write_all(b"GET /who HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(&local.to_string()), "{answer} (client {local})");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("the server stops").unwrap();
    assert!(TcpStream::connect(address).await.is_err(), "still accepting after shutdown");
}
