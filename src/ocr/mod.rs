//! OCR for memes that arrive without text: the picture is prepared for Tesseract (meme
//! text is white with a dark outline, the opposite of what Tesseract expects) and read
//! with the Tesseract library through the `tesseract` crate.
//!
//! [`Ocr`] is what the rest of the server sees. It is ready, switched off by configuration,
//! or unavailable (built without the `ocr` feature, or Tesseract's language data missing);
//! which one is known a moment after start (Tesseract loads on its own thread) and logged
//! then. When it is not ready, image-only memes are scored with empty text and their
//! decision says `text_source = none`.

mod engine;
pub mod prepare;

use std::sync::{Arc, OnceLock};

use clap::Args;
use image::RgbImage;

use self::engine::EnginePool;

/// Tesseract's mean word confidence (0–100) below which a reading is taken for noise.
pub const MIN_CONFIDENCE: i32 = 60;

/// OCR settings (flattened into `serve`'s flags).
#[derive(Debug, Clone, Args)]
pub struct OcrConfig {
    /// Read the text of memes sent without text (Tesseract). `--ocr false` switches it off.
    #[arg(long = "ocr", env = "MEMEGUARD_OCR", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,
    /// Tesseract language(s), as its traineddata names (`eng`, `eng+deu`).
    #[arg(long, env = "MEMEGUARD_OCR_LANGUAGE", default_value = "eng")]
    pub ocr_language: String,
    /// Directory of Tesseract's `*.traineddata` (default: where the system's Tesseract looks).
    #[arg(long, env = "MEMEGUARD_TESSDATA_DIR")]
    pub tessdata_dir: Option<String>,
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig { enabled: true, ocr_language: "eng".into(), tessdata_dir: None }
    }
}

/// Why a picture's text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("OCR is not available: {0}")]
    Unavailable(String),
    #[error("Tesseract failed: {0}")]
    Engine(String),
}

/// Whether OCR runs, for the start-up log, the model page and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcrStatus {
    Ready {
        language: String,
    },
    /// Tesseract is still loading its language data (the first second after start).
    Starting,
    Disabled,
    Unavailable(String),
}

/// The server's OCR (cheap to clone). Reading is blocking CPU work: call
/// [`Ocr::read_text`] from the blocking pool, never on the async runtime.
///
/// Loading Tesseract's language model takes a few hundred milliseconds, so it happens on
/// a thread of its own at start (the server does not wait for it); the first meme that
/// needs OCR before it is done waits for it instead.
#[derive(Clone)]
pub struct Ocr {
    config: Arc<OcrConfig>,
    engines: Option<Arc<OnceLock<Result<EnginePool, String>>>>,
}

impl std::fmt::Debug for Ocr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ocr").field("status", &self.status()).finish()
    }
}

impl Ocr {
    /// Sets OCR up as configured and starts loading Tesseract; whether that worked is
    /// logged as soon as it is known (a missing installation is a warning at start).
    pub fn start(config: &OcrConfig) -> Ocr {
        let ocr = Ocr::new(config);
        match &ocr.engines {
            None => tracing::info!("OCR switched off (--ocr false): image-only memes are scored with empty text"),
            Some(_) => {
                let loading = ocr.clone();
                let spawned = std::thread::Builder::new().name("ocr-start".into()).spawn(move || {
                    loading.engines();
                    match loading.status() {
                        OcrStatus::Ready { language } => tracing::info!(%language, "OCR ready (Tesseract)"),
                        OcrStatus::Unavailable(reason) => tracing::warn!(
                            %reason,
                            "OCR UNAVAILABLE: image-only memes are scored with empty text (text_source = none); \
                             install Tesseract with scripts/setup-ocr.sh, or pass --ocr false to silence this"
                        ),
                        OcrStatus::Starting | OcrStatus::Disabled => {}
                    }
                });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "could not start the OCR loading thread; OCR loads at first use");
                }
            }
        }
        ocr
    }

    /// OCR as configured, loaded at first use (nothing logged).
    pub fn new(config: &OcrConfig) -> Ocr {
        let engines = config.enabled.then(|| Arc::new(OnceLock::new()));
        Ocr { config: Arc::new(config.clone()), engines }
    }

    /// OCR that never runs.
    pub fn disabled() -> Ocr {
        Ocr::new(&OcrConfig { enabled: false, ..OcrConfig::default() })
    }

    /// The engines, loading them on this thread if no one has yet (blocking).
    fn engines(&self) -> Option<&Result<EnginePool, String>> {
        let config = &self.config;
        self.engines.as_ref().map(|cell| {
            cell.get_or_init(|| {
                EnginePool::new(config.tessdata_dir.clone(), config.ocr_language.clone()).map_err(|e| e.to_string())
            })
        })
    }

    pub fn status(&self) -> OcrStatus {
        match self.engines.as_ref().map(|cell| cell.get()) {
            None => OcrStatus::Disabled,
            Some(None) => OcrStatus::Starting,
            Some(Some(Ok(_))) => OcrStatus::Ready { language: self.config.ocr_language.clone() },
            Some(Some(Err(reason))) => OcrStatus::Unavailable(reason.clone()),
        }
    }

    /// Whether OCR is switched on and not known to be unavailable.
    pub fn is_enabled(&self) -> bool {
        matches!(self.status(), OcrStatus::Ready { .. } | OcrStatus::Starting)
    }

    /// The text written on `image`, whitespace-normalised (one space between words, lines
    /// joined by spaces); empty when none is found or Tesseract is not confident of what it
    /// read (below [`MIN_CONFIDENCE`]). Blocking.
    pub fn read_text(&self, image: &RgbImage) -> Result<String, OcrError> {
        let pool = match self.engines() {
            None => return Err(OcrError::Unavailable("switched off".into())),
            Some(Err(reason)) => return Err(OcrError::Unavailable(reason.clone())),
            Some(Ok(pool)) => pool,
        };
        let prepared = prepare::prepare_for_ocr(image);
        let (raw, confidence) = pool.recognize(&prepared)?;
        // Gradients, textures and faces make Tesseract "read" a few letters with low
        // confidence; real lettering reads at 80–96 (see tests/web_ocr.rs).
        if confidence < MIN_CONFIDENCE {
            return Ok(String::new());
        }
        Ok(normalise(&raw))
    }

    /// The text of an image-only meme, or `None` when OCR is off or unavailable, finds
    /// nothing, or fails (a failure is logged: the meme is still scored, on the image alone).
    pub fn text_for_scoring(&self, image: &RgbImage) -> Option<String> {
        match self.read_text(image) {
            Ok(text) if !text.is_empty() => Some(text),
            Ok(_) | Err(OcrError::Unavailable(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "OCR failed; scoring the image without text");
                None
            }
        }
    }
}

/// One space between words; lines joined; stray one-character noise at the ends dropped.
fn normalise(raw: &str) -> String {
    let words: Vec<&str> = raw.split_whitespace().collect();
    let is_noise = |w: &&str| w.chars().count() == 1 && !w.chars().all(char::is_alphanumeric);
    let start = words.iter().position(|w| !is_noise(w)).unwrap_or(words.len());
    let end = words.iter().rposition(|w| !is_noise(w)).map_or(start, |i| i + 1);
    words[start..end].join(" ")
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn normalise_joins_lines_and_drops_edge_noise() {
        assert_eq!(normalise("  WHEN YOU\n\nSEE IT \n"), "WHEN YOU SEE IT");
        assert_eq!(normalise("| HELLO THERE —\n"), "HELLO THERE");
        assert_eq!(normalise("A CAT"), "A CAT");
        assert_eq!(normalise(" \n "), "");
    }
}
