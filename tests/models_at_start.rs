//! Which model the real binary serves at start (issue #14): the newest package that
//! loads, with the broken newer ones listed in `/readyz` and the log; and a models
//! directory that does not exist stops the start unless `--allow-placeholder`.

mod common;

use std::process::Command;

use common::server::{BINARY, HttpClient, ServerProcess, free_port};
use common::write_test_package;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_broken_newest_package_serves_the_previous_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("decisions.db").display());
    let models = dir.path().join("models");
    write_test_package(&models.join("demo/1"), "demo", "1", "2025-01-01T00:00:00Z", 0.5);
    let key = common::server::create_key(&database_url, "scorer");
    let client = HttpClient::new();

    let server = ServerProcess::start(&database_url, &models, dir.path(), &["--ocr", "false"]).await;
    assert_eq!(client.get(&server.url("/readyz"), None).await.unwrap().1["model"], "demo@1");
    drop(server);

    // A newer version arrives without its tokenizer, and the server restarts.
    write_test_package(&models.join("demo/2"), "demo", "2", "2025-06-01T00:00:00Z", 0.5);
    std::fs::remove_file(models.join("demo/2/tokenizer.json")).unwrap();
    let server = ServerProcess::start(&database_url, &models, dir.path(), &["--ocr", "false"]).await;
    let (status, ready) = client.get(&server.url("/readyz"), None).await.unwrap();
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["model"], "demo@1");
    let broken = ready["broken_packages"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{ready}");
    assert_eq!(broken[0]["id"], "demo@2");
    assert!(broken[0]["reason"].as_str().unwrap().contains("tokenizer.json"), "{ready}");
    let (status, body) =
        client.post(&server.url("/v1/moderations"), Some(&key), &serde_json::json!({"input": "x"})).await.unwrap();
    assert_eq!((status, body["model"].as_str()), (200, Some("demo@1")), "{body}");
    let log = server.log_text();
    assert!(log.contains("demo@2") && log.contains("tokenizer.json"), "{log}");

    // Every version broken: no model, and /readyz says why, naming them.
    drop(server);
    std::fs::remove_file(models.join("demo/1/tokenizer.json")).unwrap();
    let port = free_port();
    let log = dir.path().join("all-broken.log");
    let mut child = Command::new(BINARY)
        .args(["serve", "--ocr", "false", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &database_url, "--models-dir", &models.display().to_string()])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut answer = None;
    for _ in 0..600 {
        if let Ok(reply) = client.get(&url, None).await {
            answer = Some(reply);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (status, ready) = answer.expect("the server answered /readyz");
    assert_eq!(status, 503, "{ready}");
    let ids: Vec<&str> =
        ready["broken_packages"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["demo@2", "demo@1"]);
    let error = ready["model_error"].as_str().unwrap();
    assert!(error.contains("demo@2") && error.contains("demo@1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_models_directory_stops_the_start_unless_placeholders_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("decisions.db").display());
    let missing = dir.path().join("no-such-models");
    let out = Command::new(BINARY)
        .args(["serve", "--ocr", "false", "--bind", &format!("127.0.0.1:{}", free_port())])
        .args(["--database-url", &database_url, "--models-dir", &missing.display().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist") && stderr.contains("--allow-placeholder"), "{stderr}");
    assert!(!missing.exists());

    let server =
        ServerProcess::start(&database_url, &missing, dir.path(), &["--ocr", "false", "--allow-placeholder"]).await;
    let (_, ready) = HttpClient::new().get(&server.url("/readyz"), None).await.unwrap();
    assert_eq!(ready["model"], "placeholder@0.0.0");
    assert!(missing.join("placeholder/0.0.0/manifest.json").is_file());
}
