//! The real binary: crash safety (SIGKILL during a load burst loses no answered
//! decision), graceful shutdown on SIGTERM, reload on SIGHUP, and the official `openai`
//! Python client talking to it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::server::{HttpClient, ServerProcess, create_key};
use common::write_test_package;
use memeguard::db::Db;
use serde_json::json;
use tempfile::TempDir;

/// A temporary directory with a database URL and a models directory holding the placeholder.
struct Setup {
    dir: TempDir,
    database_url: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("decisions.db").display());
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        Setup { dir, database_url }
    }

    fn models(&self) -> std::path::PathBuf {
        self.dir.path().join("models")
    }
}

/// Clients posting single texts until `stop`; each returns the decision ids it got a 200 for.
fn load(
    server: &ServerProcess,
    key: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Vec<i64>, usize)>> {
    (0..clients)
        .map(|c| {
            let (client, url, key, stop) =
                (HttpClient::new(), server.url("/v1/moderations"), key.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                let mut failures = 0;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && failures < 20 {
                    match client.post(&url, Some(&key), &json!({"input": format!("client {c} message {i}")})).await {
                        Ok((200, body)) => answered.push(body["results"][0]["decision_id"].as_i64().unwrap()),
                        Ok((status, body)) => panic!("unexpected {status}: {body}"),
                        // The server is gone (killed or shut down).
                        Err(_) => failures += 1,
                    }
                    i += 1;
                }
                (answered, failures)
            })
        })
        .collect()
}

async fn stored_ids(database_url: &str) -> Vec<i64> {
    let db = Db::connect(database_url).await.unwrap();
    let ids = memeguard::with_pool!(&db, pool => {
        sqlx::query_scalar::<_, i64>("SELECT id FROM decisions ORDER BY id").fetch_all(pool).await.unwrap()
    });
    db.close().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_answered_decision() {
    let setup = Setup::new();
    let key = create_key(&setup.database_url, "scorer");
    let mut server = ServerProcess::start(&setup.database_url, &setup.models(), setup.dir.path(), &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&server, &key, 16, stop.clone());

    // Let the burst run, then kill without warning.
    let client = HttpClient::new();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if stored_ids(&setup.database_url).await.len() >= 150 {
            break;
        }
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.await.unwrap().0);
    }
    stop.store(true, Ordering::Relaxed);
    // Rows can be committed before their answers arrive, so fewer than 150 may be answered.
    assert!(answered.len() >= 50, "the burst was too small: {}", answered.len());

    // Restart on the same database: it recovers, and every answered decision is there.
    let restarted = ServerProcess::start(&setup.database_url, &setup.models(), setup.dir.path(), &[]).await;
    let stored: std::collections::HashSet<i64> = stored_ids(&setup.database_url).await.into_iter().collect();
    let missing: Vec<_> = answered.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "{} answered decisions are missing after SIGKILL: {missing:?}", missing.len());
    let (status, _) =
        client.post(&restarted.url("/v1/moderations"), Some(&key), &json!({"input": "after restart"})).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let setup = Setup::new();
    let key = create_key(&setup.database_url, "scorer");
    let mut server = ServerProcess::start(&setup.database_url, &setup.models(), setup.dir.path(), &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&server, &key, 8, stop.clone());
    while stored_ids(&setup.database_url).await.len() < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).await, "unclean exit:\n{}", server.log_text());
    stop.store(true, Ordering::Relaxed);
    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.await.unwrap().0);
    }
    let stored: std::collections::HashSet<i64> = stored_ids(&setup.database_url).await.into_iter().collect();
    assert!(answered.iter().all(|id| stored.contains(id)));
    let log = server.log_text();
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_newest_package() {
    let setup = Setup::new();
    let key = create_key(&setup.database_url, "scorer");
    let server = ServerProcess::start(&setup.database_url, &setup.models(), setup.dir.path(), &[]).await;
    let client = HttpClient::new();
    let (_, ready) = client.get(&server.url("/readyz"), None).await.unwrap();
    assert_eq!(ready["model"], "placeholder@0.0.0", "an empty models dir gets the placeholder");
    assert!(server.log_text().contains("UNTRAINED PLACEHOLDER"), "the placeholder is announced loudly");

    write_test_package(&setup.models().join("demo/1"), "demo", "1", "2025-01-01T00:00:00Z", 0.5);
    server.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ready) = client.get(&server.url("/readyz"), None).await.unwrap();
        if ready["model"] == "demo@1" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not reload:\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = client.post(&server.url("/v1/moderations"), Some(&key), &json!({"input": "x"})).await.unwrap();
    assert_eq!((status, body["model"].as_str()), (200, Some("demo@1")));
}

/// Installs the official `openai` Python client into a throwaway virtualenv under
/// .cache (once) and returns its python.
fn openai_python() -> std::path::PathBuf {
    const VERSION: &str = "3.57.0";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join(".cache/openai-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(format!(".openai-{VERSION}"));
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let ok = std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap().success();
        assert!(ok, "python3 -m venv failed (install python3-venv)");
        let out = std::process::Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &format!("openai=={VERSION}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "pip install openai=={VERSION} failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&stamp, b"").unwrap();
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_gets_parsed_results() {
    let python = tokio::task::spawn_blocking(openai_python).await.unwrap();
    let setup = Setup::new();
    let key = create_key(&setup.database_url, "scorer");
    let server = ServerProcess::start(&setup.database_url, &setup.models(), setup.dir.path(), &[]).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let image = common::images::data_url(&common::images::png(32, 24, 5), "image/png");
    let mut command = std::process::Command::new(&python);
    command
        .arg(&script)
        .env("MEMEGUARD_BASE_URL", server.url("/v1"))
        .env("MEMEGUARD_API_KEY", &key)
        .env("MEMEGUARD_IMAGE_URL", image);
    let out = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the openai client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["text"]["model"], "placeholder@0.0.0");
    assert_eq!(report["image"]["applied"], json!(["text", "image"]));
    assert!(report["image"]["decision_id"].as_i64().unwrap() > report["text"]["decision_id"].as_i64().unwrap());
    assert_eq!(report["bad_key_status"], 401);
    assert_eq!(report["remote_url_status"], 400);
}

/// `keys list` and `keys revoke` and `migrate` from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_commands_manage_access() {
    let setup = Setup::new();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::server::BINARY)
            .args(args)
            .args(["--database-url", &setup.database_url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["migrate"]).contains("migrations applied"));
    let key = create_key(&setup.database_url, "scorer");
    let listing = run(&["keys", "list"]);
    assert!(listing.contains("process test scorer") && listing.contains("active"), "{listing}");
    assert!(!listing.contains(&key), "a listing never shows secrets");
    let server = ServerProcess::start(&setup.database_url, &setup.models(), setup.dir.path(), &[]).await;
    let client = HttpClient::new();
    let url = server.url("/v1/moderations");
    assert_eq!(client.post(&url, Some(&key), &json!({"input": "x"})).await.unwrap().0, 200);
    let id = listing.split('\t').next().unwrap().trim().to_string();
    assert!(run(&["keys", "revoke", &id]).contains("revoked"));
    assert_eq!(client.post(&url, Some(&key), &json!({"input": "x"})).await.unwrap().0, 401);
    let bad = std::process::Command::new(common::server::BINARY)
        .args(["keys", "create", "--role", "superuser", "--name", "x", "--database-url", &setup.database_url])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("scorer, moderator or admin"));
}
