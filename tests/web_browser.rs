//! The moderators' pages in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, installed by scripts/setup-browser.sh)
//! against the real `memeguard` binary on a loopback port with a fresh database. A
//! moderator signs in, uploads a meme without text (OCR reads it), sees the verdict,
//! opens the review queue, overrides the verdict with a note, and the database holds the
//! review. Screenshots of the verdict and the queue go to `target/artifacts/`.

mod common;
#[path = "browser/driver.rs"]
mod driver;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ab_glyph::{FontRef, PxScale};
use common::server::{BINARY, ServerProcess};
use driver::{Browser, ChromeDriver};
use fantoccini::Locator;
use image::{ImageEncoder, Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;
use memeguard::db::Db;
use memeguard::db::reviews;

const USERNAME: &str = "mona";
const PASSWORD: &str = "a long moderator password";
const MEME_TEXT: &str = "MONDAY AGAIN";

/// Where screenshots are kept: `<target dir>/artifacts/`.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A meme: white text with a black outline over a two-colour picture, as a PNG file.
fn write_meme(path: &std::path::Path) {
    let font = FontRef::try_from_slice(include_bytes!("../training/assets/fonts/DejaVuSans-Bold.ttf")).unwrap();
    let mut image = RgbImage::from_pixel(480, 360, Rgb([70, 120, 170]));
    draw_filled_rect_mut(&mut image, Rect::at(0, 200).of_size(480, 160), Rgb([60, 140, 60]));
    let scale = PxScale::from(44.0);
    let (w, _) = text_size(scale, &font, MEME_TEXT);
    let x = (480 - w as i32) / 2;
    for dx in -3..=3 {
        for dy in -3..=3 {
            draw_text_mut(&mut image, Rgb([0, 0, 0]), x + dx, 20 + dy, scale, &font, MEME_TEXT);
        }
    }
    draw_text_mut(&mut image, Rgb([255, 255, 255]), x, 20, scale, &font, MEME_TEXT);
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(image.as_raw(), 480, 360, image::ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::write(path, png).unwrap();
}

fn create_moderator(database_url: &str) {
    let mut child = Command::new(BINARY)
        .args(["users", "create", "--role", "moderator", "--username", USERNAME, "--database-url", database_url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "users create: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_moderator_checks_a_meme_and_overrides_the_verdict_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("decisions.db").display());
    let models = dir.path().join("models");
    let meme = dir.path().join("meme.png");
    write_meme(&meme);
    create_moderator(&database_url);
    // No models directory: with --allow-placeholder the server creates it and serves the
    // untrained placeholder.
    let server = ServerProcess::start(&database_url, &models, dir.path(), &["--allow-placeholder"]).await;
    let chromedriver = ChromeDriver::start(dir.path());
    let browser = Browser::open(&chromedriver, &dir.path().join("chromium-profile")).await;

    let base = server.url("");
    let meme = meme.display().to_string();
    let outcome = browser.run(|client| async move {
        // Signed out: the queue sends us to sign in, and back afterwards.
        client.goto(&format!("{base}/review")).await?;
        assert_eq!(client.current_url().await?.path(), "/login");
        client.find(Locator::Id("username")).await?.send_keys(USERNAME).await?;
        client.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
        client.find(Locator::Id("signin")).await?.click().await?;
        client.wait().for_url(&format!("{base}/review").parse()?).await?;

        // Upload a meme without text; the script shows a preview before sending.
        client.goto(&format!("{base}/upload")).await?;
        client.find(Locator::Id("image")).await?.send_keys(&meme).await?;
        let preview_shown = client.execute("return !document.getElementById('preview').hidden", vec![]).await?;
        assert_eq!(preview_shown, serde_json::Value::Bool(true), "the preview script ran");
        client.find(Locator::Id("check")).await?.click().await?;
        let verdict = client.wait().for_element(Locator::Id("verdict")).await?.text().await?;
        assert!(verdict.contains("placeholder@0.0.0"), "the deciding model is shown: {verdict}");
        assert!(verdict.contains("untrained placeholder"), "{verdict}");
        assert!(verdict.contains(MEME_TEXT) && verdict.contains("source: ocr"), "OCR read the text: {verdict}");
        client.screenshot().await.map(|png| std::fs::write(artifacts_dir().join("upload-result.png"), png))??;
        let link = client.find(Locator::Id("decision-link")).await?.attr("href").await?.unwrap_or_default();
        let id: i64 = link.trim_start_matches("/review/").parse()?;

        // The review queue lists it; open it and override the model's verdict.
        client.goto(&format!("{base}/review")).await?;
        let queue = client.find(Locator::Id("queue")).await?.text().await?;
        assert!(queue.contains(&format!("#{id}")) && queue.contains("unreviewed"), "{queue}");
        client.screenshot().await.map(|png| std::fs::write(artifacts_dir().join("review-queue.png"), png))??;
        client.find(Locator::Css(&format!("a.open-decision[href='/review/{id}']"))).await?.click().await?;
        let model_said = client.wait().for_element(Locator::Id("model-verdict")).await?.text().await?;
        client.find(Locator::Id("note")).await?.send_keys("satire, not hate").await?;
        client.find(Locator::Id("override")).await?.click().await?;
        client.wait().for_element(Locator::Css("ol.history li")).await?;
        let label = client.find(Locator::Id("current-label")).await?.text().await?;
        let overridden = if model_said == "hateful" { "not hateful" } else { "hateful" };
        assert!(label.starts_with(overridden), "current label `{label}` after overriding `{model_said}`");
        Ok(id)
    });
    let id = outcome.await.unwrap_or_else(|e| panic!("browser flow failed: {e}\nserver log:\n{}", server.log_text()));

    // The review is in the database, through the same DB layer the API uses.
    let db = Db::connect(&database_url).await.unwrap();
    let history = reviews::history(&db, id).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].reviewer, format!("web:{USERNAME}"));
    assert_eq!(history[0].note, "satire, not hate");
    let decision = memeguard::db::decisions::get(&db, id).await.unwrap().unwrap();
    assert_eq!(decision.text_source, "ocr");
    let expected = if decision.flagged { "not_hateful" } else { "hateful" };
    assert_eq!(history[0].label, expected, "the review overrides the model");
    db.close().await;
}
