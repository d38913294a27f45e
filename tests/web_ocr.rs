//! OCR of memes without text: synthetic memes (white text with a dark outline over a busy
//! picture, rendered here with the DejaVu font) are read back with at least 95% character
//! accuracy, and a moderation request without text records the text with source `ocr`.
//! Without OCR (switched off, or Tesseract's data missing) the same request is scored
//! with empty text, source `none`.

mod common;

use ab_glyph::{FontRef, PxScale};
use common::{Backend, TestApp};
use image::{ImageEncoder, Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;
use memeguard::ocr::{Ocr, OcrConfig, OcrStatus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const FONT: &[u8] = include_bytes!("../training/assets/fonts/DejaVuSans-Bold.ttf");

const WORDS: &[&str] = &[
    "WHEN", "YOU", "FINALLY", "GET", "THE", "JOKE", "MONDAY", "MORNING", "COFFEE", "CAT", "DOG", "PIZZA", "FRIDAY",
    "NIGHT", "HOMEWORK", "BOSS", "SAYS", "NOBODY", "EVERYONE", "WANTS", "TO", "SEE", "THIS", "MY", "FACE", "LIKE",
    "REALLY", "BRAVE", "GRANDMA", "WEEKEND", "PLANS", "ONE", "DOES", "NOT", "SIMPLY", "WALK", "INTO", "KITCHEN", "AT",
    "3AM", "PROFIT", "WIFI", "PASSWORD", "SUMMER", "VACATION", "OVER",
];

/// A busy background: a gradient with coloured shapes, some white and some dark (the
/// cases that must not turn into letters).
fn background(rng: &mut StdRng, width: u32, height: u32) -> RgbImage {
    let (a, b): ([u8; 3], [u8; 3]) = (rng.random(), rng.random());
    let mut image = RgbImage::from_fn(width, height, |x, y| {
        let t = (x + y) as f32 / (width + height) as f32;
        Rgb(std::array::from_fn(|i| (a[i] as f32 * (1.0 - t) + b[i] as f32 * t) as u8))
    });
    for _ in 0..8 {
        let colour = match rng.random_range(0..4) {
            0 => Rgb([255, 255, 255]),
            1 => Rgb([15, 15, 15]),
            _ => Rgb(rng.random()),
        };
        let (x, y) = (rng.random_range(0..width as i32), rng.random_range(0..height as i32));
        if rng.random_bool(0.5) {
            draw_filled_circle_mut(&mut image, (x, y), rng.random_range(10..60), colour);
        } else {
            let rect = Rect::at(x, y).of_size(rng.random_range(20..140), rng.random_range(20..100));
            draw_filled_rect_mut(&mut image, rect, colour);
        }
    }
    image
}

/// Draws `line` centred at `y`: black outline (the text stamped around a circle), then
/// white fill, as meme generators do.
fn draw_meme_line(image: &mut RgbImage, font: &FontRef, line: &str, y: i32, size: f32) {
    let scale = PxScale::from(size);
    let (w, _) = text_size(scale, font, line);
    let x = (image.width() as i32 - w as i32) / 2;
    let outline = (size / 14.0).ceil() as i32;
    for dx in -outline..=outline {
        for dy in -outline..=outline {
            if dx * dx + dy * dy <= outline * outline {
                draw_text_mut(image, Rgb([0, 0, 0]), x + dx, y + dy, scale, font, line);
            }
        }
    }
    draw_text_mut(image, Rgb([255, 255, 255]), x, y, scale, font, line);
}

fn phrase(rng: &mut StdRng, words: usize) -> String {
    (0..words).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect::<Vec<_>>().join(" ")
}

/// A synthetic meme and its text (top line, then bottom line).
fn meme(rng: &mut StdRng, font: &FontRef) -> (RgbImage, String) {
    let (width, height) = (480, 360);
    let mut image = background(rng, width, height);
    let size = rng.random_range(34.0..44.0);
    let (top_words, bottom_words) = (rng.random_range(2..=3), rng.random_range(2..=3));
    let top = phrase(rng, top_words);
    let bottom = phrase(rng, bottom_words);
    draw_meme_line(&mut image, font, &top, 12, size);
    draw_meme_line(&mut image, font, &bottom, height as i32 - size as i32 - 24, size);
    (image, format!("{top} {bottom}"))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn ocr() -> Ocr {
    let ocr = Ocr::new(&OcrConfig::default());
    // Loads Tesseract now, so a missing installation fails here with its reason.
    let _ = ocr.read_text(&RgbImage::new(8, 8));
    assert!(
        matches!(ocr.status(), OcrStatus::Ready { .. }),
        "Tesseract is not usable: {:?} (scripts/setup-ocr.sh)",
        ocr.status()
    );
    ocr
}

#[test]
fn reads_synthetic_memes_with_95_percent_character_accuracy() {
    let font = FontRef::try_from_slice(FONT).unwrap();
    let ocr = ocr();
    let mut rng = StdRng::seed_from_u64(8);
    let (mut errors, mut characters) = (0, 0);
    let mut report = Vec::new();
    for _ in 0..10 {
        let (image, truth) = meme(&mut rng, &font);
        let read = ocr.read_text(&image).unwrap();
        let distance = levenshtein(&read, &truth);
        errors += distance;
        characters += truth.chars().count();
        report.push(format!("{distance:>2}  {truth:?} → {read:?}"));
    }
    let accuracy = 1.0 - errors as f64 / characters as f64;
    println!("character accuracy {:.2}% over {characters} characters\n{}", accuracy * 100.0, report.join("\n"));
    assert!(accuracy >= 0.95, "character accuracy {:.2}%:\n{}", accuracy * 100.0, report.join("\n"));
}

#[test]
fn a_busy_picture_without_lettering_reads_as_nothing_much() {
    let ocr = ocr();
    let mut rng = StdRng::seed_from_u64(3);
    let image = background(&mut rng, 480, 360);
    let read = ocr.read_text(&image).unwrap();
    assert!(read.chars().filter(|c| c.is_alphanumeric()).count() <= 3, "read {read:?} from a picture without text");
}

fn png_bytes(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// Moderates one synthetic meme without text; returns (text_source, decision text).
async fn moderate_image_only(t: &TestApp) -> (String, String, String) {
    let font = FontRef::try_from_slice(FONT).unwrap();
    let (image, truth) = meme(&mut StdRng::seed_from_u64(21), &font);
    let body = t.moderate(&json!({"input": {"image": common::images::b64(&png_bytes(&image))}})).await.expect(200);
    let result = &body["results"][0];
    let id = result["decision_id"].as_i64().unwrap();
    let decision = t.get(&format!("/v1/decisions/{id}"), Some(&t.moderator_key)).await.expect(200);
    assert_eq!(decision["text_source"], result["text_source"]);
    (result["text_source"].as_str().unwrap().to_string(), decision["text"].as_str().unwrap_or("").to_string(), truth)
}

#[tokio::test]
async fn a_meme_without_text_is_scored_with_its_ocr_text() {
    let t = TestApp::start(Backend::Sqlite, &[]).await;
    let (source, text, truth) = moderate_image_only(&t).await;
    assert_eq!(source, "ocr");
    assert!(levenshtein(&text, &truth) * 10 <= truth.len(), "decision text {text:?} for {truth:?}");
    // Text given by the caller wins over OCR.
    let body = t
        .moderate(&json!({"input": {"image": common::images::b64(&common::images::png(32, 32, 1)), "text": "given"}}))
        .await
        .expect(200);
    assert_eq!(body["results"][0]["text_source"], "given");
    t.finish().await;
}

#[tokio::test]
async fn without_ocr_image_only_memes_are_scored_with_empty_text() {
    for flags in [&["--ocr", "false"][..], &["--tessdata-dir", "/nonexistent/tessdata"][..]] {
        let t = TestApp::start(Backend::Sqlite, flags).await;
        let (source, text, _) = moderate_image_only(&t).await;
        assert_eq!((source.as_str(), text.as_str()), ("none", ""), "{flags:?}");
        let expected_off = flags[0] == "--ocr";
        match t.state.ocr.status() {
            OcrStatus::Disabled => assert!(expected_off),
            OcrStatus::Unavailable(reason) => assert!(!expected_off && reason.contains("language data"), "{reason}"),
            other => panic!("{flags:?}: {other:?}"),
        }
        t.finish().await;
    }
}

#[test]
fn small_and_textless_pictures_read_as_nothing() {
    let ocr = ocr();
    // Gradients like the API tests' images: Tesseract "reads" a letter or two in them
    // with low confidence, which must not become the meme's text.
    for (w, h) in [(20, 20), (64, 64), (8, 8)] {
        let plain = RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 90]));
        let stripes = RgbImage::from_fn(w, h, |x, y| Rgb([(x as u8).wrapping_mul(3), (y as u8).wrapping_mul(5), 7]));
        for image in [plain, stripes] {
            assert_eq!(ocr.read_text(&image).unwrap(), "", "{w}x{h}");
        }
    }
}
