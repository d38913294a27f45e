//! Headless Chromium over WebDriver for the browser test: `chromedriver` as a child
//! process on a free loopback port, and a `fantoccini` session that is always closed (so
//! no browser outlives the test, even when an assertion fails).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use futures_util::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::common::server::{HttpClient, free_port};

/// Debian's paths (scripts/setup-browser.sh); overridable for other systems.
fn chromium() -> String {
    std::env::var("MEMEGUARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver() -> String {
    std::env::var("MEMEGUARD_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// Flags for a quiet, sandbox-free headless browser in a container: no GPU, no network
/// of its own (no updates, sync or background fetches).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// A running chromedriver; killed when dropped.
pub struct ChromeDriver {
    child: Child,
    pub port: u16,
}

impl ChromeDriver {
    /// Starts chromedriver (its log in `log_dir`) and waits until it answers.
    pub fn start(log_dir: &Path) -> ChromeDriver {
        for tool in [chromedriver(), chromium()] {
            assert!(
                Path::new(&tool).exists(),
                "{tool} is missing: run scripts/setup-browser.sh (or `make setup-test`) to install Chromium"
            );
        }
        let port = free_port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_dir.join("chromedriver.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        ChromeDriver { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let client = HttpClient::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = client.get(&format!("{}/status", self.url()), None).await {
                return;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser {
    client: Client,
}

impl Browser {
    /// Opens headless Chromium with its profile in `profile` (a fresh directory).
    pub async fn open(driver: &ChromeDriver, profile: &Path) -> Browser {
        driver.wait_ready().await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium(), "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("a JSON object literal") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("starting Chromium through chromedriver failed: {e}"));
        Browser { client }
    }

    /// Runs `flow` and closes the browser whatever happens (error or panic), then
    /// returns the flow's result (or resumes its panic).
    pub async fn run<T, F, Fut>(self, flow: F) -> Result<T, String>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, Box<dyn std::error::Error + Send + Sync>>>,
    {
        let outcome = AssertUnwindSafe(flow(self.client.clone())).catch_unwind().await;
        let _ = self.client.close().await;
        match outcome {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
