//! Tesseract instances, reused: initialising one loads the language model (tens of
//! milliseconds and megabytes), so finished instances go back to a pool instead of being
//! dropped. A `TessBaseAPI` is not thread-safe but may move between threads, so each call
//! takes one out, uses it alone, and puts it back.

use std::sync::Mutex;

use image::GrayImage;

use super::OcrError;

/// Instances kept for reuse; more than this many concurrent readers make throwaway ones.
const MAX_IDLE: usize = 4;

#[cfg(feature = "ocr")]
type Engine = tesseract::Tesseract;
#[cfg(not(feature = "ocr"))]
type Engine = ();

pub(super) struct EnginePool {
    datapath: Option<String>,
    language: String,
    idle: Mutex<Vec<Engine>>,
}

impl EnginePool {
    /// A pool holding one initialised instance; fails when Tesseract or its language data
    /// is missing.
    pub(super) fn new(datapath: Option<String>, language: String) -> Result<EnginePool, OcrError> {
        let pool = EnginePool { datapath, language, idle: Mutex::new(Vec::new()) };
        let first = pool.create()?;
        pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(first);
        Ok(pool)
    }

    fn take(&self) -> Result<Engine, OcrError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(engine) => Ok(engine),
            None => self.create(),
        }
    }

    fn give_back(&self, engine: Engine) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(engine);
        }
    }
}

#[cfg(feature = "ocr")]
impl EnginePool {
    fn create(&self) -> Result<Engine, OcrError> {
        let engine = tesseract::Tesseract::new(self.datapath.as_deref(), Some(&self.language)).map_err(|e| {
            OcrError::Unavailable(format!(
                "Tesseract could not load the `{}` language data{}: {e}",
                self.language,
                self.datapath.as_deref().map(|d| format!(" from {d}")).unwrap_or_default()
            ))
        })?;
        // Prepared images are upscaled scans of ~300 dpi; saying so silences Tesseract's
        // "invalid resolution" guess. No dictionary bias: meme text is slang and names.
        engine
            .set_variable("user_defined_dpi", "300")
            .and_then(|e| e.set_variable("load_system_dawg", "0"))
            .and_then(|e| e.set_variable("load_freq_dawg", "0"))
            .map_err(|e| OcrError::Engine(format!("configuring Tesseract: {e}")))
    }

    /// Reads the text of a prepared (dark text on light) grayscale image, with Tesseract's
    /// mean word confidence (0–100).
    pub(super) fn recognize(&self, image: &GrayImage) -> Result<(String, i32), OcrError> {
        let engine = self.take()?;
        let (width, height) = (image.width() as i32, image.height() as i32);
        // Each step consumes the instance; on an error it is dropped, not pooled.
        let mut engine = engine
            .set_frame(image.as_raw(), width, height, 1, width)
            .map_err(|e| OcrError::Engine(format!("setting the image: {e}")))?
            .recognize()
            .map_err(|e| OcrError::Engine(format!("recognising: {e}")))?;
        let text = engine.get_text().map_err(|e| OcrError::Engine(format!("reading the text: {e}")))?;
        let confidence = engine.mean_text_conf();
        self.give_back(engine);
        Ok((text, confidence))
    }
}

#[cfg(not(feature = "ocr"))]
impl EnginePool {
    fn create(&self) -> Result<Engine, OcrError> {
        let _ = (&self.datapath, &self.language);
        Err(OcrError::Unavailable("this build of memeguard has no OCR (built without the `ocr` feature)".into()))
    }

    pub(super) fn recognize(&self, _image: &GrayImage) -> Result<(String, i32), OcrError> {
        self.take().map(|engine| self.give_back(engine))?;
        Err(OcrError::Unavailable("this build of memeguard has no OCR".into()))
    }
}
