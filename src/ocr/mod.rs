//! OCR for memes that arrive without text: the picture is prepared for Tesseract (meme
//! text is white with a dark outline, the opposite of what Tesseract expects) and read
//! with the Tesseract library through the `tesseract` crate.
//!
//! [`Ocr`] is what the rest of the server sees. It is one of three things, decided once at
//! start and logged then: ready, switched off by configuration, or unavailable (built
//! without the `ocr` feature, or Tesseract's language data missing). When it is not ready,
//! image-only memes are scored with empty text and their decision says `text_source = none`.

mod engine;
pub mod prepare;

use std::sync::Arc;

use clap::Args;
use image::RgbImage;

use self::engine::EnginePool;

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

/// Whether OCR runs, for the start-up log, `/model` page and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcrStatus {
    Ready { language: String },
    Disabled,
    Unavailable(String),
}

/// The server's OCR (cheap to clone). Reading is blocking CPU work: call
/// [`Ocr::read_text`] from the blocking pool, never on the async runtime.
#[derive(Clone)]
pub struct Ocr {
    status: OcrStatus,
    pool: Option<Arc<EnginePool>>,
}

impl std::fmt::Debug for Ocr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ocr").field("status", &self.status).finish()
    }
}

impl Ocr {
    /// Sets OCR up as configured, trying Tesseract once so that a missing installation is
    /// reported at start (logged) rather than at the first meme.
    pub fn start(config: &OcrConfig) -> Ocr {
        let ocr = Self::try_start(config);
        match &ocr.status {
            OcrStatus::Ready { language } => tracing::info!(%language, "OCR ready (Tesseract)"),
            OcrStatus::Disabled => {
                tracing::info!("OCR switched off: image-only memes are scored with empty text")
            }
            OcrStatus::Unavailable(reason) => tracing::warn!(
                %reason,
                "OCR UNAVAILABLE: image-only memes are scored with empty text (text_source = none); \
                 install Tesseract with scripts/setup-ocr.sh, or pass --ocr false to silence this"
            ),
        }
        ocr
    }

    fn try_start(config: &OcrConfig) -> Ocr {
        if !config.enabled {
            return Ocr { status: OcrStatus::Disabled, pool: None };
        }
        match EnginePool::new(config.tessdata_dir.clone(), config.ocr_language.clone()) {
            Ok(pool) => {
                Ocr { status: OcrStatus::Ready { language: config.ocr_language.clone() }, pool: Some(Arc::new(pool)) }
            }
            Err(e) => Ocr { status: OcrStatus::Unavailable(e.to_string()), pool: None },
        }
    }

    /// OCR that never runs (for tools and tests that do not want it).
    pub fn disabled() -> Ocr {
        Ocr { status: OcrStatus::Disabled, pool: None }
    }

    pub fn status(&self) -> &OcrStatus {
        &self.status
    }

    pub fn is_ready(&self) -> bool {
        self.pool.is_some()
    }

    /// The text written on `image`, whitespace-normalised (one space between words, lines
    /// joined by spaces); empty when none is found. Blocking.
    pub fn read_text(&self, image: &RgbImage) -> Result<String, OcrError> {
        let pool = self.pool.as_ref().ok_or_else(|| match &self.status {
            OcrStatus::Unavailable(reason) => OcrError::Unavailable(reason.clone()),
            _ => OcrError::Unavailable("switched off".into()),
        })?;
        let prepared = prepare::prepare_for_ocr(image);
        let raw = pool.recognize(&prepared)?;
        Ok(normalise(&raw))
    }

    /// The text of an image-only meme, or `None` when OCR is off, finds nothing, or fails
    /// (a failure is logged: the meme is still scored, on the image alone).
    pub fn text_for_scoring(&self, image: &RgbImage) -> Option<String> {
        if !self.is_ready() {
            return None;
        }
        match self.read_text(image) {
            Ok(text) if !text.is_empty() => Some(text),
            Ok(_) => None,
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
